"""Tornado handlers: ``GET /hybridnb/summary`` (JSON) and ``/hybridnb/summary.md``.

Polled by the JupyterLab extension (the jupyter-resource-usage pattern): no
comm, so the view survives page reloads and sees every kernel of this user.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ...spend.report import warn_fraction_of
from . import _summary

#: an unchanged ledger is re-read at most this often (the "today" and lane windows drift)
IDLE_TTL_S = 30.0
#: a changing ledger is re-read at most every max(BUSY_MIN_S, BUSY_FACTOR x last build time),
#: so a poll over a million-row ledger cannot keep a core busy
BUSY_MIN_S, BUSY_FACTOR = 2.0, 5.0
#: builds of one state while kernels keep writing (the last one is served, with its own signature)
BUILD_TRIES = 3
_cache: dict[tuple, tuple[float, float, tuple, dict[str, Any]]] = {}
_cache_lock = threading.Lock()


def _settings(root_dir: str | None):
    """(home, (budget_usd, budget_per, warn_fraction), note) from hybridnb's settings; never raises."""
    try:
        from ...config import get_settings

        s = get_settings(cwd=Path(root_dir) if root_dir else None)
        warn = warn_fraction_of(s.get("budget_warn_fraction"))  # 0 is a setting (warn at once), not "unset"
        return s.home, (s.budget_usd, s.get("budget_per", "session") or "session", warn), ""
    except Exception as e:  # a broken hybridnb.toml must not break the page
        import os

        from ...config import default_home

        home = os.environ.get("HYBRIDNB_HOME") or default_home()
        return Path(home).expanduser(), (None, "session", 0.8), f"settings unreadable: {e}"


def _signature(home: Path) -> tuple:
    """What changes when a kernel spends or publishes a new budget."""
    out = []
    for d in (Path(home) / "ledger", Path(home) / "kernels"):
        try:
            out += sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in d.iterdir())
        except OSError:
            pass
    return tuple(out)


def _fresh(entry, signature: tuple, now: float) -> bool:
    at, took, sig, _ = entry
    if sig == signature:
        return now - at < IDLE_TTL_S
    return now - at < max(BUSY_MIN_S, BUSY_FACTOR * took)


def compute(home: Path, settings_budget: tuple, note: str, scope: dict[str, str | None],
            running: dict[str, str], fresh: bool = False) -> dict[str, Any]:
    """Build the state (throttled per scope unless ``fresh``); a ledger failure gives an empty state + note."""
    key = (str(home), settings_budget, note, tuple(sorted(scope.items())), tuple(sorted(running.items())))
    signature = _signature(home)
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
    if hit and not fresh and _fresh(hit, signature, now):
        return hit[3]
    for _ in range(BUILD_TRIES):  # the budget and the totals are separate reads: one state, one ledger
        built_from = signature
        try:
            state = _summary.build_state(home, settings_budget=settings_budget, running=running, **scope)
        except Exception as e:  # e.g. a live file sealed into Parquet between listing and reading
            state = _summary.empty_state(home, f"ledger unreadable: {type(e).__name__}: {e}")
        signature = _signature(home)
        if signature == built_from:
            break  # else a kernel wrote while it was built: build again from what is there now
    if note:
        state["note"] = "; ".join(x for x in (state["note"], note) if x)
    with _cache_lock:
        if len(_cache) > 64:
            _cache.clear()
        _cache[key] = (now, time.monotonic() - now, built_from, state)
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
        scope = {k: (self.get_argument(k, "") or None) for k in ("kernel", "notebook")}
        home = self.settings.get("hybridnb_home")
        s_home, settings_budget, note = _settings(self.settings.get("server_root_dir"))
        home = Path(home) if home else s_home
        running = await self._running()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, compute, home, settings_budget, note, scope, running, fresh)


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
