"""Vote hygiene in fixed campaigns: one system prompt for every model, and a battle whose answer
names a model, its base's family or its lab kept but flagged, counted, and left out of the ladder
and the pairs."""

import json

from blindarena import operations as arena, hygiene
from blindarena.export import export_pairs
from blindarena.records import CampaignSettings
from blindarena.store import Store
from posttrain.backend import make_generator
from posttrain.engine import SamplingParams
from posttrain.fake_openai import FakeOpenAI


def test_identity_words_cover_models_family_and_lab():
    words = hygiene.identity_words(["captain-dpo", "sft"], "HuggingFaceTB/SmolLM2-135M-Instruct", ["Zephyr"])
    assert {"captain-dpo", "SmolLM", "Hugging Face", "HuggingFace", "Zephyr"} <= set(words)
    assert "sft" not in words and "Instruct" not in words and "135M" not in words  # generic or too short
    assert hygiene.named("Hi! I'm a helpful AI named SmolLM, trained by Hugging Face.", words) in ("SmolLM", "Hugging Face")
    assert hygiene.named("The smolest llama ate hugging faces of grass.", words) is None  # whole words only
    assert {"Qwen", "Alibaba"} <= set(hygiene.identity_words([], "Qwen/Qwen2-0.5B-Instruct"))


def test_a_battle_whose_answer_names_a_model_is_flagged_and_left_out(tiny_registry, tmp_path):
    def reply(body):  # ad-a introduces itself on the second prompt only
        prompt = body["messages"][-1]["content"]
        if body["model"] == "ad-a" and "second" in prompt:
            return "I am SmolLM, made by Hugging Face."
        return f"{'plain' if body['model'] == 'ad-a' else 'fancy'} answer to {prompt}"

    store = Store(tmp_path / "arena.sqlite")
    prompts = [{"prompt": "first question"}, {"prompt": "second question"}, {"prompt": "third question"}]
    system = "Answer directly. Do not introduce yourself."
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"], reply=reply) as server:
        generator = make_generator(tiny_registry, "tiny", backend="openai", base_url=server.url)
        settings = CampaignSettings(system=system, identity_words=tuple(hygiene.identity_words(
            ["ad-a", "ad-b"], "HuggingFaceTB/SmolLM2-135M-Instruct")))
        made = arena.create_campaign(store, generator, "hygiene", ["ad-a", "ad-b"], prompts,
                                     SamplingParams(max_new_tokens=20, temperature=0), settings=settings)
        assert all(body["messages"][0] == {"role": "system", "content": system} for _, _, body in server.requests)
    assert made["identity_flagged_battles"] == 1
    for rater in ("ann", "bob"):
        rid = arena.join(store, "hygiene", rater)
        while (battle := arena.next_battle(store, "hygiene", rid)) is not None:
            arena.cast_vote(store, "hygiene", rid, battle.battle_id, "left" if "fancy" in battle.left else "right")
    res = arena.results(store, "hygiene", rounds=5)
    assert res["identity_flagged_battles"] == 1 and res["identity_flagged_votes"] == 2 and res["human_votes"] == 4
    assert "names 'SmolLM'" in res["identity_flags"][0]["reason"] or "Hugging Face" in res["identity_flags"][0]["reason"]
    assert sum(r["n"] for r in res["win_rates"]) == 4
    out = tmp_path / "pairs.jsonl"
    export_pairs(store, "hygiene", out)
    assert "second question" not in out.read_text() and len(out.read_text().splitlines()) == 2
    assert json.loads(out.read_text().splitlines()[0])["prompt"][0]["content"] != "second question"


def test_the_apps_new_campaign_form_makes_fixed_and_open_campaigns(tiny_registry, tmp_path):
    """The admin form's callback, called as the page calls it (fields by name): a fixed campaign with
    a target, a system prompt and extra identity words, and an open one."""
    import dataclasses

    from blindarena.ui import campaigns
    from blindarena.ui.common import ArenaConfig, services

    config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", quantize=False)
    svc = services(config)
    room = campaigns.AdminRoom(**{f.name: f"component-{f.name}" for f in dataclasses.fields(campaigns.AdminRoom)})
    lists = ["results-list", "admin-list"]
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "Name a colour."}) + "\n")
    form = dict(name="form-made", models=["ad-a", "ad-b"], prompts_file=str(prompts), max_new_tokens=4, temperature=0,
                top_p=1, seed=0, votes_per_battle=2, allocation="balanced", gold=None, gold_rate=0.1,
                min_gold_accuracy=0.7, guidelines=None, system="Be brief.", identity_words="Zephyr, Orca",
                open_campaign=False)
    out = campaigns.create(svc, room, lists, "", **form, progress=lambda *a, **k: None)
    assert "form-made" in out[room.created] and out["admin-list"]["value"] == "form-made"
    settings = svc.store.campaign("form-made")["settings"]
    assert settings["system"] == "Be brief." and settings["votes_per_battle"] == 2
    assert {"Zephyr", "Orca", "ad-a", "ad-b"} <= set(settings["identity_words"])
    out = campaigns.create(svc, room, lists, "", **{**form, "name": "form-open", "prompts_file": None,
                                                   "votes_per_battle": 0, "open_campaign": True},
                           progress=lambda *a, **k: None)
    assert "open" in out[room.created] and svc.store.campaign("form-open")["settings"]["open"]
