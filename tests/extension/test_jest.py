"""The extension's TypeScript unit tests (jest), run from the one test command."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXT = Path(__file__).resolve().parents[2] / "extension"


def test_jest_suite_passes():
    jlpm = Path(sys.executable).with_name("jlpm")
    if not (EXT / "node_modules").is_dir() or not shutil.which("node") or not jlpm.exists():
        if os.environ.get("CI"):
            pytest.fail("extension/node_modules missing: `pip install -e .` should have run jlpm install")
        pytest.skip("extension not installed (cd extension && jlpm install)")
    proc = subprocess.run([str(jlpm), "test", "--ci"], cwd=EXT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "failed" not in proc.stderr.split("Tests:")[-1].split("\n")[0]
