"""VLLMEngineBackend where vLLM is not installed (this machine): clear errors, never a crash."""

from __future__ import annotations

import importlib.util

import pytest

import hybridnb
from hybridnb import errors
from hybridnb.types import Request
from hybridnb.backends import load
from hybridnb.backends._vllm_engine import VLLMEngineBackend, engine_args_from_env

needs_no_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")


@pytest.fixture
def engine_route(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm-engine")
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "/models/qwen2-0.5b")
    monkeypatch.setenv("HYBRIDNB_LOCAL_GPU_HOUR_USD", "3600")


def test_engine_is_registered_and_takes_big_chunks():
    cls = load("vllm-engine")
    assert cls is VLLMEngineBackend and cls.pricing == "compute"
    assert cls.batch_size >= 256 and cls.max_concurrency == 1


@needs_no_vllm
def test_without_vllm_the_call_fails_with_the_install_hint_and_is_ledgered(engine_route):
    r = hybridnb.local("label this", choices=["a", "b"], raise_errors=False)
    assert isinstance(r.error, errors.BackendUnavailable)
    assert "pip install hybridnb[vllm]" in str(r.error)
    row = hybridnb.ledger().row(0, named=True)
    assert row["status"] == "error" and row["backend"] == "vllm-engine"
    assert row["error_class"] == "BackendUnavailable" and row["pricing"] == "compute"


@needs_no_vllm
def test_importing_the_module_does_not_import_vllm():
    import sys

    import hybridnb.backends._vllm_engine  # noqa: F401

    assert "vllm" not in sys.modules


def test_engine_needs_a_model(hybridnb_home, monkeypatch):
    monkeypatch.setenv("HYBRIDNB_LOCAL_BACKEND", "vllm-engine")
    with pytest.raises(errors.ConfigError, match="HYBRIDNB_LOCAL_MODEL"):
        hybridnb.local("hello")


def test_engine_args_come_from_json_env(monkeypatch):
    monkeypatch.setenv("HYBRIDNB_VLLM_ENGINE_ARGS", '{"dtype": "bfloat16", "max_model_len": 2048}')
    assert engine_args_from_env() == {"dtype": "bfloat16", "max_model_len": 2048}
    monkeypatch.setenv("HYBRIDNB_VLLM_ENGINE_ARGS", "[1, 2]")
    with pytest.raises(errors.ConfigError, match="JSON object"):
        engine_args_from_env()


def test_a_request_for_another_model_is_refused_per_request():
    import asyncio

    b = VLLMEngineBackend("/models/a")
    out = asyncio.run(b.complete([Request("x", "/models/b")]))
    assert isinstance(out[0].error, errors.BackendUnavailable) and "restart the kernel" in str(out[0].error)
