"""End to end in a real browser (headless Chromium driven by Playwright): a rater rates a whole
small campaign, the votes land in the database, the results plots show them, and the pairs
export loads with datasets."""

import os
import shutil

import pytest

from arena_fixtures import MODELS, PASSWORD, launch, make_arena
from evals import arena

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian chromium not installed (scripts/install.sh installs it when run as root)")


def test_a_rater_rates_a_campaign_in_the_browser(tmp_path, tiny_dir):
    from datasets import load_dataset
    from playwright.sync_api import expect, sync_playwright

    config, store = make_arena(tmp_path, tiny_dir, prompts=3)
    site = launch(config, store)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(site.url)
            expect(page.locator("#campaign input")).to_have_value("tasting", timeout=30_000)
            page.locator("#rater-name textarea").fill("browser-bob")
            page.locator("#start").click()
            for number in range(1, 4):
                expect(page.locator("#progress")).to_contain_text(f"battle {number} of 3", timeout=30_000)
                html = page.content()
                assert not any(name in html for name in MODELS), "a model name was on the page before the vote"
                page.locator("#choice").get_by_text("A is better").click()
                page.locator("#vote").click()
                expect(page.locator("#reveal")).to_contain_text("A was", timeout=30_000)
                expect(page.locator("#answer-a textarea")).to_have_value("")  # the names show with no battle
                if number < 3:
                    page.locator("#next").click()
            expect(page.locator("#progress")).to_contain_text("3 / 3 rated", timeout=30_000)
            expect(page.locator("#next")).to_be_hidden()
            page.screenshot(path=str(tmp_path / "rated.png"))

            votes = store.votes("tasting")
            assert len(votes) == 3 and {v["rater"] for v in votes} == {"browser-bob"}

            page.get_by_role("tab", name="Admin").click()
            page.locator("#admin-password input").fill(PASSWORD)
            page.get_by_role("button", name="Unlock").click()
            page.get_by_role("tab", name="Results").click()
            page.get_by_role("button", name="Show results").click()
            expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
            expect(page.locator(".js-plotly-plot").first).to_contain_text("zebra", timeout=30_000)
            page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
            browser.close()
    finally:
        site.ui.close()
    out = tmp_path / "pairs.jsonl"
    decisive = sum(v["winner"] in ("a", "b") for v in votes)
    assert arena.export_pairs(store, "tasting", out) == decisive == 3
    assert len(load_dataset("json", data_files=str(out), split="train")) == 3
