"""Real instruction data: the project's general set (dolly's eight categories, TRL's conversational
format), the training-side IFEval prompts, the rejection-sampling builder with the IFEval checkers
as its filter (SFT rows, pairs, dedup, contamination, data card), the judge's contrast pairs, and
raters whose taste is the checker voting through the real store."""

import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from posttrain import checkers
from posttrain.synth import verified
from blindarena.records import CampaignSettings
from posttrain.data import read, read_jsonl

DOLLY = {"open_qa", "general_qa", "closed_qa", "information_extraction", "summarization", "classification",
         "brainstorming", "creative_writing"}


def test_general_set_covers_dollys_categories_in_trls_format():
    rows = read_jsonl(ROOT / "data" / "general" / "train.jsonl")
    assert len(rows) >= 300 and {r["category"] for r in rows} == DOLLY
    assert read(ROOT / "data" / "general" / "train.jsonl").skipped == []
    for row in rows:
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"] and all(m["content"].strip() for m in row["messages"])
    held = read_jsonl(ROOT / "data" / "general" / "heldout.jsonl")
    assert held and not {r["messages"][0]["content"] for r in held} & {r["messages"][0]["content"] for r in rows}
    # the files are what their generator writes (deterministic)
    out = subprocess.run([sys.executable, "-c", "import runpy, json; m = runpy.run_path('data/make_general_instructions.py');"
                          "print(json.dumps(m['rows']()))"], cwd=ROOT, capture_output=True, text=True, check=True)
    made = json.loads(out.stdout)
    assert [r for i, r in enumerate(made) if i % 10 != 9] == rows


def test_training_prompts_cover_every_instruction_in_other_words_than_the_heldout_set():
    train = checkers.read_rows(ROOT / "data" / "ifeval_train.jsonl")
    loop = checkers.read_rows(ROOT / "data" / "ifeval_loop.jsonl")
    held = checkers.read_rows(ROOT / "data" / "ifeval_heldout.jsonl")
    assert {i for r in train for i in r["instruction_id_list"]} == set(checkers.CHECKERS)
    assert len(train) == 200 and len(loop) == 50
    assert not {r["prompt"] for r in train + loop} & {r["prompt"] for r in held}
    assert len({r["key"] for r in train + loop + held}) == len(train + loop + held)


class FakeEmbedder:
    """Unit vectors from a stable hash of the text: equal texts have cosine 1, others 0. (Python's
    own hash() is salted per process: two texts in one of 64 buckets made the test fail at random.)"""

    def __call__(self, texts):
        out = np.zeros((len(texts), 1 << 16), dtype=np.float32)
        for i, text in enumerate(texts):
            out[i, int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "big") % (1 << 16)] = 1.0
        return out


def test_builder_keeps_what_follows_pairs_it_with_what_breaks_and_drops_contamination(tmp_path):
    held = tmp_path / "held.jsonl"
    held.write_text(json.dumps({"key": 1, "prompt": "Describe a harbour at dawn. Do not use a single comma anywhere.",
                                "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}) + "\n")
    rows = [
        {"key": 10, "prompt": "Write about tea. Answer in English using only lowercase letters.",
         "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]},
        {"key": 11, "prompt": "Write about rain. Put the whole answer inside double quotes.",
         "instruction_id_list": ["startend:quotation"], "kwargs": [{}]},
        {"key": 12, "prompt": "Describe a harbour at dawn. Do not use a single comma anywhere.",  # = a held-out prompt
         "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
    ]
    samples = [
        ["Tea is Warm.", "tea is warm and calm.", "tea is warm and calm.", ""],  # a pass, a duplicate, an empty
        ["rain falls. rain falls. rain falls. rain falls. rain falls. rain falls. rain falls.", "Rain falls."],
        ["The harbour wakes slowly.", "Boats, gulls."],
    ]
    config = verified.VerifiedConfig(out=str(tmp_path / "out"), eval_files=[str(held)], check_files=[])
    built = verified.build(rows, samples, config, embedder=FakeEmbedder())
    assert [r["key"] for r in built["sft"]] == [10]
    assert built["sft"][0]["messages"][1]["content"] == "tea is warm and calm."
    pairs = built["pairs"] + built["pairs_heldout"]
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [("tea is warm and calm.", "Tea is Warm.")]
    reasons = {(d["key"], d["stage"], d["reason"].split(":")[0]) for d in built["dropped"]}
    assert {(10, "filter", "duplicate sample"), (10, "filter", "empty"), (11, "filter", "repetitive"),
            (11, "checker", "no sample follows every instruction"), (12, "contamination", "contaminated")} <= reasons
    summary = built["summary"]
    assert (summary["prompts"], summary["samples"], summary["contaminated_prompts"], summary["sft_rows"]) == (3, 8, 1, 1)
    # every sample is accounted for: kept for a verdict, or dropped at a stage
    out = verified.write(built, config, "fake-teacher")
    card = (out / "README.md").read_text()
    assert "fake-teacher" in card and "1 prompts dropped" in card and "| change_case:english_lowercase | 1 | 1 |" in card
    assert [json.loads(l)["key"] for l in (out / "sft.jsonl").read_text().splitlines()] == [10]


def test_sampling_reuses_the_teachers_answers_on_a_rerun(tmp_path):
    calls = []

    class Teacher:
        name = "counting"

        def complete(self, prompts, seed):
            calls.append(seed)
            return [f"{p} / {seed}" for p in prompts]

    rows = [{"key": 1, "prompt": "a", "instruction_id_list": [], "kwargs": []},
            {"key": 2, "prompt": "b", "instruction_id_list": [], "kwargs": []}]
    config = verified.VerifiedConfig(out=str(tmp_path), samples=2)
    first = verified.sample(Teacher(), rows, config)
    assert first == [["a / 0", "a / 10000"], ["b / 0", "b / 10000"]] and len(calls) == 2
    assert verified.sample(Teacher(), rows, config) == first and len(calls) == 2  # read back
    verified.sample(Teacher(), rows, verified.VerifiedConfig(out=str(tmp_path), samples=3))
    assert len(calls) == 5  # other settings: generated again


def test_an_answer_cut_at_the_token_limit_is_never_chosen_even_read_back_from_the_cache(tmp_path):
    """"At least 12 words": an answer that ran to the token limit passes by running on; it is no
    training row and no chosen answer, and the mark survives the sample cache."""
    from posttrain.synth.clean import Cut

    row = {"key": 1, "prompt": "Describe a quiet morning at the harbour in at least 12 words.",
           "instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 12, "relation": "at least"}]}
    ran_on = "the boats rock and the boats rock and the gulls cry over the water and the boats"
    finished = "Grey water, still boats, a gull calling once, and the smell of tar and rope."

    class Teacher:
        name = "cutting"

        def complete(self, prompts, seed):
            return [Cut(ran_on) if seed == 0 else finished if seed == 10_000 else "Quiet."]

    config = verified.VerifiedConfig(out=str(tmp_path / "out"), samples=3, eval_files=[], check_files=[])
    first = verified.sample(Teacher(), [row], config)

    class Gone(Teacher):
        def complete(self, prompts, seed):
            raise AssertionError("the cache should answer")

    again = verified.sample(Gone(), [row], config)  # read back
    assert [isinstance(t, Cut) for t in again[0]] == [True, False, False] and again == first
    assert checkers.check_row({**row, "response": ran_on})["follow_all_instructions"]  # the checker alone passes it
    built = verified.build([row], again, config, embedder=FakeEmbedder())
    assert [r["messages"][1]["content"] for r in built["sft"]] == [finished]
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in built["pairs"] + built["pairs_heldout"]] == [
        (finished, "Quiet.")]
    assert [d["reason"] for d in built["dropped"]] == ["cut off at the token limit"]


def test_the_local_teacher_marks_answers_cut_at_the_token_limit(tiny_registry):
    from posttrain.engine import Engine
    from posttrain.synth.clean import Cut
    from posttrain.synth.teacher import LocalTeacher

    teacher = LocalTeacher(Engine(tiny_registry, "tiny", quantize=False), "ad-a", max_new_tokens=3, temperature=0.0)
    answers = teacher.complete(["hello there", "tell me a story"], seed=0)
    assert all(isinstance(a, Cut) for a in answers)  # the tiny model never ends within 3 tokens


def test_contrast_pairs_reject_off_topic_run_on_and_cut_off_answers():
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                          {"role": "assistant", "content": f"Answer number {i} is a full sentence here."}]} for i in range(6)]
    pairs = verified.contrast_pairs(rows)
    assert len(pairs) == 6
    for i, pair in enumerate(pairs):
        chosen, rejected = pair["chosen"][0]["content"], pair["rejected"][0]["content"]
        assert chosen == rows[i]["messages"][1]["content"] and rejected != chosen
    assert pairs[0]["rejected"][0]["content"].startswith("Answer number") and "number 0" not in pairs[0]["rejected"][0]["content"]
    assert pairs[1]["rejected"][0]["content"].startswith(pairs[1]["chosen"][0]["content"] + "\n\nQuestion")
    assert pairs[2]["rejected"][0]["content"] == "Answer number"


def test_general_set_does_not_overlap_any_heldout_prompt():
    from posttrain.synth import clean

    from posttrain import benchmarks

    config = verified.VerifiedConfig()  # the project's held-out files and the benchmark sets by name
    evals = [p for path in config.eval_files for p in verified.prompt_texts(path if benchmarks.is_named(path) else ROOT / path)]
    rows = [{"instruction": p} for p in verified.prompt_texts(ROOT / "data" / "general" / "train.jsonl")]
    embed = clean.Embedder()
    found = clean.contamination(rows, embed([r["instruction"] for r in rows]), evals, embed(evals), clean.Thresholds())
    assert found == {}, list(found.values())[:3]


def test_an_answer_that_passes_by_parroting_its_prompt_is_no_training_row(tmp_path):
    """"Use the words 'island' and 'calm'": an answer that repeats the request contains both, and the
    checker passes it; picked as chosen, such answers taught DPO to echo. Unless the row asks for
    its request repeated (combination:repeat_prompt)."""
    keywords = {"key": 1, "prompt": "Write a short advert for a bookshop by the sea. Use the words 'island' and 'calm' somewhere in your answer.",
                "instruction_id_list": ["keywords:existence"], "kwargs": [{"keywords": ["island", "calm"]}]}
    repeat = {"key": 2, "prompt": "Write a short advert for a shop that sells old maps to sailors and walkers.",
              "instruction_id_list": ["combination:repeat_prompt"],
              "kwargs": [{"prompt_to_repeat": "Write a short advert for a shop that sells old maps to sailors and walkers."}]}
    parrot = keywords["prompt"] + " Write a short advert."
    honest = "A calm corner of the island: secondhand books, sea air and tea."
    samples = [[parrot, honest, "Books for sale by the harbour."],
               [repeat["prompt"] + " Old maps for every road and every tide, sold by people who walked them."]]
    config = verified.VerifiedConfig(out=str(tmp_path / "out"), eval_files=[], check_files=[])
    built = verified.build([keywords, repeat], samples, config, embedder=FakeEmbedder())
    assert {r["key"]: r["messages"][1]["content"] for r in built["sft"]} == {1: honest, 2: samples[1][0]}
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in built["pairs"] + built["pairs_heldout"]] == [
        (honest, "Books for sale by the harbour.")]
    assert [(d["key"], d["reason"], d["response"][:40]) for d in built["dropped"]] == [(1, "echoes its prompt", parrot[:40])]
    assert checkers.check_row({**keywords, "response": parrot})["follow_all_instructions"]  # what the checker alone says


def test_checker_raters_vote_for_the_answer_that_follows_through_the_store(tmp_path):
    from blindarena import operations as arena, simulate
    from blindarena.store import Store
    from posttrain.engine import Answer, SamplingParams

    rows = [{"key": i, "prompt": f"Tell me about item {i}. Answer in English using only lowercase letters.",
             "instruction_id_list": ["change_case:english_lowercase"], "kwargs": [{}]} for i in range(6)]

    class Writer:  # a Generator: "good" follows the instruction, "bad" does not
        def ensure_model(self, model):
            pass

        def generate(self, prompts, models, params, **kwargs):
            return [Answer(model=m, text="all lowercase here." if m == "good" else "Capitals Here.", new_tokens=3,
                           finish_reason="stop", prompt_tokens=5) for m in models]

    store = Store(tmp_path / "arena.sqlite")
    prompts = [{"question_id": r["key"], "category": None, "prompt": r["prompt"]} for r in rows]
    arena.create_campaign(store, Writer(), "taste", ["good", "bad"], prompts, SamplingParams(max_new_tokens=4),
                          settings=CampaignSettings(votes_per_minute=10_000))
    cast = simulate.checker_raters(store, "taste", rows, raters=2, per_rater=10, noise=0.0)
    votes = store.votes("taste")
    assert cast == len(votes) == 12  # each rater every battle once
    assert all((v["model_a"] if v["winner"] == "a" else v["model_b"]) == "good" for v in votes)
    with pytest.raises(KeyError, match="not among the IFEval rows"):
        simulate.checker_raters(store, "taste", rows[:1], raters=1, per_rater=10, noise=0.0, seed=1)

    class Parrot(Writer):  # "parrot" repeats the request (in lowercase: it passes the checker); "bad" breaks it
        def generate(self, prompts, models, params, **kwargs):
            return [Answer(model=m, text=p.lower() if m == "parrot" else "Capitals Here.", new_tokens=3, finish_reason="stop",
                           prompt_tokens=5) for p, m in zip(prompts, models)]

    arena.create_campaign(store, Parrot(), "parrots", ["parrot", "bad"], prompts, SamplingParams(max_new_tokens=4),
                          settings=CampaignSettings(votes_per_minute=10_000))
    simulate.checker_raters(store, "parrots", rows, raters=1, per_rater=10, noise=0.0, seed=2)
    assert {v["winner"] for v in store.votes("parrots")} == {"tie"}  # neither follows: a parroted request earns nothing
