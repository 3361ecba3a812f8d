"""notebooks/corpus_workflow.ipynb runs headless in a real kernel (reasoning on the loopback server)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).parents[2] / "notebooks" / "corpus_workflow.ipynb"


@pytest.mark.slow
def test_corpus_notebook_runs_and_reports(reason_on_server, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(NOTEBOOK.parents[1]))  # the kernel imports this checkout's hybridnb
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "\n".join(str(v) for cell in nb.cells for out in cell.get("outputs", [])
                     for v in [out.get("text", "")] + list(out.get("data", {}).values()))
    assert "[corpus] label_rounds" in text
    assert "quality.spearman_primary" in text and "decided_by_reason" in text
    assert (tmp_path / "corpus_small.duckdb").exists()
    assert (tmp_path / "corpus_small_report.md").read_text().count("## ") >= 10
    assert len(reason_on_server.log) > 10  # the %%reason cell and the workflow's decisions
