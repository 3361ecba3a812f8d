"""CI's rule: a skip for a missing required part fails; only skips marked `vllm`/`optional` stay skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

CASES = '''
import pytest

def test_needs_chromium(monkeypatch):
    monkeypatch.delenv("HYBRIDNB_STRICT_SKIPS")  # as the hybridnb_home fixture does to every HYBRIDNB_* variable
    pytest.skip("needs Debian chromium")

@pytest.mark.vllm
def test_needs_real_vllm():
    pytest.skip("set HYBRIDNB_VLLM_PYTHON")

@pytest.mark.optional
def test_needs_gpu():
    pytest.skip("no GPU here")
'''


def run_cases(tmp_path: Path, strict: bool) -> str:
    tests = tmp_path / "tests"
    tests.mkdir()
    shutil.copy(Path(__file__).with_name("conftest.py"), tests / "conftest.py")
    shutil.copy(Path(__file__).with_name("openai_server.py"), tests / "openai_server.py")
    (tests / "test_cases.py").write_text(CASES)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    vllm: x\n    optional: y\n")
    env = {**os.environ, "HYBRIDNB_STRICT_SKIPS": "1" if strict else "0"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tests)],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    return out.stdout


def test_strict_mode_fails_a_required_skip_and_keeps_optional_ones(tmp_path):
    out = run_cases(tmp_path, strict=True)
    assert "1 failed, 2 skipped" in out
    assert "FAILED tests/test_cases.py::test_needs_chromium" in out


def test_without_strict_mode_every_skip_stays_a_skip(tmp_path):
    assert "3 skipped" in run_cases(tmp_path, strict=False)
