"""Reference notebooks run headless in a real kernel (nbclient)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"


def run_notebook(name: str, tmp_path: Path, timeout: int = 600):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return nb


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            for v in out.get("data", {}).values():
                parts.append(v if isinstance(v, str) else str(v))
    return "\n".join(parts)


def test_quick_tour_against_a_loopback_api(hybridnb_home, openai_server, monkeypatch, tmp_path):
    """Both routes on the loopback server: the magics work in a real kernel."""
    monkeypatch.setenv("HYBRIDNB_REASON_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("HYBRIDNB_REASON_API_KEY", "sk-nb-SECRET-987654321")
    monkeypatch.setenv("HYBRIDNB_REASON_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("HYBRIDNB_LOCAL_BASE_URL", openai_server.base_url)
    monkeypatch.setenv("HYBRIDNB_LOCAL_MODEL", "test-local-model")
    nb = run_notebook("quick_tour.ipynb", tmp_path)
    text = outputs_text(nb)
    assert "%%reason · openai · gpt-4o-mini" in text
    assert "cached (saved" in text
    assert "sk-nb-SECRET" not in text
    chats = [r for r in openai_server.log if r["path"].endswith("/chat/completions")]
    assert len(chats) == 2  # reason once (second is cached) + local once
    import hybridnb

    df = hybridnb.ledger()
    assert sorted(df["status"].to_list()) == ["cached", "ok", "ok"]
    assert df["session"].str.starts_with("k-").all()  # tagged with the kernel id


@pytest.mark.slow
def test_quick_tour_offline_defaults(hybridnb_home, tmp_path):
    """No key, no server: %%reason is the offline stand-in, %%local the embedded model."""
    nb = run_notebook("quick_tour.ipynb", tmp_path, timeout=900)
    text = outputs_text(nb)
    assert "offline stand-in for gpt-5" in text
    import hybridnb

    df = hybridnb.ledger()
    reason_rows = df.filter(df["route"] == "reason")
    assert reason_rows["simulated"].all() and (reason_rows["reference_model"] == "gpt-5").all()
    assert reason_rows.filter(reason_rows["status"] == "ok")["cost_usd"].sum() > 0
