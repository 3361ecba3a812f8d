"""GET /hybridnb/summary on a real server configured the way a deployment is: a ``hybridnb_home`` in the
tornado settings, a ``hybridnb.toml`` in the server's root dir, a real kernel session running. Written
from mutants of notebook/server/_handlers.py that the other handler tests let through (issue 17)."""

from __future__ import annotations

import json

import pytest

from hybridnb.notebook.server import _handlers
from hybridnb.store.ledger import LedgerWriter, Record


@pytest.fixture
def served_home(tmp_path):
    home = tmp_path / "served-home"  # not HYBRIDNB_HOME: the server's own setting wins
    home.mkdir()
    return home


@pytest.fixture
def jp_server_config(ledger_home, served_home):
    return {"ServerApp": {"jpserver_extensions": {"hybridnb.notebook.server": True},
                          "tornado_settings": {"hybridnb_home": str(served_home)}}}


@pytest.fixture
def jp_root_dir(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "hybridnb.toml").write_text("budget_usd = 3.0\nbudget_per = 'total'\nbudget_warn_fraction = 0.5\n")
    return root


def _spend(home, session, cost):
    w = LedgerWriter(home, session=session)
    w.append(Record(ts=1.0, route="reason", backend="openai", model="gpt-4o-mini", status="ok", cost_usd=cost))
    w.close()


async def _get(jp_fetch, **params):
    r = await jp_fetch("hybridnb", "summary", params=params)
    assert r.code == 200
    return json.loads(r.body)


async def test_the_servers_home_and_root_dir_settings_are_used(jp_fetch, ledger_home, served_home):
    _spend(served_home, "s1", 1.5)
    _spend(ledger_home, "elsewhere", 100.0)
    s = await _get(jp_fetch)
    assert s["home"] == str(served_home) and s["all"]["cost_usd"] == 1.5
    b = s["report"]["budget"]
    # from the root dir's hybridnb.toml: $3 over every row, warned at half
    assert (b["limit_usd"], b["per"], b["spent_usd"], b["warn_fraction"]) == (3.0, "total", 1.5, 0.5)


@pytest.mark.parametrize("off", ["", "0", "false"])
async def test_fresh_0_or_false_is_a_throttled_copy(jp_fetch, served_home, monkeypatch, off):
    monkeypatch.setattr(_handlers, "BUSY_MIN_S", 3600.0)
    _spend(served_home, "s1", 1.0)
    assert (await _get(jp_fetch))["all"]["cost_usd"] == 1.0
    _spend(served_home, "s2", 2.0)
    assert (await _get(jp_fetch, fresh=off))["all"]["cost_usd"] == 1.0
    assert (await _get(jp_fetch, fresh="1"))["all"]["cost_usd"] == 3.0


async def test_a_running_kernel_marks_its_session_with_its_notebook(jp_fetch, served_home):
    r = await jp_fetch("api", "sessions", method="POST", body=json.dumps(
        {"path": "work/nb.ipynb", "type": "notebook", "name": "nb.ipynb", "kernel": {"name": "python3"}}))
    kid = json.loads(r.body)["kernel"]["id"]
    r = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    bare = json.loads(r.body)["id"]  # a kernel with no notebook session (a console)
    try:
        _spend(served_home, f"k-{kid}", 0.5)
        _spend(served_home, f"k-{bare}", 0.125)
        _spend(served_home, "k-gone", 0.25)
        s = await _get(jp_fetch, fresh="1")
        marks = {x["session"]: (x["running"], x["kernel"], x.get("notebook")) for x in s["sessions"]}
        assert marks[f"k-{kid}"] == (True, kid, "work/nb.ipynb")
        assert marks[f"k-{bare}"] == (True, bare, "")
        assert marks["k-gone"][:2] == (False, None)
    finally:
        await jp_fetch("api", "kernels", kid, method="DELETE")
        await jp_fetch("api", "kernels", bare, method="DELETE")


def test_a_warn_fraction_of_zero_is_kept_not_replaced_by_the_default(tmp_path):
    (tmp_path / "hybridnb.toml").write_text("budget_usd = 2.0\nbudget_warn_fraction = 0\n")
    _home, (limit, per, warn), note = _handlers._settings(str(tmp_path))
    assert (limit, per, warn, note) == (2.0, "session", 0.0, "")
