"""The closed loop on the embedded default, end to end: a campaign's human votes -> a DPO round
on the parent (the project's recipe, a few steps) -> the child in the registry with its lineage ->
a new campaign child vs parent on prompts the pairs never saw; overlapping prompts are refused."""

import hashlib
import importlib.util
import json

import pytest

from conftest import ROOT, make_lora
from blindarena import operations as arena
from blindarena.prompts import DEFAULT_PROMPTS, load_prompts
from blindarena.store import Store
from posttrain.engine import Engine, SamplingParams


def arena_main():
    spec = importlib.util.spec_from_file_location("arena_script", ROOT / "scripts" / "arena.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.mark.slow
def test_next_round_trains_publishes_and_opens_a_campaign_on_unseen_prompts(real_registry, default_base, tmp_path, capsys):
    _, base = default_base
    real_registry.import_adapter(make_lora(base.path, tmp_path / "parent", seed=3, r=4, target_modules=["q_proj", "v_proj"]),
                                 "sft-r", base=base.name, method="sft")
    store = Store(tmp_path / "data" / "arena.sqlite")
    prompts = load_prompts(DEFAULT_PROMPTS)[:4]
    arena.create_campaign(store, Engine(real_registry, base.name), "captains", ["sft-r", base.name], prompts,
                          SamplingParams(max_new_tokens=8, temperature=0))
    rater = arena.join(store, "captains", "ann")
    while (battle := store.next_assignment(rater)) is not None:
        store.vote(rater, battle.battle_id, "left")
    new_prompts = tmp_path / "new.jsonl"
    new_prompts.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in
                                   ["Name a yellow fruit.", "How many legs does a spider have?", "Say hello in French."]))
    common = ["--registry", str(real_registry.root), "--data-dir", str(tmp_path / "data"), "--base", base.name]
    main = arena_main()

    clash = tmp_path / "clash.jsonl"
    clash.write_text(json.dumps({"prompt": "Say hello in French."}) + "\n" + json.dumps({"prompt": prompts[2]["prompt"]}) + "\n")
    assert main([*common, "next-round", "captains", "--parent", "sft-r", "--name", "child", "--prompts", str(clash),
                 "--max-steps", "2"]) == 2
    error = capsys.readouterr().err
    assert "1 prompts overlap" in error and "prompt 2" in error and "child" not in real_registry.names()

    assert main([*common, "next-round", "captains", "--parent", "sft-r", "--name", "child", "--prompts", str(new_prompts),
                 "--max-steps", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["child"] == "child" and result["pairs"] == 4 and result["votes"] == 4
    card = real_registry.get("child").card
    assert card["method"] == "dpo" and card["parent"] == "sft-r" and card["source_campaign"] == "captains"
    assert card["votes"] == 4 and card["pairs"] == 4 and card["steps"] == 2
    assert card["pairs_hash"] == "sha256:" + hashlib.sha256(open(card["pairs_file"], "rb").read()).hexdigest()
    made = store.campaign(result["campaign"])
    assert made["models"] == ["child", "sft-r"] and made["status"] == "ready"
    new_texts = {a["prompt"] for a in store.answers(result["campaign"])}
    assert new_texts == {"Name a yellow fruit.", "How many legs does a spider have?", "Say hello in French."}
    assert not new_texts & {p["prompt"] for p in prompts}


def voted_campaign(tiny_registry, tmp_path, texts: list[str]):
    """The app's services over the tiny registry with campaign "tasting" (ad-a vs ad-b on `texts`),
    every battle voted "right" by kim, and a file of two new prompts for the next round."""
    from blindarena.ui import ArenaConfig, services

    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                         quantize=False)
    svc = services(config)
    prompts = [{"question_id": i, "category": None, "prompt": p} for i, p in enumerate(texts)]
    arena.create_campaign(svc.store, svc.engine(), "tasting", ["ad-a", "ad-b"], prompts, SamplingParams(max_new_tokens=6))
    rater = arena.join(svc.store, "tasting", "kim")
    while (battle := svc.store.next_assignment(rater)) is not None:
        svc.store.vote(rater, battle.battle_id, "right")
    new = tmp_path / "new.jsonl"
    new.write_text(json.dumps({"prompt": "the quick brown fox"}) + "\n" + json.dumps({"prompt": "how are you today"}) + "\n")
    return svc, new


def test_next_round_from_the_app_admin_action(tiny_registry, tmp_path):
    from blindarena.ui import run_next_round

    svc, new = voted_campaign(tiny_registry, tmp_path, ["two plus two", "hello world", "write a poem about the sea",
                                                        "python code please"])
    messages = []
    result = run_next_round(svc, "tasting", "ad-a", "ad-a-r2", str(new), 2, say=messages.append)
    assert result["campaign"] == "tasting-next" and svc.store.campaign("tasting-next")["models"] == ["ad-a-r2", "ad-a"]
    assert tiny_registry.get("ad-a-r2").card["source_campaign"] == "tasting"
    assert any("DPO round" in m for m in messages)  # progress shown while it trains
    assert len(svc.store.answers("tasting-next")) == 4


def test_next_round_grpo_trains_a_reward_model_on_the_votes_then_a_grpo_round_against_it(tiny_registry, tmp_path):
    """--method grpo: the campaign's human pairs -> a reward model (lineage: the campaign) -> a GRPO
    round on the pairs' prompts rewarded by it -> the child in a new campaign vs its parent."""
    from blindarena.ui import run_next_round

    svc, new = voted_campaign(tiny_registry, tmp_path, ["two plus two", "hello world", "write a poem about the sea",
                                                        "python code please", "name a fruit"])
    result = run_next_round(svc, "tasting", "ad-a", "ad-a-rl", str(new), 2, method="grpo")
    assert result["method"] == "grpo" and result["reward_model"] == "ad-a-rl-reward"
    reward = tiny_registry.get("ad-a-rl-reward").card
    child = tiny_registry.get("ad-a-rl").card
    assert reward["method"] == "reward" and reward["source_campaign"] == "tasting" and reward["votes"] == 5
    assert child["method"] == "grpo" and child["parent"] == "ad-a" and child["reward"] == ["reward_model:ad-a-rl-reward"]
    assert child["reward_versions"]["reward_model:ad-a-rl-reward"] and child["source_campaign"] == "tasting"
    assert svc.store.campaign(result["campaign"])["models"] == ["ad-a-rl", "ad-a"]
