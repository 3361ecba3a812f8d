"""Real browser, real JupyterLab, real kernel: every view shows the same numbers.

A scripted session — a budget set in the kernel ($10 per session; the *server*
is configured with a $0.0000001 budget that must never be shown), calls on both
routes through the loopback OpenAI server, a cache hit, a batch — then the
widget, the status bar, the panel, ``%hybridnb summary``, the ``%hybridnb
export`` cell and the "Insert cost summary" cell must show the same total and
the same budget line, equal to what the ledger holds.

Debian chromium + Playwright (never ``playwright install``); screenshots go to
``test-artifacts/``.  Needs the built labextension (``cd extension && jlpm build:prod``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
import urllib.error

import pytest
from lab_support import ARTIFACTS, CHROME_ARGS, CHROMIUM, ROOT, get_json, require_browser, running_lab

pytestmark = pytest.mark.browser

LABEXT = ROOT / "hybridnb" / "labextension"
#: the server's own setting: a view that shows it instead of the kernel's budget fails
SERVER_BUDGET_USD = "0.0000001"

CELLS = [
    "import os\nos.environ['HYBRIDNB_BUDGET_USD'] = '10'\n%load_ext hybridnb\nimport hybridnb",
    "%%reason\nWhat is the capital of France?",
    "%%reason\nWhat is the capital of France?",  # a cache hit
    "%%local\nSay hello to the operator",
    "import polars as pl\ntickets = pl.DataFrame({'text': ['a cost issue', 'risk here', 'a cost issue']})",
    "%%reason --over tickets -o labelled\nConcern? {text}",  # a batch (its duplicate row is a cache hit)
    "hybridnb.widget()",
    "%hybridnb summary",
    "%hybridnb export",
]
WIDGET, SUMMARY, EXPORT = 6, 7, 8


@pytest.fixture
def lab(tmp_path, openai_server):
    """JupyterLab with the hybridnb server + lab extensions; kernels on the loopback server (both routes)."""
    require_browser()
    if not (LABEXT / "package.json").exists():
        pytest.skip("the labextension is not built: cd extension && jlpm install && jlpm build")
    cfg, labext = tmp_path / "jcfg", tmp_path / "labext"
    cfg.mkdir()
    labext.mkdir()
    (labext / "hybridnb").symlink_to(LABEXT, target_is_directory=True)
    (cfg / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"hybridnb.notebook.server": True}}}))
    env = {"HYBRIDNB_BUDGET_USD": SERVER_BUDGET_USD, "HYBRIDNB_LOCAL_BASE_URL": openai_server.base_url,
           "HYBRIDNB_LOCAL_MODEL": "test-local-model"}
    with running_lab(tmp_path, openai_server, "spend.ipynb", CELLS, token=secrets.token_hex(16),
                     env=env, args=[f"--LabApp.extra_labextensions_path={labext}"]) as running:
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
            raise AssertionError(f"timed out waiting for {what}: last {value!r}")
        time.sleep(0.5)


def _cell(page, i: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(i)


def _run_cell(page, i: int) -> None:
    _cell(page, i).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def _flat(text: str) -> str:
    return " ".join(text.split())


def _expected(home, kernel_id: str):
    """The truth, straight from the ledger: the notebook's total and the session budget's line."""
    from hybridnb.spend import render
    from hybridnb.spend.report import Budget
    from hybridnb.store.ledger import connect
    from hybridnb.store.scopes import spent_usd

    con = connect(home)
    calls, hits, cost = con.execute(
        "SELECT count(*) FILTER (WHERE status <> 'cached'), count(*) FILTER (WHERE status = 'cached'),"
        " sum(cost_usd) FROM ledger WHERE ends_with(notebook, '/spend.ipynb')").fetchone()
    routes = {r for (r,) in con.execute("SELECT DISTINCT route FROM ledger").fetchall()}
    con.close()
    spent = spent_usd(home, "session", session=f"k-{kernel_id}")
    return calls, hits, render.money(cost), render.budget_line(Budget(10.0, "session", spent_usd=spent)), routes


def test_every_view_shows_the_same_numbers(lab, openai_server):
    from playwright.sync_api import sync_playwright

    base, token = lab["url"], lab["token"]
    with pytest.raises(urllib.error.HTTPError) as e:  # the real server refuses without the token
        get_json(f"{base}/hybridnb/summary")
    assert e.value.code == 403

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        try:
            page.goto(f"{base}/lab/tree/spend.ipynb?token={token}")
            status = page.locator(".jp-hybridnb-status")
            status.wait_for(state="visible", timeout=90_000)
            _cell(page, len(CELLS) - 1).wait_for(timeout=60_000)
            # a cell run before the kernel is connected is dropped: wait for it to be idle
            page.get_by_text(re.compile(r"\| Idle$")).first.wait_for(timeout=90_000)
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item:visible", has_text=re.compile(r"^Run All Cells")).first.click()

            # %hybridnb export (the last cell) puts the cell below it: run it so it renders
            _wait_for(lambda: page.locator(".jp-Notebook .jp-Cell").count() == len(CELLS) + 1, 180,
                      "the exported cell")
            exported_src = _cell(page, EXPORT + 1).locator(".jp-InputArea-editor").inner_text()
            assert exported_src.startswith("%%markdown")
            _run_cell(page, EXPORT + 1)
            exported = _cell(page, EXPORT + 1).locator(".jp-OutputArea")
            exported.locator("table").first.wait_for(timeout=60_000)

            kid = get_json(f"{base}/api/sessions?token={token}")[0]["kernel"]["id"]
            calls, hits, total, budget_line, routes = _expected(lab["home"], kid)
            assert routes == {"reason", "local"} and hits >= 2 and calls >= 4
            assert "session budget: $" in budget_line and "of $10.00 spent" in budget_line

            # the widget
            widget = _cell(page, WIDGET).locator(".hnb-widget")
            widget.wait_for(timeout=60_000)
            assert widget.locator("[data-hnb='total']").inner_text() == total
            assert _flat(widget.locator("[data-hnb='budget']").inner_text()) == budget_line

            # %hybridnb summary and the exported cell
            summary = _flat(_cell(page, SUMMARY).locator(".jp-OutputArea").inner_text())
            for shown in (summary, _flat(exported.inner_text())):
                assert total in shown and budget_line in shown and "this notebook (spend.ipynb)" in shown
            for out in (exported, _cell(page, SUMMARY).locator(".jp-OutputArea")):
                assert out.locator("mjx-container, .MathJax").count() == 0  # no $ became LaTeX

            # the status bar: the kernel's budget, never the server's $0.0000001
            want_status = f"hybridnb {total} · 0% of session budget"
            _wait_for(lambda: status.inner_text() == want_status and status.inner_text(), 60,
                      f"the status bar to read {want_status!r}")
            assert status.get_attribute("data-budget-state") == "ok"
            assert budget_line in status.get_attribute("title")

            # the panel
            status.click()
            panel = page.locator("#jp-hybridnb-operator")
            panel.wait_for(state="visible", timeout=10_000)
            _wait_for(lambda: "test-local-model" in panel.inner_text(), 30, "the panel's spend table")
            assert _flat(panel.locator(".jp-hybridnb-budget").inner_text()) == budget_line
            assert total in panel.locator(".jp-hybridnb-stats").inner_text()

            # "Insert cost summary": below the active (first) cell, the same Markdown as the export
            exported_text = _flat(exported.locator(".jp-RenderedMarkdown").inner_text())
            assert page.locator('.jp-NotebookPanel-toolbar [data-command="hybridnb:insert-summary"]').count() == 1
            _cell(page, 0).locator(".jp-InputPrompt").click()
            page.keyboard.press("Escape")
            _palette(page, "hybridnb: Insert cost summary")
            inserted = _cell(page, 1)
            _wait_for(lambda: "hybridnb cost summary" in inserted.inner_text(), 30, "the summary cell")
            assert "jp-MarkdownCell" in inserted.get_attribute("class")
            rendered = inserted.locator(".jp-RenderedMarkdown")
            assert rendered.locator("mjx-container, .MathJax").count() == 0
            shown = _flat(rendered.inner_text())
            assert total in shown and budget_line in shown
            # the exported cell and the inserted cell are one rendering (the minute stamp aside)
            stamp = re.compile(r"Generated \S+ \S+ from")
            assert stamp.sub("", shown) == stamp.sub("", exported_text)
            page.screenshot(path=str(ARTIFACTS / "extension-e2e.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "extension-e2e-failure.png"), full_page=True)
            print("lab log:", lab["log"].read_text()[-3000:])
            raise
        finally:
            browser.close()
