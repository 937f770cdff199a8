"""What a hostile rater types never reaches the admin as markup, a spreadsheet formula or a path;
private events tell a stranger nothing; the admin is never locked out by a rater; and the last
sharp edges of the command lines end in one line that says what happened."""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from types import SimpleNamespace

import gradio as gr
import pytest

from conftest import ROOT
from blindarena import operations as arena
from blindarena.export import export, spreadsheet_safe, write_votes_csv
from blindarena.records import StoreError
from blindarena.store import Store
from test_robustness import arena_cli, one_line

BEACON = "<img src=//203.0.113.9/beacon>"
LINK = "<a href=//evil.example>log in again</a>"
FORMULAS = ['=HYPERLINK("http://evil.example","x")', "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"]


def voted_campaign(tmp_path, raters: dict[str, dict]) -> Store:
    """A ready two-model campaign of three prompts, and each rater's votes (all 'left', with the
    given comment and edit), cast through the arena like the page does; no model loads."""
    store = Store(tmp_path / "data" / "arena.sqlite")
    store.create_campaign("c", ["m-a", "m-b"], [{"prompt": f"question {i}?"} for i in range(3)], {})
    store.save_answers([(pid, model, f"{model} answers", 3, "") for pid, _, model in store.missing_answers("c")])
    store.set_status("c", "ready")
    for name, text in raters.items():
        rid = arena.join(store, "c", name)
        while (battle := arena.next_battle(store, "c", rid)) is not None:
            arena.cast_vote(store, "c", rid, battle.battle_id, "left", edited=text.get("edited"), comment=text.get("comment"))
    return store


# ---- 1. markup shows as text -----------------------------------------------------------------
def test_toasts_tables_and_markdown_show_what_raters_typed_as_text():
    from blindarena.ui.common import as_text, refusal, safe_markdown

    toast = refusal(f"campaign 'c' has no rater 'x' (raters: {BEACON}, {LINK})")
    assert "<img" not in toast.message and "<a " not in toast.message and "&lt;img src=//203.0.113.9/beacon&gt;" in toast.message
    shown = as_text(f"{BEACON} ![x](//203.0.113.9/md) [log in](//evil.example) *bold*")
    assert "<" not in shown and "![" not in shown and "](" not in shown and "\\*bold\\*" in shown
    answer = safe_markdown("see ![pixel](//203.0.113.9/md) and `![code](kept)`")
    assert "\\![pixel]" in answer and "`![code](kept)`" in answer  # no image outside code; code as written


def test_the_review_of_an_unknown_rater_lists_hostile_names_as_text(tmp_path):
    from blindarena.ui.common import ArenaConfig, services
    from blindarena.ui.results import review_rater

    voted_campaign(tmp_path, {BEACON: {}, LINK: {}})
    svc = services(ArenaConfig(registry_dir=tmp_path / "registry", data_dir=tmp_path / "data", base="none",
                               admin_password="pw"))
    with pytest.raises(gr.Error) as refused:
        review_rater(svc, "pw", "c", "nobody", "exclude")
    assert "&lt;img src=//203.0.113.9/beacon&gt;" in refused.value.message and "<img" not in refused.value.message
    assert "<a " not in refused.value.message
    said = review_rater(svc, "pw", "c", BEACON, "exclude")
    assert "<img" not in said and "&lt;img" in said


# ---- 2. no formulas in a CSV -------------------------------------------------------------------
@pytest.mark.parametrize("cell", FORMULAS)
def test_a_formula_cell_is_neutralised_the_owasp_way(cell):
    assert spreadsheet_safe(cell) == "'" + cell
    assert spreadsheet_safe("plain =text") == "plain =text" and spreadsheet_safe(-3) == -3


def test_the_results_votes_csv_holds_no_formula_a_rater_typed(tmp_path):
    from blindarena.ui.common import ArenaConfig, services
    from blindarena.ui.results import build, show_results

    evil = {FORMULAS[0]: {"comment": FORMULAS[1], "edited": "@SUM(A1:A9)"}}
    voted_campaign(tmp_path, evil)
    svc = services(ArenaConfig(registry_dir=tmp_path / "registry", data_dir=tmp_path / "data", base="none",
                               admin_password="pw"))
    with gr.Blocks():
        room = build()
    shown = show_results(svc, room, "pw", "c")
    with open(shown[room.votes_csv], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    cells = [value for row in rows for value in row.values() if value]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))], cells
    assert {row["rater"] for row in rows} == {"'" + FORMULAS[0]} and {row["comment"] for row in rows} == {"'" + FORMULAS[1]}


def test_write_votes_csv_keeps_numbers_and_plain_text(tmp_path):
    path = write_votes_csv([{"id": 1, "score": -2, "comment": "fine", "edited": "-dash"}], tmp_path / "v.csv")
    row = next(csv.DictReader(path.open()))
    assert row == {"id": "1", "score": "-2", "comment": "fine", "edited": "'-dash"}


# ---- 3. campaign names are names, never paths or markup ----------------------------------------
@pytest.mark.parametrize("name", ["../evil", "a/b", BEACON, ".hidden", "x" * 101, "with space"])
def test_a_campaign_name_outside_the_naming_rule_is_refused_everywhere(tmp_path, name):
    store = Store(tmp_path / "arena.sqlite")
    with pytest.raises(StoreError, match="bad campaign name"):
        store.create_campaign(name, ["m-a", "m-b"], [{"prompt": "q?"}], {})
    with pytest.raises(StoreError, match="bad campaign name"):
        arena.check_new_campaign(store, name, ["m-a", "m-b"], [{"prompt": "q?"}])
    assert store.campaigns() == []


def test_the_cli_and_the_admin_form_refuse_a_path_as_a_campaign_name_before_any_model_loads(tmp_path, tiny_registry):
    from blindarena.ui.campaigns import create
    from blindarena.ui.common import ArenaConfig, services

    out = subprocess.run(arena_cli(tmp_path, tiny_registry, "campaign", "create", "../evil", "--models", "ad-a", "ad-b"),
                         capture_output=True, text=True, timeout=300)
    cli_line = one_line(out, 2, "bad campaign name '../evil'")
    svc = services(ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny",
                               admin_password="pw", quantize=False))
    with pytest.raises(gr.Error) as refused:
        create(svc, SimpleNamespace(), [], "pw", "../evil", ["ad-a", "ad-b"], None, 8, 0.7, 0.95, 0, None, "balanced",
               None, 0.1, 0.5, None, "", "", False, progress=lambda *a, **k: None)
    assert refused.value.message == cli_line.removeprefix("error: ")  # one check, the same words
    assert svc._engine is None and not (tmp_path / "evil-votes.csv").exists()


# ---- 4. private events tell a stranger nothing -------------------------------------------------
def test_the_deep_link_answers_the_same_for_a_name_that_exists_and_one_that_does_not(tmp_path, tiny_registry):
    from blindarena.ui.common import ArenaConfig, services
    from blindarena.ui.demo import DemoRoom, deep_link

    svc = services(ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny",
                               admin_password="pw", quantize=False))
    room = DemoRoom(*[object()] * len(DemoRoom.__dataclass_fields__))
    room.left, room.right = "left", "right"
    ask = lambda a: deep_link(svc, room, SimpleNamespace(query_params={"a": a}))
    known, unknown = ask("ad-a"), ask("no-such-entry")
    assert known["left"]["value"] == "ad-a" and unknown["left"]["value"] == "no-such-entry"  # an echo either way
    assert "choices" not in known["left"] and "choices" not in known["right"]  # the registry's names stay private
    assert "value" not in ask(BEACON)["left"]  # not a name: nothing echoed


def test_a_public_rater_asking_for_an_unknown_campaign_learns_no_campaign_names(tmp_path):
    from blindarena.ui.common import ArenaConfig, services
    from blindarena.ui.rating import begin

    store = voted_campaign(tmp_path, {})
    store.create_campaign("secret-plans", ["m-a", "m-b"], [{"prompt": "q?"}], {})  # still generating: not listed
    svc = services(ArenaConfig(registry_dir=tmp_path / "registry", data_dir=tmp_path / "data", base="none"))
    for asked in ("nope", "secret-plans"):
        with pytest.raises(gr.Error) as refused:
            begin(svc, SimpleNamespace(), asked, "rita", "", "", None)
        assert refused.value.message == f"no campaign '{asked}' is open for rating; pick one from the list"


# ---- 5. (the admin throttle: test_robustness.test_admin_passwords_back_off_...) -----------------

# ---- 6-12. sharp edges --------------------------------------------------------------------------
def test_max_steps_0_is_refused_before_anything_loads():
    from posttrain.errors import RecipeError
    from posttrain.train import check_some_steps

    with pytest.raises(RecipeError, match="max_steps 0 would train nothing"):
        check_some_steps(SimpleNamespace(max_steps=0, num_train_epochs=3))
    check_some_steps(SimpleNamespace(max_steps=-1, num_train_epochs=1))  # the epochs decide


def test_a_jsonl_export_writes_provenance_that_names_its_pairs_and_leaves_no_temporary_file(tmp_path):
    store = voted_campaign(tmp_path, {"ann": {}, "ben": {}})
    out = tmp_path / "out" / "pairs.jsonl"
    export(store, "c", out)
    provenance = json.loads((tmp_path / "out" / "pairs.provenance.json").read_text())
    import hashlib

    assert provenance["pairs_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert provenance["pairs"] == len(out.read_text().splitlines()) >= 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["pairs.jsonl", "pairs.provenance.json"]


def test_a_killed_datasets_export_leaves_nothing_in_the_way_of_a_rerun(tmp_path, monkeypatch):
    from pathlib import Path

    store = voted_campaign(tmp_path, {"ann": {}})
    out = tmp_path / "pairs-ds"
    real_rename = Path.rename
    monkeypatch.setattr(Path, "rename", lambda self, target: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):  # killed just before the folder appears
        export(store, "c", out)
    assert not out.exists()
    monkeypatch.setattr(Path, "rename", real_rename)
    export(store, "c", out)  # the rerun is not refused ("not empty") and finds its own leftovers gone
    assert (out / "provenance.json").is_file() and (out / "dataset_info.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if "export-tmp" in p.name] == []


def test_next_round_rerun_after_an_interrupted_campaign_points_to_resume(tmp_path, tiny_registry):
    from blindarena.loop import earlier_round

    store = voted_campaign(tmp_path, {})
    tiny_registry.annotate("ad-b", source_campaign="c", votes=3, pairs=3)
    assert "pick another --name" in earlier_round(store, tiny_registry, "other", "ad-a", "ad-b")
    assert "stopped before its campaign was created" in earlier_round(store, tiny_registry, "c", "ad-a", "ad-b")
    store.create_campaign("c-next", ["ad-b", "ad-a"], [{"prompt": "q?"}], {})  # killed while generating
    said = earlier_round(store, tiny_registry, "c", "ad-a", "ad-b")
    assert "`scripts/arena.py campaign resume c-next`" in said and "2 still missing" in said


def test_backup_refuses_to_overwrite_and_names_a_target_it_cannot_write(tmp_path):
    store = voted_campaign(tmp_path, {"ann": {}})
    target = tmp_path / "b.sqlite"
    target.write_text("keep me")
    with pytest.raises(StoreError, match="exists; name a new file for the backup, or pass --force"):
        store.backup(target)
    assert target.read_text() == "keep me"
    store.backup(target, overwrite=True)
    assert len(Store(target).votes("c")) == 3
    with pytest.raises(StoreError, match="cannot write the backup to /proc/x/b.sqlite .*the live database .* is untouched"):
        store.backup("/proc/x/b.sqlite")


@pytest.mark.parametrize("name", ["nl\n", "a\nb", "tab\t"])
def test_a_registry_name_with_a_newline_is_refused(tmp_path, tiny_dir, name):
    from posttrain.registry import Registry, RegistryError

    registry = Registry(tmp_path / "registry")
    with pytest.raises(RegistryError, match="bad entry name"):
        registry.import_base(tiny_dir, name)
    assert registry.names() == []


@pytest.mark.parametrize("change, said", [
    ({"instruction_id_list": ["detectable_content:postscript"], "kwargs": [{"first_word": 5}]}, "takes ['postscript_marker'], not 'first_word'"),
    ({"kwargs": ["oops"]}, "must be an object, got 'oops'"),
    ({"instruction_id_list": 5}, "instruction_id_list must be a list"),
    ({"response": 12345}, "response must be text, got 12345"),
    ({"instruction_id_list": ["keywords:letter_frequency"], "kwargs": [{"letter": ["a"], "let_frequency": 2, "let_relation": "at least"}]},
     "letter must be text"),
    ({"kwargs": [{"keywords": "river"}]}, "keywords must be a list of words"),
    ({"response": None, "drop": "response"}, "missing response"),
])
def test_malformed_ifeval_rows_end_in_one_line_naming_the_row(tmp_path, change, said):
    row = {"key": 1, "prompt": "Write about a river.", "instruction_id_list": ["keywords:existence"],
           "kwargs": [{"keywords": ["river"]}], "response": "A river runs."}
    row.update({k: v for k, v in change.items() if k != "drop"})
    row.pop(change.get("drop", "-"), None)
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(row) + "\n")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "ifeval", "--responses", str(path)],
                         capture_output=True, text=True, timeout=300)
    one_line(out, 2, f"{path}:1:", said)


def test_ifeval_prompts_beside_responses_is_refused_not_ignored(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"prompt": "p", "instruction_id_list": [], "response": "r"}) + "\n")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "evaluate.py"), "ifeval", "--responses", str(path),
                          "--prompts", str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "--prompts goes with --models" in out.stderr and "Traceback" not in out.stderr


def test_registry_import_of_a_config_that_is_not_an_object_is_one_line(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "config.json").write_text("[1, 2, 3]")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "registry.py"), "--registry", str(tmp_path / "reg"),
                          "import", str(folder), "--name", "odd"], capture_output=True, text=True, timeout=300)
    one_line(out, 2, "config.json: holds list", "not a JSON object")


def test_a_reward_that_is_not_a_trl_reward_function_is_refused_by_the_check():
    from posttrain import rl
    from posttrain.errors import RecipeError

    with pytest.raises(RecipeError, match=r"reward 'python:os:system': system\(command\) is not a TRL reward function"):
        rl.check(["python:os:system"], None, None)
    rl.check(["ifeval"], None, None)


def test_campaign_create_drops_repeated_prompts_and_refuses_bad_settings_before_the_engine(tmp_path, tiny_registry):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": text}) + "\n" for text in ["same?", "same?", "same?", "other?"]))
    run = lambda *args: subprocess.run(arena_cli(tmp_path, tiny_registry, "campaign", "create", *args, "--no-4bit"),
                                       capture_output=True, text=True, timeout=600)
    one_line(run("x1", "--models", "ad-a", "ad-a", "--prompts", str(prompts)), 2, "needs two or more different models")
    one_line(run("x2", "--models", "ad-a", "--prompts", str(prompts)), 2, "needs two or more different models")
    one_line(run("x3", "--models", "ad-a", "ad-b", "--prompts", str(prompts), "--max-new-tokens", "-5"), 2,
             "max_new_tokens must be >= 1")
    made = run("x4", "--models", "ad-a", "ad-b", "--prompts", str(prompts), "--max-new-tokens", "4", "--json")
    assert made.returncode == 0, made.stderr[-2000:]
    assert "2 repeated prompts dropped" in made.stderr and "after the model loads" in made.stderr
    stored = Store(tmp_path / "data" / "arena.sqlite")
    assert [c.name for c in stored.campaigns()] == ["x4"] and len(stored.battle_ids("x4")) == 2


def test_a_prompt_cut_to_the_context_is_said(tmp_path):
    from posttrain.engine import Answer

    class Cutting:  # the Generator protocol: every prompt is "too long"
        def ensure_model(self, model):
            pass

        def generate(self, prompts, models, params):
            return [Answer(model=m, text="ok", new_tokens=1, finish_reason="stop", prompt_tokens=9, truncated_tokens=5) for m in models]

    store = Store(tmp_path / "arena.sqlite")
    made = arena.create_campaign(store, Cutting(), "long", ["m-a", "m-b"], [{"prompt": "x" * 5000}, {"prompt": "y"}],
                                 arena.SamplingParams(max_new_tokens=2))
    assert made["truncated_prompts"] == 2


def test_a_malformed_api_call_is_one_log_line_and_a_plain_toast(caplog):
    from blindarena.ui.common import bind

    def vote(session, choice):
        return session.get("battle_id")  # a string session has no .get

    with caplog.at_level(logging.INFO, logger="blindarena.ui"):
        with pytest.raises(gr.Error, match="could not be handled"):
            bind(vote)("not-a-session", "A")
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == ["vote could not handle a request: AttributeError: 'str' object has no attribute 'get'"]
    assert not any(r.exc_info for r in caplog.records if r.levelno >= logging.INFO)


@pytest.mark.parametrize("public_demo", [False, True])
def test_the_public_endpoints_are_exactly_the_ones_docs_arena_lists(tmp_path, public_demo):
    """docs/arena.md names the public API: the app must expose exactly those (a rater's API client
    sees nothing else), and the side-by-side one only on a public demo."""
    import re

    from blindarena.ui import ArenaConfig, build_ui

    text = (ROOT / "docs" / "arena.md").read_text()
    line = re.search(r"Only (.+?) are public API endpoints \(plus\s+`/(\w+)` with `PUBLIC_DEMO=1`\)", text, re.S)
    listed = set(re.findall(r"`/(\w+)`", line.group(1)))
    ui = build_ui(ArenaConfig(registry_dir=tmp_path / "r", data_dir=tmp_path / "d", base="none", admin_password="x",
                              public_demo=public_demo))
    public = {f.api_name for f in ui.fns.values() if f.api_visibility == "public"}
    assert public == listed | ({line.group(2)} if public_demo else set())
