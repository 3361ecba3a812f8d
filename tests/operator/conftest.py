"""Fixtures for the operator-view tests: a tmp hybridnb home and a record writer."""

from __future__ import annotations

import pytest

from _operator_records import make_record
from hybridnb.store.ledger import LedgerWriter, Record


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
