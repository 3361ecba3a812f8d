"""Real browser: JupyterLab runs cells that spend through the loopback server,
and the live spend widget's numbers change while the cells run.

Debian chromium + Playwright (never ``playwright install``); a screenshot is
kept in ``test-artifacts/operator-widget.png``.
"""

from __future__ import annotations

import re
import time

import pytest
from lab_support import ARTIFACTS, CHROME_ARGS, CHROMIUM, require_browser, running_lab

pytestmark = pytest.mark.browser

ROWS = 25

CELLS = [
    "%load_ext hybridnb\n%hybridnb widget",
    "%%reason\nWhat is the capital of France?",
    "import hybridnb\n"
    f"for i in range({ROWS}):\n"
    "    hybridnb.reason(f'Classify ticket number {i} as bug or feature', choices=['bug', 'feature'])",
    "%hybridnb export",
]


@pytest.fixture
def lab(tmp_path, openai_server):
    """JupyterLab on a free loopback port, its kernels pointed at the test server."""
    require_browser()
    openai_server.script(delay_s=0.15)
    with running_lab(tmp_path, openai_server, "ops.ipynb", CELLS, start_timeout_s=90,
                     env={"HYBRIDNB_BUDGET_USD": "0.05"}) as running:
        yield running


def _text(page, sel: str) -> str:
    loc = page.locator(sel)
    return loc.first.inner_text() if loc.count() else ""


def _prompt(page, i: int) -> str:
    return page.locator(".jp-Notebook .jp-Cell").nth(i).locator(".jp-InputPrompt").inner_text()


def _run_cell(page, i: int) -> None:
    """Shift+Enter on cell ``i``; retried while the kernel was not ready to take it."""
    cell = page.locator(".jp-Notebook .jp-Cell").nth(i)
    for _ in range(10):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        for _ in range(30):
            if re.search(r"\[(\*|\d+)\]", _prompt(page, i)):
                return
            page.wait_for_timeout(100)
    raise AssertionError(f"cell {i} never started: {_prompt(page, i)!r}")


def _busy(page, i: int) -> bool:
    return "*" in _prompt(page, i)


def _usd(text: str) -> float:
    m = re.search(r"\$([\d,]+\.\d+)", text)
    return float(m.group(1).replace(",", "")) if m else float("nan")


def test_widget_updates_live_in_jupyterlab(lab, openai_server):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab['url']}/lab/tree/ops.ipynb")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
            page.wait_for_function(
                "document.querySelector('.jp-StatusBar-Widget')"
                " && /Idle/.test(document.querySelector('#jp-main-statusbar').innerText)",
                timeout=90_000)

            no = page.get_by_role("button", name="No")  # the "Jupyter news?" toast
            if no.count():
                no.first.click()

            # 1. the widget renders from an empty ledger
            _run_cell(page, 0)
            page.wait_for_selector(".hnb-widget [data-hnb='total']", timeout=60_000)
            assert _text(page, "[data-hnb='calls']") == "0"
            assert _usd(_text(page, "[data-hnb='total']")) == 0.0
            assert "session budget: $0.00 of $0.0500 spent" in _text(page, "[data-hnb='budget']")

            # 2. one %%reason cell spends: the numbers move
            _run_cell(page, 1)
            page.wait_for_function(
                "document.querySelector(\"[data-hnb='calls']\")?.innerText === '1'", timeout=60_000)
            after_one = _usd(_text(page, "[data-hnb='total']"))
            assert after_one > 0

            # 3. a loop of calls: the widget counts up *while* the cell still runs
            _run_cell(page, 2)
            seen_live = set()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                calls = int(_text(page, "[data-hnb='calls']").replace(",", "") or 0)
                if _busy(page, 2) and 1 < calls < ROWS + 1:
                    seen_live.add(calls)
                if calls == ROWS + 1 and not _busy(page, 2):
                    break
                page.wait_for_timeout(100)
            assert int(_text(page, "[data-hnb='calls']")) == ROWS + 1
            assert len(seen_live) >= 2, f"widget did not update during the cell: {seen_live}"
            final = _usd(_text(page, "[data-hnb='total']"))
            assert final > after_one
            assert page.locator("[data-hnb='spark'] polyline").count() == 1
            assert "reason" in _text(page, "[data-hnb='routes']")

            # 4. %hybridnb export inserts the summary as a new cell below; run, it renders
            _run_cell(page, 3)
            page.wait_for_function(
                "document.querySelectorAll('.jp-Notebook .jp-Cell').length >= 5"
                " && document.querySelectorAll('.jp-Notebook .jp-Cell')[4].innerText.includes('%%markdown')",
                timeout=60_000)
            _run_cell(page, 4)
            out = page.locator(".jp-Notebook .jp-Cell").nth(4).locator(".jp-OutputArea")
            out.locator("table").wait_for(timeout=60_000)
            table = out.inner_text()
            assert "hybridnb cost summary" in table and "gpt-4o-mini" in table
            assert f"{ROWS + 1}" in table and "$" in table and "\\$" not in table
            assert out.locator("mjx-container, .MathJax").count() == 0, "$ rendered as LaTeX"
            page.locator(".hnb-widget").first.scroll_into_view_if_needed()
            page.locator(".hnb-widget").first.screenshot(path=str(ARTIFACTS / "operator-widget.png"))
            page.screenshot(path=str(ARTIFACTS / "operator-widget-page.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "operator-widget-failure.png"))
            outputs = page.locator(".jp-Notebook .jp-OutputArea").all_inner_texts()
            print("cell outputs:", outputs, "\nlab log:", lab["log"].read_text()[-3000:])
            raise
        finally:
            browser.close()

    # the widget showed what the ledger holds
    from hybridnb.store.ledger import connect

    (n, total), = connect(lab["home"]).sql(
        "SELECT count(*), sum(cost_usd) FROM ledger WHERE status <> 'cached'").fetchall()
    assert n == ROWS + 1
    assert final == pytest.approx(total, abs=6e-5)
    assert len(openai_server.log) == ROWS + 1
