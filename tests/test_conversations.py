"""Battles that are conversations: a prompt with several turns (MT-Bench's `turns`) is answered
turn by turn, each model on its OWN earlier answers; the rater sees both conversations and votes
once; the pairs are TRL's conversational preference rows spanning the turns, which load with
`datasets` and train with plain TRL as they are."""

import json

import pytest
from gradio_client import Client

from arena_fixtures import launch
from blindarena import operations as arena, open_battles
from blindarena.export import export_pairs
from blindarena.prompts import load_prompts
from blindarena.records import CampaignSettings
from blindarena.store import Store, StoreError
from blindarena.ui import ArenaConfig
from posttrain.backend import make_generator
from posttrain.engine import SamplingParams
from posttrain.fake_openai import FakeOpenAI


def test_a_two_turn_prompt_is_a_conversation_from_generation_to_plain_trl(tiny_registry, tmp_path):
    questions = tmp_path / "question.jsonl"  # the MT-Bench schema, plus one single-turn row
    questions.write_text(json.dumps({"question_id": 81, "category": "writing", "turns": ["Write a haiku.", "Now sadder."]})
                         + "\n" + json.dumps({"question_id": 82, "category": "writing", "turns": ["Say hi."]}) + "\n")
    prompts = load_prompts(questions)
    assert prompts[0]["turns"] == ["Write a haiku.", "Now sadder."] and "turns" not in prompts[1]
    store = Store(tmp_path / "data" / "arena.sqlite")
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"]) as server:
        generator = make_generator(tiny_registry, "tiny", backend="openai", base_url=server.url)
        made = arena.create_campaign(store, generator, "convo", ["ad-a", "ad-b"], prompts,
                                     SamplingParams(max_new_tokens=30, temperature=0))
        bodies = [body for _, _, body in server.requests]
    assert made["multi_turn_prompts"] == 1
    for model in ("ad-a", "ad-b"):  # turn 2 carries the model's own turn 1, never the other's
        (second,) = [b["messages"] for b in bodies if b["model"] == model and len(b["messages"]) == 3]
        assert second == [{"role": "user", "content": "Write a haiku."},
                          {"role": "assistant", "content": f"[{model}] reply to: Write a haiku."},
                          {"role": "user", "content": "Now sadder."}]

    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         quantize=False)
    site = launch(config, store)
    try:
        for rater in ("ann", "bob"):
            client = Client(site.url, verbose=False)
            out = client.predict("convo", rater, "", api_name="/start")
            while out[1]:
                if "Write a haiku" in out[1]:
                    assert "conversation of 2 turns" in out[1]
                    for side in (out[2], out[3]):  # both conversations, turn by turn
                        assert "reply to: Write a haiku." in side and "Turn 2, user:" in side and "reply to: Now sadder." in side
                pick = "A is better" if "[ad-a]" in out[2] else "B is better"  # both prefer ad-a
                client.predict(pick, None, None, "", "", api_name="/vote")
                out = client.predict(api_name="/next")
    finally:
        site.ui.close()
    assert len(store.votes("convo")) == 4

    out = tmp_path / "pairs.jsonl"
    assert export_pairs(store, "convo", out) == 2
    rows = {json.loads(line)["prompt"][0]["content"]: json.loads(line) for line in out.read_text().splitlines()}
    convo = rows["Write a haiku."]
    assert convo["prompt"] == [{"role": "user", "content": "Write a haiku."}]
    assert convo["chosen"] == [{"role": "assistant", "content": "[ad-a] reply to: Write a haiku."},
                               {"role": "user", "content": "Now sadder."},
                               {"role": "assistant", "content": "[ad-a] reply to: Now sadder."}]
    assert convo["rejected"][0]["content"] == "[ad-b] reply to: Write a haiku." and len(convo["rejected"]) == 3
    assert rows["Say hi."]["chosen"] == [{"role": "assistant", "content": "[ad-a] reply to: Say hi."}]

    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dataset = load_dataset("json", data_files=str(out), split="train").select_columns(["prompt", "chosen", "rejected"])
    base = tiny_registry.get("tiny").path
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(str(base)), processing_class=AutoTokenizer.from_pretrained(str(base)),
                         args=DPOConfig(output_dir=str(tmp_path / "dpo"), max_steps=1, per_device_train_batch_size=2,
                                        report_to="none", use_cpu=True, bf16=False, save_strategy="no", max_length=96),
                         train_dataset=dataset)
    assert trainer.train().global_step == 1

    from posttrain.data import read  # our reader keeps the turns too (the closed loop trains on these)
    (kept,) = [r for r in read(out).rows if r["prompt"][0]["content"] == "Write a haiku."]
    assert kept["chosen"] == convo["chosen"]


def test_the_judge_rates_conversations_in_both_orders(tiny_registry, tmp_path):
    """An OpenAI-compatible judge that prefers the conversation whose last answer is sadder gets
    MT-Bench's multi-turn pairwise prompt with both whole conversations, in both orders."""
    from evals.judge import OpenAIJudge, judge_campaign

    def sadder(body):  # prefers the side whose last answer has "sad" in it
        text = body["messages"][-1]["content"]
        a, b = text.split("<|The Start of Assistant B's")
        return "[[A]]" if "sad" in a.rsplit("### Assistant A:", 1)[1] else "[[B]]"

    store = Store(tmp_path / "arena.sqlite")
    store.create_campaign("talk", ["x", "y"], [{"prompt": "Write a haiku.", "turns": ["Write a haiku.", "Now sadder."]}], {})
    (pid,) = store.prompt_turns("talk")
    store.save_answers([(pid, "x", "sad rain", 4, "", ["rain", "sad rain"]), (pid, "y", "more rain", 4, "", ["rain", "more rain"])])
    store.set_status("talk", "ready")
    with FakeOpenAI(reply=sadder) as judge_server:
        judge = OpenAIJudge(judge_server.url, "judge")
        assert judge_campaign(store, "talk", judge) == 1
        prompts = [body["messages"] for _, _, body in judge_server.requests]
    assert len(prompts) == 2 and all("focus on who provides a better answer to the last user question" in p[0]["content"]
                                     for p in prompts)
    assert all("### User:\nNow sadder." in p[1]["content"] for p in prompts)
    (vote,) = store.votes("talk")
    assert vote["winner"] == "a"  # x: in both orders


def test_the_side_by_side_demo_continues_both_conversations(tiny_registry, tmp_path):
    """The demo's follow-up: each model answers it after its own first answer (the requests show it)."""
    from blindarena.ui import demo
    from blindarena.ui.common import services

    room = demo.DemoRoom(*[f"component-{i}" for i in range(14)])  # callbacks return updates keyed by component
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"]) as server:
        config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", quantize=False,
                             generation_backend="openai", generation_base_url=server.url)
        svc = services(config)
        *_, first = demo.side_by_side(svc, room, "", "ad-a", "ad-b", "Name a fruit.", 16, 0, 0)
        history = first[room.history]
        assert history["models"] == ["ad-a", "ad-b"] and first[room.left_answer] == "[ad-a] reply to: Name a fruit."
        server.requests.clear()
        *_, second = demo.continue_conversation(svc, room, "", history, "And a vegetable?", 16, 0, 0)
        bodies = {body["model"]: body["messages"] for _, _, body in server.requests}
    for model in ("ad-a", "ad-b"):
        assert bodies[model] == [{"role": "user", "content": "Name a fruit."},
                                 {"role": "assistant", "content": f"[{model}] reply to: Name a fruit."},
                                 {"role": "user", "content": "And a vegetable?"}]
    assert second[room.left_answer] == ("[ad-a] reply to: Name a fruit.\n\n» And a vegetable?\n\n"
                                        "[ad-a] reply to: And a vegetable?")
    assert len(second[room.history]["right"]) == 4 and second[room.followup] == ""


ZEBRAS = ["zebra-one", "zebra-two", "zebra-three"]


def open_zebra_campaign(tiny_registry, tmp_path, name: str) -> Store:
    """An open campaign of the three zebra adapters on the tiny base, in tmp_path/data."""
    from conftest import make_lora
    from posttrain.engine import Engine

    for seed, zebra in enumerate(ZEBRAS, start=4):
        tiny_registry.import_adapter(make_lora(tiny_registry.get("tiny").path, tmp_path / zebra, seed=seed), zebra,
                                     base="tiny", method="sft")
    store = Store(tmp_path / "data" / "arena.sqlite")
    arena.create_campaign(store, Engine(tiny_registry, "tiny", quantize=False), name, ZEBRAS, [],
                          SamplingParams(max_new_tokens=6, seed=1), settings=CampaignSettings(open=True))
    return store


def test_open_battles_through_the_public_api(tiny_registry, tmp_path):
    """Several API raters ask their own questions (/ask, and a follow-up), vote, and go on (/next):
    every turn and vote is stored, no name reaches them before a vote, and the pairs are covered evenly."""
    import threading
    from collections import Counter

    store = open_zebra_campaign(tiny_registry, tmp_path, "ask-away")
    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         quantize=False)
    site = launch(config, store)
    problems, before_votes = [], []

    def rate(i: int) -> None:
        client = Client(site.url, verbose=False)
        before_votes.append(json.dumps(client.predict("ask-away", f"asker-{i}", "", api_name="/start")))
        for battle in range(2):
            job = client.submit(f"question {i}-{battle}: what is a zebra?", api_name="/ask")
            first = job.result()
            if len(job.outputs()) < 2:  # the answers stream: partial updates before the final one
                problems.append(f"asker-{i}: /ask sent {len(job.outputs())} update(s)")
            follow = client.predict(f"follow-up {i}-{battle}", api_name="/ask") if battle == 0 else first
            before_votes.extend([json.dumps(first), json.dumps(follow)])
            if battle == 0 and "follow-up" not in follow[2]:
                problems.append(f"asker-{i}: the follow-up is not in the conversation")
            after = client.predict("A is better", None, None, "", "", api_name="/vote")
            if not any(name in after[4] for name in ZEBRAS):
                problems.append(f"asker-{i}: no reveal")
            client.predict(api_name="/next")

    try:
        threads = [threading.Thread(target=rate, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        endpoints = set(Client(site.url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"])
    finally:
        site.ui.close()
    assert endpoints == {"/start", "/vote", "/next", "/campaigns", "/ask"}
    assert not problems, problems
    assert all(not any(name in payload for name in ZEBRAS) for payload in before_votes)
    votes = store.votes("ask-away")
    assert len(votes) == 8 and {v["category"] for v in votes} == {"open"}
    per_pair = Counter(tuple(sorted((v["model_a"], v["model_b"]))) for v in votes)
    assert sorted(per_pair.values()) == [2, 3, 3]  # 8 battles over 3 pairs, evenly
    two_turns = [b for b in (store.battle(v["battle_id"]) for v in votes) if len(b["turns"]) == 2]
    assert len(two_turns) == 4 and all(len(b["turns_a"]) == len(b["turns_b"]) == 2 for b in two_turns)
    out = tmp_path / "open-pairs.jsonl"
    assert export_pairs(store, "ask-away", out) == 8  # open battles' prompts are part of the export
    assert any(len(json.loads(line)["chosen"]) == 3 for line in out.read_text().splitlines())


def test_open_battles_refuse_what_the_campaign_caps_and_count_it(tiny_registry, tmp_path):
    store = Store(tmp_path / "arena.sqlite")
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"]) as server:
        generator = make_generator(tiny_registry, "tiny", backend="openai", base_url=server.url)
        settings = CampaignSettings(open=True, max_turns=2, max_prompt_chars=40, battles_per_hour=2, max_duplicates=1)
        arena.create_campaign(store, generator, "capped", ["ad-a", "ad-b"], [], SamplingParams(max_new_tokens=10), settings=settings)
        rater = arena.join(store, "capped", "ann")
        ask = lambda battle, text: list(open_battles.ask(store, generator, "capped", rater, battle, text))[-1]
        with pytest.raises(StoreError, match="at most 40"):
            ask(None, "x" * 41)
        first = ask(None, "Why is the sky blue?")
        assert first["done"] and first["answers_a"] == ["[ad-a] reply to: Why is the sky blue?"]
        second = ask(first["battle_id"], "And at night?")
        assert second["turns"] == ["Why is the sky blue?", "And at night?"]
        with pytest.raises(StoreError, match="its 2 turns"):
            ask(first["battle_id"], "A third?")
        store.vote(rater, first["battle_id"], "left")
        with pytest.raises(StoreError, match="voted on this battle"):
            ask(first["battle_id"], "More?")
        with pytest.raises(StoreError, match="asked often"):
            ask(None, "why is the SKY blue")  # the same question, normalised
        ask(None, "Name a river.")
        with pytest.raises(StoreError, match="2 battles in the last hour"):
            ask(None, "Name a mountain.")
    res = arena.results(store, "capped", rounds=0)
    assert res["open"] and res["refused"] == {"too_long": 1, "too_many_turns": 1, "duplicate_prompt": 1, "hourly_cap": 1}


def test_the_closed_loop_trains_on_an_open_campaigns_pairs(tiny_registry, tmp_path):
    from blindarena.loop import next_round
    from posttrain.engine import Engine

    engine = Engine(tiny_registry, "tiny", quantize=False)
    store = Store(tmp_path / "arena.sqlite")
    arena.create_campaign(store, engine, "open-loop", ["ad-a", "ad-b"], [], SamplingParams(max_new_tokens=6, seed=1),
                          settings=CampaignSettings(open=True))
    for rater in ("ann", "bob"):
        rid = arena.join(store, "open-loop", rater)
        for topic in ("rivers", "hills"):
            done = list(open_battles.ask(store, engine, "open-loop", rid, None, f"{rater} asks about {topic}"))[-1]
            store.vote(rid, done["battle_id"], "left")
    new = tmp_path / "new.jsonl"
    new.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in ["Name a bird.", "Count to three."]))
    result = next_round(store, tiny_registry, lambda: engine, "open-loop", "ad-a", "child", new, tmp_path / "rounds",
                        max_steps=1)
    assert result["pairs"] == 4 and result["votes"] == 4
    assert tiny_registry.get("child").card["source_campaign"] == "open-loop"
    assert store.campaign(result["campaign"])["models"] == ["child", "ad-a"]


def test_concurrent_asks_cover_the_pairs_evenly_with_the_queue_concurrency_raised(tiny_registry, tmp_path):
    """Six raters ask at once with MODEL_CONCURRENCY 6: each new open battle's pair is chosen and
    stored in one transaction, so six battles over three pairs are exactly two per pair."""
    from collections import Counter

    store = open_zebra_campaign(tiny_registry, tmp_path, "at-once")
    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         quantize=False, model_concurrency=6)
    site = launch(config, store)
    clients = [Client(site.url, verbose=False) for _ in range(6)]
    try:
        for i, client in enumerate(clients):
            client.predict("at-once", f"asker-{i}", "", api_name="/start")
        jobs = [client.submit(f"question {i}: what is a zebra?", api_name="/ask") for i, client in enumerate(clients)]
        results = [job.result() for job in jobs]
    finally:
        site.ui.close()
    assert len(results) == 6
    battles = [store.battle(b["battle_id"]) for b in store.battle_answers("at-once")]
    assert len(battles) == 6 and all(len(b["turns_a"]) == len(b["turns_b"]) == 1 for b in battles)
    assert sorted(Counter(tuple(sorted((b["model_a"], b["model_b"]))) for b in battles).values()) == [2, 2, 2]
