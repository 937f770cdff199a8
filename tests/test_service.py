"""The arena's one front door (blindarena.service.Arena): the command line and the Admin form make the
same request and refuse the same campaigns in the same words; results read one snapshot; the next
round runs as a background job."""

import html
import json
import threading
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest

from blindarena.records import CampaignSettings
from blindarena.service import Arena, NewCampaign
from blindarena.store import Store
from blindarena.ui import campaigns
from blindarena.ui.common import ArenaConfig, Jobs, services

ROOT = Path(__file__).resolve().parents[1]


def cli_refusal(capsys, tmp_path, registry, *argv: str) -> str:
    """scripts/arena.py's one error line for these arguments (run in this process)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("arena_cli_refusal", ROOT / "scripts" / "arena.py")
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    code = cli.main(["--data-dir", str(tmp_path / "data"), "--registry", str(registry.root), "--base", "tiny", *argv])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert code == 2 and len(lines) == 1, lines
    return lines[0].removeprefix("error: ")


def form_refusal(svc, name: str, models: list[str], prompts: str | None, **fields) -> str:
    """The Admin form's refusal (a toast) for the same campaign, as the admin reads it."""
    values = {"max_new_tokens": 64, "temperature": 0.7, "top_p": 0.9, "seed": 0, "votes_per_battle": 0,
              "allocation": "balanced", "gold": None, "gold_rate": 0.0, "min_gold_accuracy": 0.7, "guidelines": None,
              "system": "", "identity_words": "", "open_campaign": False, **fields}
    room = campaigns.AdminRoom(**{f: f"component-{f}" for f in campaigns.AdminRoom.__dataclass_fields__})
    with pytest.raises(gr.Error) as refused:
        campaigns.create(svc, room, [], "pw", name, models, prompts, *values.values(), progress=lambda *a, **k: None)
    return html.unescape(refused.value.message)


def prompts_file(tmp_path: Path, n: int) -> str:
    path = tmp_path / f"prompts-{n}.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"question number {i}?"}) + "\n" for i in range(n)))
    return str(path)


@pytest.fixture
def app_services(tmp_path, tiny_registry):
    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         quantize=False)
    return services(config)


def test_the_command_line_and_the_admin_form_refuse_the_same_campaigns_in_the_same_words(
        capsys, tmp_path, tiny_registry, app_services):
    big = prompts_file(tmp_path, 3000)
    cases = [  # (name, models, prompt file): oversized, a model's name shown to raters, one model, no such file, no such model
        ("huge", ["ad-a", "ad-b"], big),
        ("ad-a-vs-b", ["ad-a", "ad-b"], prompts_file(tmp_path, 3)),
        ("solo", ["ad-a"], prompts_file(tmp_path, 3)),
        ("missing", ["ad-a", "ad-b"], str(tmp_path / "nothing.jsonl")),
        ("ghost", ["ad-a", "nobody"], prompts_file(tmp_path, 3)),
    ]
    for name, models, prompts in cases:
        said = cli_refusal(capsys, tmp_path, tiny_registry, "campaign", "create", name, "--models", *models,
                           "--prompts", prompts, "--max-new-tokens", "64")
        assert form_refusal(app_services, name, models, prompts) == said, name
    assert "needs 6000 answers (3000 prompts x 2 models" in cli_refusal(
        capsys, tmp_path, tiny_registry, "campaign", "create", "huge", "--models", "ad-a", "ad-b", "--prompts", big)
    assert not Store(tmp_path / "data" / "arena.sqlite").campaigns()  # nothing was stored by either


def test_the_apps_size_guard_is_a_setting_and_the_form_asks_for_what_the_flags_ask_for(tmp_path, tiny_registry):
    small = services(ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny",
                                 admin_password="pw", quantize=False, max_answers=4))
    said = form_refusal(small, "five", ["ad-a", "ad-b"], prompts_file(tmp_path, 3))
    assert "needs 6 answers" in said and "over the limit of 4" in said
    request = campaigns.new_campaign(small, "five", ["ad-a", "ad-b"], None, 32, 0.5, 0.9, 3, 2, "adaptive", None, 0.1, 0.8,
                                     None, " be brief ", "acme, ", False)
    assert request == NewCampaign("five", ("ad-a", "ad-b"), None, {"max_new_tokens": 32, "temperature": 0.5, "top_p": 0.9,
                                                                   "seed": 3},
                                  CampaignSettings(votes_per_battle=2, allocation="adaptive", gold_rate=0.1,
                                                   min_gold_accuracy=0.8, system=" be brief "), None, None, ("acme",), 4, None)
    with pytest.raises(Exception, match="needs 100 answers .50 prompts x 2 models"):  # the 50 held-out prompts
        small.arena.check(request)
    checked = small.arena.check(replace(request, max_answers=100))
    assert checked.settings.system == "be brief" and "acme" in checked.settings.identity_words
    assert checked.source == "data/heldout_prompts.jsonl" and checked.answers == 100 and len(checked.prompts) == 50


def test_results_read_one_snapshot(tmp_path, monkeypatch):
    store = Store(tmp_path / "arena.sqlite")
    store.create_campaign("snap", ["x", "y"], [{"prompt": f"p{i}"} for i in range(4)], {})
    store.save_answers([(pid, m, f"{m} says {p}", 3, "") for pid, p, m in store.missing_answers("snap")])
    store.set_status("snap", "ready")
    front = Arena(store)
    rater = front.join("snap", "ann")
    battle = front.next_battle("snap", rater)
    front.vote("snap", rater, battle.battle_id, "left")
    opened = []
    real = Store._connection
    monkeypatch.setattr(Store, "_connection", lambda self, begin: opened.append(begin) or real(self, begin))
    res = front.results("snap", rounds=0)
    assert res["votes"] == 1 and opened == ["BEGIN"]  # one read transaction for every read of the view


def wait_until(condition, timeout_s: float = 60.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout_s * 100)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("the condition never held")


def test_a_job_runs_in_the_background_says_its_progress_and_its_end():
    jobs, release = Jobs(), threading.Event()

    def work(say):
        say("training")
        release.wait(30)
        return {"child": "c"}

    job = jobs.start("the round", work)
    with pytest.raises(Exception, match="the round is still running"):
        jobs.start("another", lambda say: {})
    assert not job.done
    release.set()
    wait_until(lambda: jobs.get(job.id).done)
    assert jobs.get(job.id).result == {"child": "c"} and job.lines == ["training"]
    failed = jobs.start("a failing round", lambda say: (_ for _ in ()).throw(ValueError("boom")))
    wait_until(lambda: failed.done)
    assert failed.error == "ValueError: boom"
