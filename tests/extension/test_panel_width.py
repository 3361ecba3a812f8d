"""The operator panel reads at its default width in a 1500×950 window: every table cell (cost and calls
included) and the Refresh button lie inside the panel, none cut off at its right edge.

Real JupyterLab, the built extension, Debian chromium; the screenshot is kept as
``test-artifacts/panel-default-width.png``.
"""

from __future__ import annotations

import json
import re
import secrets

import pytest
from lab_support import ARTIFACTS, CHROME_ARGS, CHROMIUM, ROOT, require_browser, running_lab

pytestmark = pytest.mark.browser

LABEXT = ROOT / "hybridnb" / "labextension"
CELLS = ["%load_ext hybridnb", "%%reason\nWhat is the capital of France?", "%%local --choices yes,no\nIs it Paris?"]

#: every element of the panel that must be seen: its table cells, headers and buttons
_CLIPPED = """(panel) => {
  const box = panel.getBoundingClientRect();
  const out = [];
  for (const el of panel.querySelectorAll('td, th, button, h3')) {
    if (el.tagName === 'TH' && getComputedStyle(el.closest('thead')).display === 'none') continue;
    const r = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (style.display === 'none' || style.visibility === 'hidden' || r.width === 0) {
      out.push({text: el.textContent, why: 'hidden'});
    } else if (r.right > box.right + 0.5 || r.left < box.left - 0.5) {
      out.push({text: el.textContent, why: `x ${r.left.toFixed(0)}..${r.right.toFixed(0)} outside ` +
                `${box.left.toFixed(0)}..${box.right.toFixed(0)}`});
    }
  }
  return {clipped: out, scrollable: panel.scrollWidth > panel.clientWidth + 1, width: box.width};
}"""

#: the text of each body row's cell under the given headers, for the table whose title starts with `title`
_COLUMNS = """(panel, [title, names]) => {
  const section = [...panel.querySelectorAll('section')].find(s => s.querySelector('h3')?.textContent.startsWith(title));
  const heads = [...section.querySelectorAll('thead th')].map(th => th.textContent.trim());
  return [...section.querySelectorAll('tbody tr')].map(tr => {
    const cells = [...tr.children];
    const row = {};
    for (const n of ['model', ...names]) {
      const td = cells[heads.indexOf(n)];
      const r = td ? td.getBoundingClientRect() : {width: 0, height: 0};
      row[n] = {text: td ? td.textContent : `no "${n}" column in ${heads}`, shown: r.width > 0 && r.height > 0};
    }
    return row;
  });
}"""


@pytest.fixture
def lab(tmp_path, openai_server):
    require_browser()
    if not (LABEXT / "package.json").exists():
        pytest.skip("the labextension is not built: cd extension && jlpm install && jlpm build")
    cfg, labext = tmp_path / "jcfg", tmp_path / "labext"
    cfg.mkdir()
    labext.mkdir()
    (labext / "hybridnb").symlink_to(LABEXT, target_is_directory=True)
    (cfg / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": {"hybridnb.notebook.server": True}}}))
    with running_lab(tmp_path, openai_server, "width.ipynb", CELLS, token=secrets.token_hex(16),
                     args=[f"--LabApp.extra_labextensions_path={labext}"]) as running:
        yield running


def test_panel_shows_cost_and_calls_at_its_default_width(lab):
    from playwright.sync_api import sync_playwright

    base, token = lab["url"], lab["token"]
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        try:
            page.goto(f"{base}/lab/tree/width.ipynb?token={token}")
            page.locator(".jp-hybridnb-status").wait_for(state="visible", timeout=90_000)
            page.get_by_text(re.compile(r"\| Idle$")).first.wait_for(timeout=90_000)
            page.locator(".lm-MenuBar-item", has_text=re.compile(r"^Run$")).click()
            page.locator(".lm-Menu-item:visible", has_text=re.compile(r"^Run All Cells")).first.click()
            page.locator(".jp-hybridnb-status").click()
            panel = page.locator("#jp-hybridnb-operator")
            panel.wait_for(state="visible", timeout=10_000)
            # both routes' rows are in: the spend table has a reason and a local line
            spend = panel.locator("section", has=page.locator("h3", has_text="Spend by")).locator("tbody tr")
            spend.filter(has_text="SmolLM2").first.wait_for(timeout=240_000)
            spend.filter(has_text="gpt-4o-mini").first.wait_for(timeout=30_000)
            panel.get_by_text("2 calls").first.wait_for(timeout=60_000)  # both calls are in the summary
            page.screenshot(path=str(ARTIFACTS / "panel-default-width.png"))
            result = panel.evaluate(_CLIPPED)
            assert result["clipped"] == [], result
            assert not result["scrollable"], result
            rows = panel.evaluate(_COLUMNS, ["Spend by", ["cost", "calls"]])
            by_model = {r["model"]["text"]: r for r in rows if r["model"]["text"]}  # (a total row has no model)
            assert set(by_model) == {"gpt-4o-mini", "SmolLM2-135M-Instruct"}, rows
            for r in by_model.values():
                assert all(c["shown"] for c in r.values()), r
                assert r["calls"]["text"] == "1" and re.fullmatch(r"\$0\.0\d+", r["cost"]["text"]), r
            assert panel.get_by_role("button", name="Refresh").is_visible()
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "panel-default-width-failure.png"))
            raise
        finally:
            browser.close()
