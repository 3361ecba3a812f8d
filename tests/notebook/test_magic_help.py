"""Help that answers: `%hybridnb help`/`%hybridnb?`, `%%reason?`/`%%local?`, "did you mean"."""

import pytest
from IPython.core.error import UsageError

from hybridnb.notebook.subcommands import COMMANDS


def test_help_lists_every_command_with_an_example(ip, capsys):
    ip.run_line_magic("hybridnb", "help")
    out = capsys.readouterr().out
    for name, (_, example) in COMMANDS.items():
        assert f"  {name}  " in out and f"e.g. {example}" in out
    assert ip.object_inspect_text("%hybridnb").count("e.g. %hybridnb") == len(COMMANDS)


def test_every_listed_command_exists_and_unknown_ones_get_a_suggestion(ip):
    from hybridnb.notebook import subcommands

    assert all(callable(subcommands.handler(name)) for name in COMMANDS)
    with pytest.raises(UsageError, match=r"unknown command 'sumary' — did you mean 'summary'\?.*models"):
        ip.run_line_magic("hybridnb", "sumary")


def test_cell_magic_help_shows_the_cell_form_and_what_is_in_effect(ip, reason_on_server):
    text = ip.object_inspect_text("%%reason")
    assert "%%reason [-o NAME]" in text and "%reason [" not in text.replace("%%reason", "")
    assert f"In effect now: openai · gpt-4o-mini · {reason_on_server.base_url}" in text
    assert "-f, --format {markdown|text|json|code|html|math}" in text
    local = ip.object_inspect_text("%%local")
    assert "In effect now: embedded · SmolLM2-135M-Instruct · in-process · priced by compute" in local


def test_flag_typo_names_the_magic_the_nearest_option_and_all_options(ip, reason_on_server):
    with pytest.raises(UsageError) as e:
        ip.run_cell_magic("reason", "--choises a,b", "pick one")
    msg = str(e.value)
    assert msg.startswith("%%reason: unknown option --choises — did you mean --choices?")
    assert "-o/--output" in msg and "-f/--format" in msg and "\n" not in msg
    with pytest.raises(UsageError, match=r"%%local: .*invalid choice: 'jsn'.*did you mean json\?"):
        ip.run_cell_magic("local", "-f jsn", "hi")
    with pytest.raises(UsageError, match=r"%%reason: unexpected 'summarise' on the magic line"):
        ip.run_cell_magic("reason", "summarise", "hi")
    assert reason_on_server.log == []


def test_every_output_has_a_text_form(ip, reason_on_server, capsys):
    from IPython.lib.pretty import pretty

    ip.run_cell_magic("reason", "-q -o plan", "a plan please")
    plan = ip.user_ns["plan"]
    assert pretty(plan) == f"{plan.text}\n-- {plan.footer()}"
    from hybridnb.backends.models import list_models

    assert "gpt-4o-mini" in pretty(list_models("reason"))
    ip.run_line_magic("hybridnb", "export")
    assert "inserted below" in capsys.readouterr().out


def test_a_setting_typo_gets_the_nearest_setting(ip, hybridnb_home):
    from hybridnb import config

    with pytest.raises(UsageError, match=r"unknown setting 'reason.modle' — did you mean reason.model\?"):
        ip.run_line_magic("hybridnb", "config reason.modle=gpt-4o")
    assert config.get_settings()["reason.model"] == config.DEFAULTS["reason.model"]


def test_the_summary_reads_as_text_in_a_terminal(ip, reason_on_server, outputs):
    from IPython.lib.pretty import pretty

    import hybridnb

    ip.run_cell_magic("reason", "-q", "bill me")
    s = hybridnb.summary()
    assert pretty(s) == str(s) and "gpt-4o-mini" in pretty(s)
    ip.run_line_magic("hybridnb", "summary")
    assert "gpt-4o-mini" in outputs[-1]["data"]["text/plain"]
    assert "SpendReport(" not in outputs[-1]["data"]["text/plain"]


def test_help_for_another_cell_magic_built_on_the_same_options(ip, hybridnb_home):
    from hybridnb.notebook.help import cell_magic_help

    text = cell_magic_help("auto", ip.find_cell_magic("reason").__func__.parser)
    assert "In effect now: %%reason: embedded" in text and "%%local: embedded" in text
