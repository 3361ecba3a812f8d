"""engine="ray": the same batch on a local Ray instance (2 CPUs, no dashboard)."""

import os
import sys

import polars as pl
import pytest

import hybridnb
from hybridnb.batch.runner import run_batch
from hybridnb.errors import BackendUnavailable

TEXTS = [f"segment {i % 40} about cost" if i % 3 else f"segment {i % 40} about risk" for i in range(60)]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for attempt in range(2):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"PYTHONPATH": root}})
            break
        except Exception as e:  # the raylet gives its agents a fixed 15 s (ray-project/ray#65983)
            ray.shutdown()
            if attempt:
                pytest.skip(f"Ray could not start a local node on this machine: {e}")
    yield ray
    ray.shutdown()


def test_ray_engine_matches_local_engine_and_counts_once(ray_local, openai_server, hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    df = pl.DataFrame({"text": TEXTS})
    res = run_batch(df, "Which concern? {text}", "local", engine="ray", choices=["risk", "cost"],
                    progress=False, verbose=False, concurrency=8)
    out = res.frame
    distinct = len(set(TEXTS))
    assert len(openai_server.log) == distinct  # dedup across the whole batch, not per Ray block
    assert out["answer"].to_list() == ["risk" if "risk" in t else "cost" for t in TEXTS]
    assert out["error"].null_count() == len(TEXTS)
    led = hybridnb.ledger()
    assert led.height == len(TEXTS)  # one record per row: actors' ok records + driver's cached ones
    assert led.filter(pl.col("status") == "ok").height == distinct
    assert led["cost_usd"].sum() == pytest.approx(out["cost_usd"].sum())
    assert res.stats.spent_usd == pytest.approx(out["cost_usd"].sum())
    assert hybridnb.get_dispatcher().spent_usd == pytest.approx(out["cost_usd"].sum())
    # actors append to their own ledger files, tagged with the notebook's session
    files = sorted(p.name for p in (hybridnb_home / "ledger").glob("*.jsonl"))
    assert any("-ray" in f for f in files) and led["session"].n_unique() == 1
    # the cache written by the actors serves the in-process engine
    again = run_batch(df, "Which concern? {text}", "local", choices=["risk", "cost"], progress=False,
                      verbose=False)
    assert again.frame["cached"].all() and len(openai_server.log) == distinct


def test_without_ray_the_error_names_the_extra(monkeypatch, openai_server, hybridnb_home):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(BackendUnavailable, match=r"pip install 'hybridnb\[ray\]'"):
        run_batch(pl.DataFrame({"text": ["x"]}), "Q {text}", "local", engine="ray", progress=False, verbose=False)
    assert openai_server.log == []
