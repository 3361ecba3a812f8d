"""Tornado handlers: ``GET /hybridnb/summary`` (JSON) and ``/hybridnb/summary.md``.

Polled by the JupyterLab extension (the jupyter-resource-usage pattern): no
comm, so the view survives page reloads and sees every kernel of this user.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from . import _markdown
from . import _summary

#: an unchanged ledger is re-read at most this often (the "today" and lane windows drift)
IDLE_TTL_S = 30.0
#: a changing ledger is re-read at most every max(BUSY_MIN_S, BUSY_FACTOR x last build time),
#: so a poll over a million-row ledger cannot keep a core busy
BUSY_MIN_S, BUSY_FACTOR = 2.0, 5.0
_cache: dict[tuple, tuple[float, float, tuple, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def _settings(root_dir: str | None):
    """(home, budget_usd, warn_fraction, note) from hybridnb's settings; never raises."""
    try:
        from ...config import get_settings

        s = get_settings(cwd=Path(root_dir) if root_dir else None)
        return s.home, s.budget_usd, float(s.get("budget_warn_fraction", 0.8) or 0.8), ""
    except Exception as e:  # a broken hybridnb.toml must not break the page
        import os

        from ...config import default_home

        home = os.environ.get("HYBRIDNB_HOME") or default_home()
        return Path(home).expanduser(), None, 0.8, f"settings unreadable: {e}"


def _ledger_advice(home: Path) -> list[Any]:
    """The operator view's ledger rules (``hybridnb.spend.advice``) as JSON-able dicts."""
    mod = importlib.import_module("hybridnb.spend.advice")
    from ...store.ledger import connect

    con = connect(home)
    try:
        items = mod.compute_advice(con, lanes=())
    finally:
        con.close()
    out = []
    for it in items or []:
        it = asdict(it) if is_dataclass(it) else it
        out.append(it if isinstance(it, (dict, str)) else str(it))
    return json.loads(json.dumps(out, default=str))


#: advice is recomputed at most every max(ADVICE_MIN_S, 10 x its last duration) per home
ADVICE_MIN_S = 10.0
_advice_cache: dict[str, tuple[float, float, list[Any]]] = {}


def _advice(home: Path, state: dict[str, Any], fresh: bool = False) -> list[Any]:
    """Advice over the ledger (throttled: it scans every row), or [] if unavailable.

    Live queue lanes live in each kernel's process, so here only the ledger
    rules apply (idle capacity, move the work, don't reason twice).
    """
    if not state["totals"]["calls"] and not state["totals"]["cache_hits"]:
        return []
    now = time.monotonic()
    with _cache_lock:
        hit = _advice_cache.get(str(home))
    if hit and not fresh and now - hit[0] < max(ADVICE_MIN_S, 10 * hit[1]):
        return hit[2]
    try:
        items = _ledger_advice(home)
    except Exception as e:  # advice is a bonus; never break the summary for it
        state["advice_error"] = f"{type(e).__name__}: {e}"
        items = []
    with _cache_lock:
        _advice_cache[str(home)] = (now, time.monotonic() - now, items)
    return items


def _signature(home: Path) -> tuple:
    d = Path(home) / "ledger"
    try:
        return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in d.iterdir()))
    except OSError:
        return ()


def _fresh(entry, signature: tuple, now: float) -> bool:
    at, took, sig, _ = entry
    if sig == signature:
        return now - at < IDLE_TTL_S
    return now - at < max(BUSY_MIN_S, BUSY_FACTOR * took)


def compute(home: Path, budget: float | None, warn: float, note: str, scope: dict[str, str | None],
            running: dict[str, str], fresh: bool = False) -> dict[str, Any]:
    """Build the state (throttled per scope unless ``fresh``); a ledger failure gives an empty state + note."""
    key = (str(home), budget, warn, note, tuple(sorted(scope.items())), tuple(sorted(running.items())))
    signature = _signature(home)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit and not fresh and _fresh(hit, signature, now):
        return hit[3]
    try:
        state = _summary.build_state(home, budget_usd=budget, warn_fraction=warn,
                                     running=running, **scope)
    except Exception as e:  # e.g. a live file sealed into Parquet between listing and reading
        state = _summary.empty_state(home, f"ledger unreadable: {type(e).__name__}: {e}")
        state["budget"] = _summary.budget_state(0.0, budget, warn)
    if note:
        state["note"] = "; ".join(x for x in (state["note"], note) if x)
    state["advice"] = _advice(home, state, fresh)
    state["markdown"] = _markdown.render(state)
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = (now, time.monotonic() - now, signature, state)
    return state


class _Base(APIHandler):
    async def _running(self) -> dict[str, str]:
        """kernel id -> notebook path for the sessions this server runs."""
        out: dict[str, str] = {}
        try:
            for s in await self.session_manager.list_sessions():
                kid = (s.get("kernel") or {}).get("id")
                if kid:
                    out[kid] = s.get("path") or ""
            for kid in self.kernel_manager.list_kernel_ids():
                out.setdefault(kid, "")
        except Exception:
            pass
        return out

    async def _state(self, fresh: bool = False) -> dict[str, Any]:
        fresh = fresh or self.get_argument("fresh", "") not in ("", "0", "false")
        scope = {k: (self.get_argument(k, "") or None) for k in ("kernel", "session", "notebook")}
        home = self.settings.get("hybridnb_home")
        s_home, budget, warn, note = _settings(self.settings.get("server_root_dir"))
        home = Path(home) if home else s_home
        running = await self._running()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, compute, home, budget, warn, note, scope, running, fresh)


class SummaryHandler(_Base):
    @tornado.web.authenticated
    async def get(self):
        state = await self._state()
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(state, allow_nan=False, default=str))


class SummaryMarkdownHandler(_Base):
    @tornado.web.authenticated
    async def get(self):
        state = await self._state(fresh=True)  # an explicit export: never a throttled copy
        self.set_header("Cache-Control", "no-store")
        self.finish(state["markdown"], set_content_type="text/markdown; charset=utf-8")


def setup_handlers(web_app) -> None:
    base = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [
        (url_path_join(base, "hybridnb", "summary"), SummaryHandler),
        (url_path_join(base, "hybridnb", r"summary\.md"), SummaryMarkdownHandler),
    ])
