"""README.md is the reference: its tables must match the parsers and settings they describe.

When this fails you added (or removed) a flag, a `%hybridnb` command, a CLI command/option, a setting or
an environment variable: add (or remove) its row in README.md (the message names it).
"""

import argparse
import re
from pathlib import Path

import pytest

from hybridnb import config
from hybridnb.cli import build_parser
from hybridnb.notebook.magics import HybridnbMagics
from hybridnb.notebook.subcommands import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
_OPT = re.compile(r"(?<![\w-])(--?[a-z][a-z-]*)")


def table(name: str) -> list[list[str]]:
    """Rows (cells without the outer pipes) of the table between <!-- reference:name --> and <!-- /reference -->."""
    m = re.search(rf"<!-- reference:{name} -->\n(.*?)<!-- /reference -->", README, re.S)
    assert m, f"README.md has no <!-- reference:{name} --> table"
    rows = []
    for line in m.group(1).strip().splitlines()[2:]:
        cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
        rows.append([c.strip() for c in cells])
    return rows


def code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def _diff(documented: set, actual: set, what: str) -> None:
    missing, stale = sorted(actual - documented), sorted(documented - actual)
    assert not missing and not stale, f"README {what}: missing {missing}, no longer exist {stale}"


@pytest.mark.parametrize("magic", ["reason", "local"])
def test_magic_options_table_matches_the_parser(magic):
    parser = getattr(HybridnbMagics, magic).parser
    actual = {o for a in parser._actions for o in a.option_strings}
    documented = {o for row in table("magic-options") for o in _OPT.findall(row[0])}
    _diff(documented, actual, f"%%{magic} options")


def test_subcommand_table_matches_the_commands_and_their_examples():
    rows = table("subcommands")
    _diff({code(r[0])[0] for r in rows}, set(COMMANDS), "%hybridnb commands")
    for r in rows:
        name = code(r[0])[0]
        assert code(r[2]) == [COMMANDS[name][1]], f"README example for %hybridnb {name}"


def _cli_leaves(p: argparse.ArgumentParser, path: tuple[str, ...] = ("hybridnb",)):
    subs = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        opts = {o for a in p._actions for o in a.option_strings if o not in ("-h", "--help")}
        positionals = [a.dest.upper() for a in p._actions if not a.option_strings]
        yield " ".join(path + tuple(positionals)), opts
    for s in subs:
        for name, sub in s.choices.items():
            yield from _cli_leaves(sub, path + (name,))


def test_cli_table_matches_the_cli_parser():
    actual = dict(_cli_leaves(build_parser()))
    documented = {code(r[0])[0]: {o for c in code(r[1]) for o in _OPT.findall(c)} for r in table("cli")}
    _diff(set(documented), set(actual), "CLI commands")
    for cmd, opts in actual.items():
        _diff(documented[cmd], opts, f"options of `{cmd}`")


def _default_text(value) -> str | None:
    if value is None:
        return None  # resolved at run time or unset: the README says how
    return str(value).lower() if isinstance(value, bool) else str(value)


def test_settings_table_lists_every_key_with_its_environment_and_default():
    rows = {code(r[0])[0]: r for r in table("settings")}
    keys = {k for k in rows if not k.startswith("prices.")}
    _diff(keys, set(config.DEFAULTS), "settings")
    env_of = {v: k for k, v in config.ENV.items()}
    for key in config.DEFAULTS:
        row = rows[key]
        assert code(row[1]) == ([env_of[key]] if key in env_of else []), f"README environment of {key}"
        want = _default_text(config.DEFAULTS[key])
        if want is not None:
            assert code(row[2]) == [want], f"README default of {key}: {row[2]} != {want}"


def test_every_environment_variable_the_package_reads_is_in_the_readme():
    used = set()
    for path in (ROOT / "hybridnb").rglob("*.py"):
        names = re.findall(r"HYBRIDNB_[A-Z0-9_]+\*?", path.read_text(encoding="utf-8"))
        used |= {n.rstrip("_") for n in names if not n.endswith("*")}  # a family HYBRIDNB_LOCAL_* is no name
    documented = set(re.findall(r"HYBRIDNB_[A-Z][A-Z0-9_]*[A-Z0-9]", README))
    assert not used - documented, f"README misses environment variables {sorted(used - documented)}"
