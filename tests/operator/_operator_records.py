"""Record builder shared by the operator-view tests."""

from __future__ import annotations

import itertools

from hybridnb.store.ledger import Record

_clock = itertools.count()


def make_record(**kw) -> Record:
    """A Record with sane defaults; ``ts`` increases by one second per call."""
    base = dict(ts=1_800_000_000.0 + next(_clock), route="reason", backend="openai",
                model="gpt-4o-mini", status="ok")
    base.update(kw)
    return Record(**base)
