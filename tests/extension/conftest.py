"""Fixtures for the JupyterLab extension tests.

The handler tests use jupyter_server's own pytest fixtures (``jp_fetch``
etc. from pytest-jupyter[server]); they are imported here rather than via a
root ``pytest_plugins`` so only this folder pays for them.
"""

from __future__ import annotations

import re

import pytest

pytest.importorskip("pytest_jupyter")

from pytest_jupyter.jupyter_server import *  # noqa: E402,F401,F403


@pytest.fixture
def ledger_home(tmp_path, monkeypatch):
    """A fresh HYBRIDNB_HOME, set before the server starts."""
    home = tmp_path / "hybridnb-home"
    home.mkdir()
    monkeypatch.setenv("HYBRIDNB_HOME", str(home))
    for var in ("HYBRIDNB_BUDGET_USD", "HYBRIDNB_BUDGET_WARN_FRACTION"):
        monkeypatch.delenv(var, raising=False)
    return home


@pytest.fixture(autouse=True)
def unthrottled(monkeypatch):
    """Every poll re-reads a changed ledger (the throttle has its own test)."""
    from hybridnb.notebook.server import _handlers

    monkeypatch.setattr(_handlers, "BUSY_MIN_S", 0.0)
    monkeypatch.setattr(_handlers, "BUSY_FACTOR", 0.0)


@pytest.fixture
def jp_server_config(ledger_home):
    return {"ServerApp": {"jpserver_extensions": {"hybridnb.notebook.server": True}}}


_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")


def _assert_no_latex(md: str) -> None:
    """Outside code spans: no bare ``$``, and at most one ``$`` per text run (cell or line)."""
    for line in md.splitlines():
        text = _CODE.sub("", line)
        assert re.search(r"(?<!\\)\$", text) is None, line
        runs = re.split(r"(?<!\\)\|", text) if line.startswith("|") else [text]
        for run in runs:
            assert run.count("$") <= 1, line


@pytest.fixture
def assert_no_latex():
    """Checks Markdown that JupyterLab must not typeset as LaTeX (jupyterlab#8645)."""
    return _assert_no_latex
