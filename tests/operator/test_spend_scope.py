"""spent_usd: the one "spend in a scope" query budgets and reports share (real ledger files)."""

from __future__ import annotations

import time

import pytest

from hybridnb.errors import LedgerError
from hybridnb.store.ledger import LedgerWriter, Record
from hybridnb.store.scopes import spent_usd


def _rec(ts, cost, **kw):
    return Record(ts=ts, route="reason", backend="openai", model="m", status="ok", cost_usd=cost, **kw)


@pytest.fixture
def spread(home):
    now = time.time()
    a, b = LedgerWriter(home, "k-a"), LedgerWriter(home, "k-b")
    a.extend([_rec(now, 0.125, notebook="/srv/lab/work/nb.ipynb"),
              _rec(now - 3 * 86400, 0.25, notebook="/srv/lab/work/nb.ipynb")])
    b.extend([_rec(now, 0.0625, notebook="other.ipynb"), _rec(now, 0.03125, notebook="")])
    a.close(), b.close()
    return home


def test_each_scope_sums_its_own_rows(spread):
    assert spent_usd(spread, "total") == 0.125 + 0.25 + 0.0625 + 0.03125
    assert spent_usd(spread, "day") == 0.125 + 0.0625 + 0.03125
    assert spent_usd(spread, "session", session="k-a") == 0.125 + 0.25
    assert spent_usd(spread, "session", session="k-b") == 0.0625 + 0.03125


def test_notebook_matches_absolute_and_relative_paths(spread):
    # the kernel records an absolute path; the lab knows it relative to its root
    assert spent_usd(spread, "notebook", notebook="work/nb.ipynb") == 0.375
    assert spent_usd(spread, "notebook", notebook="/srv/lab/work/nb.ipynb") == 0.375
    assert spent_usd(spread, "notebook", notebook="nb2.ipynb") == 0.0


def test_a_past_day(spread):
    import datetime as dt

    three_ago = dt.date.today() - dt.timedelta(days=3)
    assert spent_usd(spread, "day", day=three_ago) == 0.25
    assert spent_usd(spread, "day", day=three_ago.isoformat()) == 0.25


def test_no_ledger_is_zero(tmp_path):
    assert spent_usd(tmp_path / "none", "total") == 0.0


@pytest.mark.parametrize("per,kw", [("session", {}), ("notebook", {}), ("week", {}),
                                    ("day", {"day": "yesterday"})])
def test_bad_scope_is_one_clear_error(spread, per, kw):
    with pytest.raises(LedgerError):
        spent_usd(spread, per, **kw)
