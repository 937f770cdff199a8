"""End to end in a real browser (headless Chromium driven by Playwright): a rater rates a whole
small campaign, the votes land in the database, the results plots show them, and the pairs
export loads with datasets."""

import os
import shutil
from contextlib import contextmanager

import pytest

from arena_fixtures import MODELS, PASSWORD, launch, make_arena
from blindarena.export import export_pairs
from blindarena.records import CampaignSettings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

@contextmanager
def page_at(url: str, width: int = 1280, height: int = 1600):
    """A page of headless Chromium at `url`, the window `width` x `height` px."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()


def unlock_admin(page) -> None:
    """Open the Admin tab and unlock it with the password."""
    page.get_by_role("tab", name="Admin").click()
    page.locator("#admin-password input").fill(PASSWORD)
    page.get_by_role("button", name="Unlock").click()


def show_results_as_admin(page) -> None:
    """Unlock the admin tabs with the password, then show the selected campaign's results."""
    unlock_admin(page)
    page.get_by_role("tab", name="Results").click()
    page.get_by_role("button", name="Show results").click()


pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
    reason="Debian chromium not installed (scripts/install.sh installs it when run as root)")


def test_a_rater_rates_a_campaign_in_the_browser(tmp_path, tiny_dir):
    from datasets import load_dataset
    from playwright.sync_api import expect

    config, store = make_arena(tmp_path, tiny_dir, prompts=3)
    site = launch(config, store)
    try:
        with page_at(site.url) as page:
            expect(page.locator("#campaign input")).to_have_value("tasting", timeout=30_000)
            page.locator("#rater-name textarea").fill("browser-bob")
            page.locator("#start").click()
            for number in range(1, 4):
                expect(page.locator("#progress")).to_contain_text(f"battle {number} of 3", timeout=30_000)
                html = page.content()
                assert not any(name in html for name in MODELS), "a model name was on the page before the vote"
                shown = page.locator("#answer-a").inner_text()
                page.locator("#vote-a").click()  # one click votes
                expect(page.locator("#reveal")).to_contain_text("A was", timeout=30_000)
                # The battle stays with the names above its sides and the choice marked, until Next.
                expect(page.locator("#label-a")).to_contain_text("your choice")
                assert any(name in page.locator("#label-a").inner_text() for name in MODELS)
                if shown.strip():
                    expect(page.locator("#answer-a")).to_contain_text(shown.strip()[:20])
                if number < 3:
                    page.locator("#next").click()
            expect(page.locator("#progress")).to_contain_text("3 / 3 rated", timeout=30_000)
            expect(page.locator("#next")).to_be_hidden()
            page.screenshot(path=str(tmp_path / "rated.png"))

            votes = store.votes("tasting")
            assert len(votes) == 3 and {v["rater"] for v in votes} == {"browser-bob"}

            show_results_as_admin(page)
            expect(page.locator(".js-plotly-plot").first).to_be_visible(timeout=60_000)
            expect(page.locator(".js-plotly-plot").first).to_contain_text("zebra", timeout=30_000)
            expect(page.locator(".js-plotly-plot", has_text="controlled for style")).to_have_count(1, timeout=30_000)
            expect(page.locator("#raters")).to_contain_text("browser-bob", timeout=30_000)  # the rater table
            page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
    finally:
        site.ui.close()
    out = tmp_path / "pairs.jsonl"
    decisive = sum(v["winner"] in ("a", "b") for v in votes)
    assert export_pairs(store, "tasting", out) == decisive == 3
    assert len(load_dataset("json", data_files=str(out), split="train")) == 3


def test_rating_page_is_safe_keyboard_driven_phone_sized_and_deep_linked(tmp_path, tiny_dir):
    from playwright.sync_api import expect

    config, store = make_arena(tmp_path, tiny_dir, prompts=2)
    evil = '<img src=x onerror="window.__pwned = 1"> Which <b>list</b> is right?'
    answer = '<script>window.__pwned = 2</script>**Bold** and a list:\n\n- one\n- two\n\n```\nprint("<b>")\n```'
    guidelines = "## Rate the *content*\n\n<script>window.__pwned = 3</script>Prefer correct answers."
    store.create_campaign("safety", MODELS, [{"prompt": evil}, {"prompt": "second question"}], {},
                          settings=CampaignSettings(guidelines=guidelines))
    store.save_answers([(pid, model, answer if model == MODELS[0] else "plain answer", 5, "")
                        for pid, _, model in store.missing_answers("safety")])
    store.set_status("safety", "ready")
    site = launch(config, store)
    try:
        with page_at(site.url, width=390, height=844) as page:  # a phone
            expect(page.locator("#campaign input")).to_have_value("safety", timeout=30_000)
            page.locator("#rater-name textarea").fill("phone-pat")
            page.locator("#start").click()
            expect(page.locator("#progress")).to_contain_text("battle 1 of 2", timeout=30_000)
            expect(page.locator("#guidelines")).to_contain_text("Prefer correct answers.")  # before the first vote
            assert "<script>" in page.locator("#guidelines").inner_text()  # shown as text, never run
            checked = []

            def check_battle():
                shown = " ".join(page.locator(f"#{i}").inner_text() for i in ("prompt", "answer-a", "answer-b"))
                if "Which" in shown:  # the injected battle (the order is shuffled per rater)
                    assert "<img" in shown and "<b>list</b>" in shown  # HTML shows as text
                    assert "<script>" in shown and page.locator("#answer-a code, #answer-b code").count() >= 1
                    checked.append(True)
                assert page.evaluate("window.__pwned") is None  # nothing ran

            check_battle()
            assert page.evaluate("document.documentElement.scrollWidth") <= 392  # no sideways scrolling
            for slug in ("a", "b", "tie", "bad"):
                box = page.locator(f"#vote-{slug}").bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 391
            page.locator("body").press("2")  # keyboard: B is better
            expect(page.locator("#reveal")).to_contain_text("B was", timeout=30_000)
            expect(page.locator("#label-b")).to_contain_text("your choice")  # the battle stays, names above it
            assert page.locator("#answer-b").inner_text().strip()
            assert page.evaluate("document.documentElement.scrollWidth") <= 392
            page.locator("body").press("n")
            expect(page.locator("#progress")).to_contain_text("battle 2 of 2", timeout=30_000)
            check_battle()
            assert checked == [True]
            page.screenshot(path=str(tmp_path / "phone.png"), full_page=True)
            assert len(store.votes("safety")) == 1

            page.goto(f"{site.url}?a={MODELS[0]}&b={MODELS[1]}")  # a deep link to the side-by-side pair
            page.get_by_role("tab", name="Side by side").click()
            expect(page.locator("#demo-left input")).to_have_value(MODELS[0], timeout=30_000)
            expect(page.locator("#demo-right input")).to_have_value(MODELS[1])
    finally:
        site.ui.close()


def test_models_tab_draws_the_family_tree_and_a_trained_entrys_curves(tmp_path, tiny_dir):
    import io

    from PIL import Image
    from playwright.sync_api import expect
    from trl import ModelConfig, SFTConfig

    from conftest import ROOT
    from posttrain.train import RunArguments, run

    config, store = make_arena(tmp_path, tiny_dir, prompts=2)
    data = ROOT / "data" / "sft"
    run("sft", RunArguments(name="zebra-sft", base="tiny", parent=MODELS[0], data=str(data / "train.jsonl"),
                            eval_data=str(data / "heldout.jsonl"), registry=str(config.registry_dir)),
        SFTConfig(output_dir=str(tmp_path / "runs"), use_cpu=True, bf16=False, report_to="none", max_length=96,
                  per_device_train_batch_size=4, logging_steps=1, eval_strategy="steps", eval_steps=3, max_steps=6,
                  save_strategy="no", learning_rate=2e-2, seed=0), ModelConfig(lora_r=4, lora_alpha=8))
    site = launch(config, store)
    try:
        with page_at(site.url) as page:
            page.get_by_role("tab", name="Admin").click()
            page.locator("#admin-password input").fill(PASSWORD)
            page.get_by_role("tab", name="Models").click()
            page.locator("#models-refresh").click()
            tree = page.locator("#family-tree .js-plotly-plot")
            expect(tree).to_contain_text("zebra-sft", timeout=60_000)
            expect(tree).to_contain_text("tiny")
            shot = Image.open(io.BytesIO(page.locator("#family-tree").screenshot())).convert("RGB")
            assert len(set(shot.getdata())) > 50  # drawn: nodes, edges and labels, not a blank box
            expect(page.locator("#models-entry input")).to_have_value("zebra-sft", timeout=30_000)
            page.locator("#models-show").click()
            curves = page.locator("#loss-curves .js-plotly-plot")
            expect(curves).to_contain_text("train loss", timeout=60_000)
            expect(curves).to_contain_text("eval loss")
            page.screenshot(path=str(tmp_path / "models.png"), full_page=True)
    finally:
        site.ui.close()


def test_an_open_battle_is_asked_answered_continued_and_voted_on_the_page(tmp_path, tiny_dir):
    from playwright.sync_api import expect

    from blindarena.operations import create_campaign
    from blindarena.records import CampaignSettings
    from posttrain.engine import Engine, SamplingParams
    from posttrain.registry import Registry

    config, store = make_arena(tmp_path, tiny_dir, prompts=2)
    create_campaign(store, Engine(Registry(config.registry_dir), "tiny", quantize=False), "open-floor", MODELS, [],
                    SamplingParams(max_new_tokens=6, seed=2), settings=CampaignSettings(open=True))
    site = launch(config, store)
    try:
        with page_at(f"{site.url}?campaign=open-floor") as page:
            expect(page.locator("#campaign input")).to_have_value("open-floor", timeout=30_000)
            page.locator("#rater-name textarea").fill("curious-cat")
            page.locator("#start").click()
            expect(page.locator("#progress")).to_contain_text("Ask your question", timeout=30_000)
            page.locator("#question textarea").fill("What do zebras eat?")
            page.locator("#ask").click()
            expect(page.locator("#vote-a")).to_be_visible(timeout=60_000)  # both answers are in
            expect(page.locator("#prompt")).to_contain_text("What do zebras eat?")
            assert not any(name in page.content() for name in MODELS)
            page.locator("#question textarea").fill("And in winter?")
            page.locator("#ask").click()
            expect(page.locator("#answer-a")).to_contain_text("Turn 2, user:", timeout=60_000)
            expect(page.locator("#answer-b")).to_contain_text("And in winter?")
            page.locator("#vote-a").click()
            expect(page.locator("#reveal")).to_contain_text("A was", timeout=30_000)
            expect(page.locator("#label-a")).to_contain_text("your choice")
            page.locator("#next").click()
            expect(page.locator("#progress")).to_contain_text("1 rated", timeout=30_000)
            page.screenshot(path=str(tmp_path / "open.png"), full_page=True)
    finally:
        site.ui.close()
    (vote,) = store.votes("open-floor")
    battle = store.battle(vote["battle_id"])
    assert battle.turns == ("What do zebras eat?", "And in winter?") and len(battle.turns_a) == 2


@contextmanager
def beacon_server():
    """A local HTTP server that counts every request: an image or link a hostile rater planted
    would call it when the admin's page renders it."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits = []

    class Beacon(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Beacon)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()


def test_a_hostile_raters_markup_never_renders_on_the_admins_page(tmp_path, tiny_dir):
    from playwright.sync_api import expect

    from blindarena import operations as arena

    config, store = make_arena(tmp_path, tiny_dir, prompts=2)
    with beacon_server() as (host, hits):
        hostile = {f"<img src=//{host}/name>": f"![x](//{host}/comment-md) <img src=//{host}/comment>",
                   f"<a href=//{host}/link>log in again</a>": f"<img src=http://{host}/edit>"}
        for name, text in hostile.items():
            rid = arena.join(store, "tasting", name)
            while (battle := arena.next_battle(store, "tasting", rid)) is not None:
                arena.cast_vote(store, "tasting", rid, battle.battle_id, "left", edited=text, comment=text)
        site = launch(config, store)
        try:
            with page_at(site.url) as page:
                show_results_as_admin(page)
                expect(page.locator("#raters")).to_contain_text(f"<img src=//{host}/name>", timeout=60_000)  # as text
                page.locator("#review-name textarea").fill("nobody")
                page.locator("#review-choice").get_by_label("exclude").check()
                page.get_by_role("button", name="Apply to the campaign above").click()
                toast = page.get_by_test_id("toast-body").filter(has_text="has no rater")
                expect(toast).to_contain_text(f"<a href=//{host}/link>log in again</a>", timeout=30_000)  # names as text
                expect(toast).to_contain_text(f"<img src=//{host}/name>")
                assert page.locator("a", has_text="log in again").count() == 0  # text, not a link
                page.locator("#review-name textarea").fill(f"<img src=//{host}/name>")
                page.get_by_role("button", name="Apply to the campaign above").click()
                expect(page.get_by_text("exclude (show the results again").first).to_be_visible(timeout=30_000)
                page.get_by_role("tab", name="Admin").click()
                page.get_by_text("Pairs and clean-up").click()
                page.get_by_role("button", name="Browse and export pairs").click()
                expect(page.locator("#pairs")).to_contain_text(f"<img src=http://{host}/edit>", timeout=30_000)
                page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
                # The control: an image this page does load reaches the beacon, so silence above means something.
                page.evaluate(f"new Image().src = 'http://{host}/control'")
                expect(page.locator("body")).to_be_visible()
                for _ in range(600):
                    if hits:
                        break
                    page.wait_for_timeout(50)
        finally:
            site.ui.close()
    assert hits == ["/control"], f"the admin's browser called the rater's beacon: {hits}"


def test_the_locked_results_tab_says_where_to_unlock_and_the_unlocked_one_opens_on_the_leaderboard(tmp_path, tiny_dir):
    """Before the password: one line, and pressing Show results fails no component (no "Error"
    badge, no toast). Unlocked: the leaderboard (ranks or "provisional") is the first thing the
    results show, above the plots."""
    from playwright.sync_api import expect

    from blindarena.service import Arena

    config, store = make_arena(tmp_path, tiny_dir, prompts=3)
    arena = Arena(store)
    for name in ("ann", "bo"):
        rater = arena.join("tasting", name)
        while (battle := arena.next_battle("tasting", rater)) is not None:
            arena.vote("tasting", rater, battle.battle_id, "left" if name == "ann" else "right")
    site = launch(config, store)
    try:
        with page_at(site.url) as page:
            page.get_by_role("tab", name="Results").click()
            expect(page.locator("#results-locked")).to_contain_text("behind the admin password", timeout=30_000)
            page.locator("#show-results").click()
            expect(page.locator("#results-locked")).to_contain_text("Locked.", timeout=30_000)  # the event has answered
            assert page.get_by_text("Error", exact=True).count() == 0
            assert page.get_by_test_id("toast-body").count() == 0
            show_results_as_admin(page)
            expect(page.locator("#results-summary")).to_contain_text("human votes counted", timeout=60_000)
            expect(page.locator("#ladders")).to_contain_text(MODELS[0])
            assert page.locator("#ladders td", has_text="provisional").count() >= len(MODELS)  # 6 votes: nobody ranked yet
            ladder_top = page.locator("#ladders").bounding_box()["y"]
            plot_tops = [page.locator(f"#plot-{name}").bounding_box()["y"] for name in ("ladder", "win-rates", "over-time")]
            assert ladder_top < min(plot_tops)  # the leaderboard first, the plots after
            assert page.get_by_text("Error", exact=True).count() == 0
    finally:
        site.ui.close()


def test_the_admin_sees_a_releases_dry_run_before_its_release_button_opens(tmp_path, tiny_dir):
    from playwright.sync_api import expect

    from blindarena import operations as arena
    from posttrain.engine import Engine, SamplingParams
    from posttrain.registry import Registry

    config, store = make_arena(tmp_path, tiny_dir, prompts=2)
    questions = [{"prompt": "my SSN is 512-43-7789, is that safe?"}, {"prompt": "ask Margaret Chen about 221B Baker Street"}]
    arena.create_campaign(store, Engine(Registry(config.registry_dir), "tiny", quantize=False), "to-share", MODELS,
                          questions, SamplingParams(max_new_tokens=4, seed=1))
    rater = arena.join(store, "to-share", "gina")
    store.set_consent(rater, True)
    while (battle := arena.next_battle(store, "to-share", rater)) is not None:
        arena.cast_vote(store, "to-share", rater, battle.battle_id, "left")
    site = launch(config, store)
    try:
        with page_at(site.url) as page:
            unlock_admin(page)
            page.get_by_text("Release: the consenting raters").click()
            expect(page.locator("#release")).to_be_disabled(timeout=30_000)  # nothing seen yet, nothing to release
            page.locator("#release-dry-run").click()
            out = page.locator("#release-dry-run-out")
            expect(out).to_contain_text("votes of 1 consenting raters would go", timeout=60_000)
            expect(out).to_contain_text("512-43-7789")  # the original, for the admin's eyes
            expect(out).to_contain_text("my SSN is [SSN], is that safe?")
            expect(page.locator("#release")).to_be_enabled()
            page.screenshot(path=str(tmp_path / "release.png"), full_page=True)
            page.locator("#release").click()
            expect(page.locator("#released")).to_contain_text("released", timeout=60_000)
            expect(page.locator("#release")).to_be_disabled()  # the next release needs its own dry run
    finally:
        site.ui.close()
    (folder,) = (config.data_dir / "releases").iterdir()
    everything = b"".join(p.read_bytes() for p in folder.rglob("*") if p.is_file())
    assert b"512-43-7789" not in everything and b"Margaret Chen" not in everything and b"[SSN]" in everything


def test_a_shorter_answer_sits_at_the_top_and_bold_text_is_drawn_in_one_face(tmp_path, tiny_dir):
    """At 1300 px, the shorter answer starts where the longer one starts, on whichever side it is
    shown (it sat at the bottom of its column); bold text ("Blind arena", "A is better") has a whole
    face: Gradio's SemiBold file lacks glyphs, so some letters were drawn from a fallback font."""
    from playwright.sync_api import expect

    config, store = make_arena(tmp_path, tiny_dir, prompts=2)
    store.create_campaign("lengths", MODELS, [{"prompt": "Say something."}], {})
    store.save_answers([(pid, model, "Short." if model == MODELS[0] else "A much longer answer. " * 150, 5, "")
                        for pid, _, model in store.missing_answers("lengths")])
    store.set_status("lengths", "ready")
    site = launch(config, store)
    try:
        with page_at(site.url + "?campaign=lengths", width=1300, height=1000) as page:
            expect(page.locator("#campaign input")).to_have_value("lengths", timeout=30_000)
            page.locator("#rater-name textarea").fill("short-and-long")
            page.locator("#start").click()
            expect(page.locator("#progress")).to_contain_text("battle 1 of 1", timeout=30_000)
            a, b = page.locator("#answer-a").bounding_box(), page.locator("#answer-b").bounding_box()
            assert abs(a["y"] - b["y"]) < 2 and min(a["height"], b["height"]) < max(a["height"], b["height"]) / 3
            faces = page.evaluate("() => Array.from(document.fonts).filter(f => f.family.includes('Source Sans Pro'))"
                                  ".map(f => f.weight)")
            assert sorted(set(faces)) == ["400", "700"]
            assert int(page.evaluate("() => getComputedStyle(document.querySelector('#vote-a')).fontWeight")) > 400
    finally:
        site.ui.close()
