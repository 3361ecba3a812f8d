"""A real JupyterLab on a free loopback port for the browser tests, its kernels
pointed at the loopback OpenAI server; and Debian chromium's launch options."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def require_browser() -> None:
    """Skip unless Debian chromium and Playwright are installed (never `playwright install`)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian chromium: apt-get install -y chromium")
    pytest.importorskip("playwright")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str, timeout: float = 3.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read() or b"null")


def write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


@contextlib.contextmanager
def running_lab(tmp_path: Path, openai_server, notebook: str, cells: list[str], *, token: str = "",
                env: dict[str, str] | None = None, args: list[str] | None = None, start_timeout_s: float = 120):
    """Start JupyterLab serving ``notebook`` (made of ``cells``); yield url/token/home/log; stop it."""
    port = free_port()
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    write_notebook(work / notebook, cells)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDNB_")}
    full_env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        HYBRIDNB_HOME=str(tmp_path / "home"),
        HYBRIDNB_REASON_BASE_URL=openai_server.base_url,
        HYBRIDNB_REASON_API_KEY="sk-test-browser-0123456789",
        HYBRIDNB_REASON_MODEL="gpt-4o-mini",
        JUPYTER_CONFIG_DIR=str(tmp_path / "jcfg"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-ws"),
        IPYTHONDIR=str(tmp_path / "ipython"),
    )
    full_env.update(env or {})
    log_path = tmp_path / "lab.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         "--ServerApp.password=", "--ServerApp.allow_root=True", f"--ServerApp.root_dir={work}",
         "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         *(args or [])],
        env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    auth = f"?token={token}" if token else ""
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            try:
                get_json(f"{base}/api/status{auth}")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    raise RuntimeError(log_path.read_text()[-3000:])
                time.sleep(0.5)
        yield {"url": base, "token": token, "home": tmp_path / "home", "log": log_path}
    finally:
        _stop(proc, base, auth)
        log.close()


def _stop(proc: subprocess.Popen, base: str, auth: str) -> None:
    """Delete the kernels (so none outlive the test), then stop the server."""
    try:
        for k in get_json(f"{base}/api/kernels{auth}"):
            req = urllib.request.Request(f"{base}/api/kernels/{k['id']}{auth}", method="DELETE")
            urllib.request.urlopen(req, timeout=5).close()
    except OSError:
        pass
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
