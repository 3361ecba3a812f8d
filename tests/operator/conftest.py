"""Fixtures for the operator-view tests: a tmp hybridnb home and a record writer."""

from __future__ import annotations

import itertools

import pytest

from hybridnb.ledger import LedgerWriter, Record

_clock = itertools.count()


def make_record(**kw) -> Record:
    """A Record with sane defaults; ``ts`` increases by one second per call."""
    base = dict(ts=1_800_000_000.0 + next(_clock), route="reason", backend="openai",
                model="gpt-4o-mini", status="ok")
    base.update(kw)
    return Record(**base)


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture
def write(home):
    """write(*records or dicts) appends to a real ledger under ``home``."""
    writer = LedgerWriter(home)

    def _write(*recs, **common):
        out = []
        for r in recs:
            r = r if isinstance(r, Record) else make_record(**{**common, **r})
            out.append(r)
        writer.extend(out)
        return out

    yield _write
    writer.close()
