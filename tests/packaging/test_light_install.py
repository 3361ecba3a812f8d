"""`pip install hybridnb` (no extras) is a light core: magics, dispatcher, ledger and widget, no torch.

A fresh venv gets the project without extras; a real IPython shell in it loads the extension, runs
`%%reason` against the loopback OpenAI-protocol server and shows the widget. `%%local` with nothing
configured (the embedded model) is one clear error naming the pip command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import importlib.util, json, sys
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
ip = InteractiveShell.instance()
ip.run_line_magic("load_ext", "hybridnb")
ip.run_cell_magic("reason", "-o ans -q", "Say hello to the light core")
ans = ip.user_ns["ans"]
import hybridnb
w = hybridnb.widget()
try:
    ip.run_cell_magic("local", "-o loc -q", "Classify this")
    local_error = None
except UsageError as exc:
    local_error = str(exc)
out = {
    "text": ans.text, "cost": ans.cost_usd, "backend": ans.backend,
    "widget": type(w).__name__,
    "ledger": sorted(zip(hybridnb.ledger()["route"].to_list(), hybridnb.ledger()["status"].to_list())),
    "torch": importlib.util.find_spec("torch") is not None,
    "heavy_loaded": sorted(m for m in ("torch", "transformers", "bertopic", "sklearn", "model2vec") if m in sys.modules),
    "local_error": local_error,
}
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
def test_core_install_runs_reason_and_widget_without_torch(tmp_path, openai_server):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {**os.environ, "SKIP_JUPYTER_BUILDER": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(ROOT)], check=True, env=env, timeout=900)

    run_env = {k: v for k, v in os.environ.items() if not k.startswith("HYBRIDNB_")}
    run_env.update(HYBRIDNB_HOME=str(tmp_path / "home"), HYBRIDNB_REASON_BASE_URL=openai_server.base_url,
                   HYBRIDNB_REASON_API_KEY="sk-light-SECRET-1", HYBRIDNB_REASON_MODEL="gpt-4o-mini")
    proc = subprocess.run([str(py), "-c", SCRIPT], capture_output=True, text=True, env=run_env,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])

    assert out["torch"] is False and out["heavy_loaded"] == []
    assert out["text"].startswith("answer:") and out["backend"] == "openai"
    assert out["cost"] > 0
    assert out["ledger"][-1] == ["reason", "ok"]  # the paid call is in the ledger; the local failure is not billed
    assert out["widget"] == "SpendWidget"
    assert "pip install 'hybridnb[embedded]'" in out["local_error"]
    assert len([r for r in openai_server.log if r["path"].endswith("/chat/completions")]) == 1
    assert "sk-light-SECRET" not in proc.stdout + proc.stderr
