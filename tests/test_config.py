"""Settings precedence: flag > session > env > hybridnb.toml/pyproject > defaults."""

import pytest

from hybridnb import config
from hybridnb.errors import ConfigError


def test_defaults_when_nothing_is_set(hybridnb_home):
    s = config.get_settings()
    assert s["reason.model"] == config.REFERENCE_REASON_MODEL
    assert s["cache"] is True
    assert s.budget_usd is None
    assert s.home == hybridnb_home


def test_each_layer_beats_the_one_below(hybridnb_home, monkeypatch, tmp_path):
    (tmp_path / "hybridnb.toml").write_text('[reason]\nmodel = "from-file"\n[local]\ngpus = 4\n')
    assert config.get_settings()["reason.model"] == "from-file"
    monkeypatch.setenv("HYBRIDNB_REASON_MODEL", "from-env")
    assert config.get_settings()["reason.model"] == "from-env"
    config.session.set("reason.model", "from-session")
    assert config.get_settings()["reason.model"] == "from-session"
    assert config.get_settings({"reason.model": "from-flag"})["reason.model"] == "from-flag"
    # untouched keys still come from the file
    assert config.get_settings().route("local").gpus == 4.0


def test_pyproject_tool_table_is_read(hybridnb_home, tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname="x"\n[tool.hybridnb]\nbudget_usd = 3.5\n[tool.hybridnb.prices."my-model"]\ninput = 1.0\n')
    s = config.get_settings()
    assert s.budget_usd == 3.5
    assert s.price_overrides() == {"my-model": {"input": 1.0}}


def test_api_key_falls_back_to_openai_api_key_and_is_masked(hybridnb_home, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-abcdef-secret-123")
    s = config.get_settings()
    assert s.route("reason").api_key == "sk-abcdef-secret-123"
    assert "sk-abcdef" not in repr(s.route("reason"))
    assert s.public()["reason.api_key"] == "<set>"
    monkeypatch.setenv("HYBRIDNB_REASON_API_KEY", "sk-other-key-456789")
    assert config.get_settings().route("reason").api_key == "sk-other-key-456789"


@pytest.mark.parametrize("key,value,fragment", [
    ("nonsense", "1", "unknown setting"),
    ("budget_usd", "lots", "must be a number"),
    ("budget_usd", "-1", "must not be negative"),
    ("cache", "maybe", "true or false"),
    ("local.pricing", "vibes", "must be one of"),
    ("prices.gpt.colour", "1", "price overrides"),
])
def test_bad_values_are_one_clear_error(hybridnb_home, key, value, fragment):
    with pytest.raises(ConfigError, match=fragment):
        config.session.set(key, value)


def test_bad_env_value_is_a_config_error(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPUS", "two")
    with pytest.raises(ConfigError, match="local.gpus must be a number"):
        config.get_settings()
