"""Real browser, real JupyterLab, the built extension: a cell spends through the
loopback OpenAI server, the status bar changes, the panel opens from it, and
"hybridnb: Insert cost summary" from the palette inserts the summary cell.

Debian chromium + Playwright (never ``playwright install``); the screenshot is
kept as ``test-artifacts/extension-e2e.png``.  Needs the built labextension
(``pip install .``, or ``cd extension && jlpm install && jlpm build``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error
import urllib.request

import pytest
from lab_support import ARTIFACTS, CHROME_ARGS, CHROMIUM, ROOT, get_json, require_browser, running_lab

pytestmark = pytest.mark.browser

LABEXT = ROOT / "hybridnb" / "labextension"
#: the server's budget; the kernel raises its own so the call is sent, then the
#: server-side view is over budget and the status bar turns red.
SERVER_BUDGET_USD = "0.0000001"

CELLS = [
    "import os\nos.environ['HYBRIDNB_BUDGET_USD'] = '10'\n%load_ext hybridnb",
    "%%reason\nWhat is the capital of France?",
]


@pytest.fixture
def lab(tmp_path, openai_server):
    """JupyterLab with the hybridnb server + lab extensions, token auth, kernels on the test server."""
    require_browser()
    if not (LABEXT / "package.json").exists():
        pytest.skip("the labextension is not built: cd extension && jlpm install && jlpm build")
    cfg, labext = tmp_path / "jcfg", tmp_path / "labext"
    cfg.mkdir()
    labext.mkdir()
    (labext / "hybridnb").symlink_to(LABEXT, target_is_directory=True)
    (cfg / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"hybridnb.notebook.server": True}}}))
    with running_lab(tmp_path, openai_server, "spend.ipynb", CELLS, token=secrets.token_hex(16),
                     env={"HYBRIDNB_BUDGET_USD": SERVER_BUDGET_USD},
                     args=[f"--LabApp.extra_labextensions_path={labext}"]) as running:
        yield running


def _palette(page, label: str) -> None:
    """Run a command by its label from the command palette (the modal may lose focus: retry)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    box = page.locator(".lm-CommandPalette-input:visible")
    active = page.locator(".lm-CommandPalette-item.lm-mod-active:visible")
    for _ in range(4):
        page.keyboard.press("Control+Shift+C")
        try:
            box.wait_for(state="visible", timeout=5_000)
            box.fill(label, timeout=5_000)
            active.filter(has_text=label).first.wait_for(timeout=5_000)
            page.keyboard.press("Enter")
            return
        except PlaywrightTimeout:
            page.keyboard.press("Escape")
    raise AssertionError(f"could not run {label!r} from the command palette")


def _wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_status_bar_panel_and_summary_cell(lab):
    from playwright.sync_api import sync_playwright

    from hybridnb.store.ledger import connect

    base, token = lab["url"], lab["token"]
    with pytest.raises(urllib.error.HTTPError) as e:  # the real server refuses without the token
        get_json(f"{base}/hybridnb/summary")
    assert e.value.code == 403

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        try:
            page.goto(f"{base}/lab/tree/spend.ipynb?token={token}")
            status = page.locator(".jp-hybridnb-status")
            status.wait_for(state="visible", timeout=90_000)
            page.locator(".jp-Notebook .jp-Cell").nth(1).wait_for(timeout=60_000)
            # the kernel is known once the notebook's session is up: status shows this notebook
            _wait_for(lambda: "·" in status.inner_text(), 60, "the notebook-scoped status text")
            before = status.inner_text()
            assert before == "hybridnb $0.0000 · today $0.0000", before
            assert status.get_attribute("data-budget-state") == "ok"

            # a cell run before the kernel is connected is dropped: wait for it to be idle
            page.get_by_text(re.compile(r"\| Idle$")).first.wait_for(timeout=90_000)
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item:visible", has_text=re.compile(r"^Run All Cells")).first.click()
            after = _wait_for(
                lambda: (t := status.inner_text()) != before and "$0.0000 ·" not in t and t,
                90, "the status bar to show the spend")
            assert re.fullmatch(r"hybridnb \$0\.0\d+ · today \$0\.0\d+", after), after
            _wait_for(lambda: status.get_attribute("data-budget-state") == "over", 30, "budget state")
            assert "jp-hybridnb-budget-over" in status.get_attribute("class")

            # the spend shown belongs to this kernel: it is in the ledger under its session
            kid = get_json(f"{base}/api/sessions?token={token}")[0]["kernel"]["id"]
            con = connect(lab["home"])
            n, cost = con.execute("SELECT count(*), sum(cost_usd) FROM ledger "
                                  "WHERE contains(session, ?)", [kid]).fetchone()
            con.close()
            assert n >= 1 and cost > 0

            status.click()
            panel = page.locator("#jp-hybridnb-operator")
            panel.wait_for(state="visible", timeout=10_000)
            _wait_for(lambda: "gpt-4o-mini" in panel.inner_text(), 30, "the panel's spend table")
            text = panel.inner_text()
            assert "This notebook:" in text and "reason" in text

            # toolbar button present; the palette command inserts below the active (first) cell
            assert page.locator('.jp-NotebookPanel-toolbar [data-command="hybridnb:insert-summary"]').count() == 1
            page.locator(".jp-Notebook .jp-Cell").nth(0).locator(".jp-InputPrompt").click()
            page.keyboard.press("Escape")
            _palette(page, "hybridnb: Insert cost summary")
            cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
            _wait_for(lambda: "hybridnb cost summary" in cell.inner_text(), 30, "the summary cell")
            assert "jp-MarkdownCell" in cell.get_attribute("class")
            rendered = cell.locator(".jp-RenderedMarkdown")
            assert rendered.locator("table").count() == 2  # spend by route/backend/model; budget
            assert rendered.locator("mjx-container, .MathJax").count() == 0  # $ did not turn into LaTeX
            assert "gpt-4o-mini" in rendered.inner_text() and "$" in rendered.inner_text()
            assert page.locator(".jp-Notebook .jp-Cell").count() == len(CELLS) + 1
            page.screenshot(path=str(ARTIFACTS / "extension-e2e.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "extension-e2e-failure.png"), full_page=True)
            raise
        finally:
            browser.close()
