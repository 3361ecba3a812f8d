"""Settings with one precedence order.

From strongest to weakest::

    call / magic flag  >  session (%hybridnb config, %config)  >  HYBRIDNB_* env
        >  hybridnb.toml in the working dir, or [tool.hybridnb] in pyproject.toml
        >  defaults

Keys are flat and dotted: ``budget_usd``, ``reason.model``, ``local.base_url``,
``prices.<model>.input`` ($ per 1M tokens).  ``hybridnb.toml`` uses the same
names as TOML tables (``[reason]``, ``[local]``, ``[prices."my-model"]``).
"""

from __future__ import annotations

import functools
import os
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .core.secrets import mask_url
from .errors import ConfigError

ROUTES = ("reason", "local")

#: the model the offline stand-in for %%reason is priced as, by default
REFERENCE_REASON_MODEL = "gpt-5"
EMBEDDED_MODEL = "SmolLM2-135M-Instruct"


def default_home() -> Path:
    """Per-user folder for ledger and cache."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "hybridnb"


DEFAULTS: dict[str, Any] = {
    "home": None,  # resolved to default_home()
    "budget_usd": None,
    "budget_per": "session",  # what the budget limits: session | notebook | day | total
    "budget_warn_fraction": 0.8,
    "cache": True,  # True | False | "semantic" (exact, then near-duplicates: store/semantic.py)
    "cache_similarity": 0.95,  # cosine similarity a semantic cache hit needs
    "concurrency": 16,
    "timeout_s": 120.0,
    "max_retries": 4,
    "estimate_output_tokens": 256,
    "batch_discount": 0.5,  # provider batch jobs: price factor where genai-prices knows no batch rate
    "batch_poll_s": 10.0,  # provider batch jobs: seconds between status polls
    "reserve_s": None,  # compute-priced calls: seconds reserved against the budget (None: timeout_s)
    "reason.backend": "auto",
    "reason.base_url": None,
    "reason.model": REFERENCE_REASON_MODEL,
    "reason.api_key": None,
    "reason.pricing": "tokens",
    "reason.max_tokens": 4096,  # sent with every request: the worst case a budget reserves
    "reason.gpu_hour_usd": 0.0,
    "reason.gpus": 0.0,
    "local.backend": "auto",
    "local.base_url": None,
    "local.model": None,  # None: the embedded model, or the server's first model
    "local.api_key": None,
    "local.pricing": "compute",
    "local.max_tokens": 256,
    "local.gpu_hour_usd": 2.50,
    "local.gpus": 1.0,
    "local.cpu_hour_usd": 0.05,
    "local.hardware_usd": None,  # amortised owned hardware: purchase price
    "local.lifetime_hours": None,  # … over this many hours
    "local.power_kw": None,  # … plus power at electricity_usd_kwh
    "local.electricity_usd_kwh": 0.15,
}

ENV: dict[str, str] = {
    "HYBRIDNB_HOME": "home",
    "HYBRIDNB_BUDGET_USD": "budget_usd",
    "HYBRIDNB_BUDGET_PER": "budget_per",
    "HYBRIDNB_CACHE": "cache",
    "HYBRIDNB_CONCURRENCY": "concurrency",
    "HYBRIDNB_TIMEOUT_S": "timeout_s",
    "HYBRIDNB_MAX_RETRIES": "max_retries",
    "HYBRIDNB_BATCH_DISCOUNT": "batch_discount",
    "HYBRIDNB_BATCH_POLL_S": "batch_poll_s",
    "HYBRIDNB_REASON_BACKEND": "reason.backend",
    "HYBRIDNB_REASON_BASE_URL": "reason.base_url",
    "HYBRIDNB_REASON_MODEL": "reason.model",
    "HYBRIDNB_REASON_API_KEY": "reason.api_key",
    "HYBRIDNB_REASON_MAX_TOKENS": "reason.max_tokens",
    "HYBRIDNB_LOCAL_MAX_TOKENS": "local.max_tokens",
    "HYBRIDNB_LOCAL_BACKEND": "local.backend",
    "HYBRIDNB_LOCAL_BASE_URL": "local.base_url",
    "HYBRIDNB_LOCAL_MODEL": "local.model",
    "HYBRIDNB_LOCAL_API_KEY": "local.api_key",
    "HYBRIDNB_LOCAL_GPU_HOUR_USD": "local.gpu_hour_usd",
    "HYBRIDNB_LOCAL_GPUS": "local.gpus",
    "HYBRIDNB_LOCAL_CPU_HOUR_USD": "local.cpu_hour_usd",
}

SECRET_KEYS = frozenset({"reason.api_key", "local.api_key"})

_FLOATS = {"cache_similarity", "batch_discount", "batch_poll_s", "budget_usd", "budget_warn_fraction", "timeout_s",
           "reserve_s", "gpu_hour_usd", "gpus", "cpu_hour_usd",
           "hardware_usd", "lifetime_hours", "power_kw", "electricity_usd_kwh"}
_INTS = {"concurrency", "max_retries", "estimate_output_tokens", "max_tokens"}
_BOOLS = {"cache"}
_CHOICES = {"pricing": ("tokens", "compute"), "budget_per": ("session", "notebook", "day", "total")}


def coerce(key: str, value: Any) -> Any:
    """Convert a raw (string) value for ``key``; ConfigError on nonsense."""
    if key.startswith("prices."):
        parts = key.split(".")
        if len(parts) < 3 or parts[-1] not in ("input", "output", "cached_input"):
            raise ConfigError(f"price overrides look like prices.<model>.input|output|cached_input, not {key!r}")
        return _to_float(key, value)
    if key not in DEFAULTS:
        known = ", ".join(sorted(DEFAULTS))
        raise ConfigError(f"unknown setting {key!r}; known settings: {known}")
    leaf = key.split(".")[-1]
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        return None
    if leaf in _FLOATS:
        f = _to_float(key, value)
        if leaf in _POSITIVE and f <= 0:
            raise ConfigError(f"{key} must be greater than 0, got {value!r}")
        return f
    if leaf in _INTS:
        try:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            n = int(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{key} must be a whole number, got {value!r}") from None
        low = _INT_MIN.get(leaf, 0)
        if n < low:
            raise ConfigError(f"{key} must be at least {low}, got {value!r}")
        return n
    if leaf in _BOOLS:
        if isinstance(value, bool):
            return value
        s = str(value).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        if key == "cache" and s == "semantic":
            return "semantic"
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if leaf in _CHOICES and value not in _CHOICES[leaf]:
        raise ConfigError(f"{key} must be one of {', '.join(_CHOICES[leaf])}, got {value!r}")
    return str(value) if not isinstance(value, (int, float)) else value


#: least value of integer settings (default 0)
_INT_MIN = {"concurrency": 1, "max_tokens": 1, "estimate_output_tokens": 1, "max_retries": 0}
#: float settings that must be > 0
_POSITIVE = {"timeout_s", "reserve_s"}


def _to_float(key: str, value: Any) -> float:
    try:
        f = float(value.strip().lstrip("$") if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, got {value!r}") from None
    if f != f or f in (float("inf"), float("-inf")):
        raise ConfigError(f"{key} must be a finite number, got {value!r}")
    if f < 0:
        raise ConfigError(f"{key} must not be negative, got {value!r}")
    return f


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


_file_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def _file_layer(cwd: Path) -> dict[str, Any]:
    """Settings from hybridnb.toml, else [tool.hybridnb] in pyproject.toml."""
    for name, section in (("hybridnb.toml", None), ("pyproject.toml", ("tool", "hybridnb"))):
        path = cwd / name
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        cached = _file_cache.get(path)
        if cached and cached[0] == mtime:
            if cached[1] or section is None:
                return cached[1]
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        for part in section or ():
            data = data.get(part, {}) if isinstance(data, dict) else {}
        layer = {k: coerce(k, v) for k, v in _flatten(data).items()}
        _file_cache[path] = (mtime, layer)
        if layer or section is None:
            return layer
    return {}


def _env_layer() -> dict[str, Any]:
    layer = {key: coerce(key, os.environ[name]) for name, key in ENV.items() if os.environ.get(name)}
    if "reason.api_key" not in layer and os.environ.get("OPENAI_API_KEY"):
        layer["reason.api_key"] = os.environ["OPENAI_API_KEY"]
    return layer


class _Session:
    """Settings changed in this kernel (%hybridnb config, %config)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values: dict[str, Any] = {}
        #: bumped on every change, so memoised settings notice
        self.version = 0

    def set(self, key: str, value: Any) -> None:
        v = coerce(key, value)
        with self._lock:
            if v is None:
                self.values.pop(key, None)
            else:
                self.values[key] = v
            self.version += 1

    def clear(self) -> None:
        with self._lock:
            self.values.clear()
            self.version += 1


session = _Session()


@dataclass(frozen=True)
class RouteSettings:
    """Resolved settings of one route."""

    route: str
    backend: str
    base_url: str | None
    model: str | None
    api_key: str | None
    pricing: str
    max_tokens: int | None
    gpu_hour_usd: float
    gpus: float
    cpu_hour_usd: float
    hardware_usd: float | None
    lifetime_hours: float | None
    power_kw: float | None
    electricity_usd_kwh: float

    def __repr__(self) -> str:  # never show the key, nor a password in the URL
        key = "set" if self.api_key else "unset"
        return (f"RouteSettings(route={self.route!r}, backend={self.backend!r}, "
                f"base_url={mask_url(self.base_url)!r}, "
                f"model={self.model!r}, api_key=<{key}>, pricing={self.pricing!r})")


class Settings:
    """A resolved view of all layers; read values with ``settings[key]``."""

    def __init__(self, values: dict[str, Any], key: tuple | None = None):
        self._values = values
        #: identifies the inputs these settings were resolved from (None: not memoised)
        self.key = key

    def __getitem__(self, key: str) -> Any:
        return self._values.get(key, DEFAULTS.get(key))

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def explicit(self) -> dict[str, Any]:
        """The settings some layer set (not defaults): what another process needs to resolve the same."""
        return {k: v for k, v in self._values.items() if v is not None}

    @functools.cached_property
    def home(self) -> Path:
        return Path(self["home"]).expanduser() if self["home"] else default_home()

    @property
    def budget_usd(self) -> float | None:
        return self["budget_usd"]

    def route(self, name: str) -> RouteSettings:
        if name not in ROUTES:
            raise ConfigError(f"unknown route {name!r}; routes are {', '.join(ROUTES)}")
        g = lambda k: self[f"{name}.{k}"]  # noqa: E731
        return RouteSettings(
            route=name, backend=g("backend"), base_url=g("base_url"), model=g("model"),
            api_key=g("api_key"), pricing=g("pricing"), max_tokens=g("max_tokens"),
            gpu_hour_usd=g("gpu_hour_usd") or 0.0, gpus=g("gpus") or 0.0,
            cpu_hour_usd=self["local.cpu_hour_usd"], hardware_usd=g("hardware_usd"),
            lifetime_hours=g("lifetime_hours"), power_kw=g("power_kw"),
            electricity_usd_kwh=self["local.electricity_usd_kwh"],
        )

    def price_overrides(self) -> dict[str, dict[str, float]]:
        """{model: {"input": $/1M, "output": $/1M, "cached_input": $/1M}}."""
        out: dict[str, dict[str, float]] = {}
        for k, v in self._values.items():
            if k.startswith("prices."):
                model, field = k[len("prices."):].rsplit(".", 1)
                out.setdefault(model, {})[field] = v
        return out

    def public(self) -> dict[str, Any]:
        """All settings with secrets masked, for display."""
        keys = sorted(set(DEFAULTS) | set(self._values))
        out = {}
        for k in keys:
            v = self[k]
            if k in SECRET_KEYS:
                v = "<set>" if v else "<unset>"
            elif k.endswith("base_url"):
                v = mask_url(v)
            out[k] = v
        out["home"] = str(self.home)
        return out

    def __repr__(self) -> str:
        return f"Settings({self.public()!r})"


_ENV_NAMES = (*ENV, "OPENAI_API_KEY")
_memo: dict[tuple, Settings] = {}


def _file_stamp(cwd: str) -> tuple:
    stamp = []
    for name in ("hybridnb.toml", "pyproject.toml"):
        try:
            stamp.append(os.stat(os.path.join(cwd, name)).st_mtime_ns)
        except OSError:
            stamp.append(None)
    return tuple(stamp)


def get_settings(overrides: Mapping[str, Any] | None = None, cwd: Path | None = None) -> Settings:
    """Resolve all layers; ``overrides`` is the strongest (magic flags, call options).

    Memoised on what the layers depend on (files' mtimes, the HYBRIDNB_* environment, the
    session's version, the overrides), so a call pays microseconds, not a re-parse.
    """
    cwd_s = str(cwd) if cwd else os.getcwd()
    ov = tuple(sorted((k, v) for k, v in (overrides or {}).items() if v is not None))
    key = (cwd_s, _file_stamp(cwd_s), tuple(os.environ.get(n) for n in _ENV_NAMES), session.version, ov)
    try:
        cached = _memo.get(key)
    except TypeError:  # an unhashable override value: no memo
        key, cached = None, None
    if cached is not None:
        return cached
    values: dict[str, Any] = {}
    values.update(_file_layer(Path(cwd_s)))
    values.update(_env_layer())
    values.update(session.values)
    for k, v in ov:
        values[k] = coerce(k, v)
    settings = Settings(values, key)
    if key is not None:
        if len(_memo) > 256:
            _memo.clear()
        _memo[key] = settings
    return settings
