"""Backends: where prompts run.  Third parties register more under the
``hybridnb.backends`` entry-point group (name → ``module:Class``)."""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from ..errors import BackendUnavailable, ConfigError
from ._base import Backend, close_all

_BUILTIN = {
    "openai": "hybridnb.backends._openai:OpenAIBackend",
    "embedded": "hybridnb.backends._embedded:EmbeddedBackend",
    "vllm": "hybridnb.backends._vllm_server:VLLMServerBackend",
    "vllm-engine": "hybridnb.backends._vllm_engine:VLLMEngineBackend",
}


#: backends registered at run time with register() (name -> "module:Class" or the class)
_REGISTERED: dict[str, object] = {}


def register(name: str, cls: "type[Backend] | str") -> None:
    """Make ``cls`` (a Backend subclass or ``"module:Class"``) available as backend ``name``."""
    _REGISTERED[name] = cls


@functools.lru_cache(maxsize=1)
def _plugins() -> dict[str, str]:
    return {ep.name: ep.value for ep in entry_points(group="hybridnb.backends")}


def available(refresh: bool = False) -> dict[str, str]:
    """Backend name → ``module:Class`` for built-ins and installed plug-ins."""
    if refresh:
        _plugins.cache_clear()
    named = {k: v if isinstance(v, str) else f"{v.__module__}:{v.__qualname__}" for k, v in _REGISTERED.items()}
    return {**_BUILTIN, **_plugins(), **named}


def load(name: str) -> type[Backend]:
    """The Backend class registered as ``name``."""
    if isinstance(_REGISTERED.get(name), type):
        return _REGISTERED[name]  # type: ignore[return-value]
    target = available().get(name)
    if target is None:
        raise ConfigError(f"unknown backend {name!r}; available: {', '.join(sorted(available()))}")
    module, _, attr = target.partition(":")
    import importlib

    try:
        cls = getattr(importlib.import_module(module), attr)
    except ImportError as e:
        extra = {"vllm-engine": "vllm", "ray": "ray"}.get(name)
        hint = f" (pip install hybridnb[{extra}])" if extra else ""
        raise BackendUnavailable(f"backend {name!r} cannot be loaded: {e}{hint}") from e
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"backend {name!r} ({target}) is not a hybridnb Backend")
    return cls


__all__ = ["Backend", "available", "close_all", "load", "register"]
