"""Shared fixtures of the corpus tests."""

from __future__ import annotations

import pytest

from hybridnb.corpus import _store


@pytest.fixture
def labelled_store(tmp_path):
    """Call with a frame (primary, secondary, true_primary, true_secondary): a fresh corpus store
    holding its rows as truth and final labels, segment ids 0, 1, ..."""

    def make(df):
        con = _store.open_store(tmp_path / "labelled.duckdb")
        con.register("d", df.with_row_index("segment_id").to_arrow())
        con.execute("INSERT INTO truth SELECT segment_id, true_primary, true_secondary FROM d")
        con.execute('INSERT INTO final_labels SELECT segment_id, "primary", secondary, 0.9, NULL FROM d')
        con.unregister("d")
        return con

    return make
