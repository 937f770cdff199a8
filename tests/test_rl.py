"""Online RL rounds (train.py grpo / rloo, TRL's trainers) on the tiny model: prompts from the
project's formats, each reward kind (IFEval's checkers, a registry reward model, an OpenAI-compatible
judge, a user's function), the gold measure logged beside the proxy, and lineage on the card."""

import json
import sys

import pytest

from conftest import ROOT
from posttrain import rl
from posttrain.errors import RecipeError


def toy_reward(prompts, completions, **columns):
    """A user's own function: longer is better (a reward that is easy to hack)."""
    return [float(len(rl.reply_text(c))) for c in completions]


def test_prompts_come_from_every_project_format(tmp_path):
    path = tmp_path / "p.jsonl"
    rows = [{"key": 1, "prompt": "Write two lines. Do not use a single comma anywhere.",
             "instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
            {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
            {"prompt": [{"role": "user", "content": "Pick one."}], "chosen": [], "rejected": []},
            {"instruction": "Name a colour."}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + json.dumps({"output": "no prompt"}) + "\n")
    with pytest.raises(RecipeError, match=r"p.jsonl:5: no prompt"):
        rl.read_prompts(path)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = rl.read_prompts(path)
    assert [r["prompt"][-1]["content"] for r in got] == ["Write two lines. Do not use a single comma anywhere.", "Hi?",
                                                         "Pick one.", "Name a colour."]
    assert json.loads(got[0]["ifeval"])["instruction_id_list"] == ["punctuation:no_comma"] and got[1]["ifeval"] == ""


def test_reward_specs_resolve_or_are_refused_by_name():
    from posttrain import rewards

    check = json.dumps({"instruction_id_list": ["punctuation:no_comma", "change_case:english_lowercase"], "kwargs": [{}, {}]})
    completions = [[{"role": "assistant", "content": "there are no commas in this plain english sentence about the weather"}], [{"role": "assistant", "content": "Yes, Capitals"}],
                   [{"role": "assistant", "content": "anything"}]]
    columns = {"ifeval": [check, check, ""]}
    assert rewards.ifeval(None, completions, **columns) == [1.0, 0.0, None]
    assert rewards.ifeval_all(None, [[{"role": "assistant", "content": "Yes commas, here"}]], ifeval=[check]) == [0.0]
    assert rewards.ifeval(None, [[{"role": "assistant", "content": "this one is lower case, but it has a comma in the middle"}]], ifeval=[check]) == [0.5]
    functions, weights = rl.rewards(["ifeval", "python:test_rl:toy_reward"], [1.0, 0.5], "ifeval:all")
    assert [f.__name__ for f in functions] == ["ifeval", "python_test_rl_toy_reward", "ifeval_all"] and weights == [1.0, 0.5, 0.0]
    for spec, why in (("python:nowhere:f", "No module named 'nowhere'"), ("python:test_rl", "python:MODULE:FUNCTION"),
                      ("bleu", "unknown reward 'bleu'"), ("reward_model:ghost", "no such registry entry")):
        with pytest.raises(RecipeError, match=why):
            rl.rewards([spec], None, None)
    with pytest.raises(RecipeError, match="2 values for 1 rewards"):
        rl.rewards(["ifeval"], [1.0, 2.0], None)
    with pytest.raises(RecipeError, match="the gold measure must be one the round does not optimise"):
        rl.rewards(["ifeval"], None, "ifeval")
    with pytest.raises(RecipeError, match="needs `reward`"):
        rl.parse_specs("")


def grpo(kind, registry, tmp_path, reward, gold=None, steps=2, **extra):
    from posttrain.train import parse_run, run

    args = ["--config", str(ROOT / "posttrain" / "recipes" / f"{kind}_default.yaml"), "--name", f"{kind}-child",
            "--base", "tiny", "--parent", "ad-a", "--registry", str(registry.root), "--reward", reward,
            "--data", str(ROOT / "data" / "ifeval_train.jsonl"), "--max_rows", "12", "--eval_fraction", "0.25",
            "--max_steps", str(steps), "--max_completion_length", "8", "--output_dir", str(tmp_path / "runs" / kind),
            "--lora_r", "4", "--lora_alpha", "8", *(["--gold", gold] if gold else [])]
    for key, value in extra.items():
        args += [f"--{key}", str(value)]
    return run(kind, *parse_run(kind, args))


@pytest.mark.parametrize("kind", ["grpo", "rloo"])
def test_an_online_rl_round_trains_logs_reward_gold_length_kl_and_publishes_lineage(kind, tiny_registry, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    entry = grpo(kind, tiny_registry, tmp_path, "python:test_rl:toy_reward", gold="ifeval")
    card = entry.card
    assert (card["method"], card["parent"], card["reward"], card["gold"]) == (kind, "ad-a", ["python:test_rl:toy_reward"], "ifeval")
    assert card["group_size"] == 4 and card["kl_coefficient"] == 0.04 and card["reward_weights"] == [1.0, 0.0]
    assert card["steps"] == 2 and card["dataset_format"] == "prompts"
    metrics = card["metrics"]  # held-out rollouts before (parent_) and after: every reward and the length
    for key in ("rewards/python_test_rl_toy_reward/mean", "rewards/ifeval/mean", "completions/mean_length"):
        assert key in metrics and f"parent_{key}" in metrics, sorted(metrics)
    log = json.loads((entry.path / "training_log.json").read_text())
    steps = [h for h in log if "rewards/ifeval/mean" in h and "reward" in h]
    assert len(steps) == 2 and all("completions/mean_length" in h and "kl" in h for h in steps)
    from blindarena import plots  # the Models tab draws them: proxy and gold, length, KL

    drawn = {trace.name for trace in plots.rl_curves(log).data}
    assert drawn == {"python_test_rl_toy_reward", "ifeval", "length (tokens)", "KL"}


def test_reward_model_and_openai_judge_rewards_score_a_round(tiny_registry, tmp_path, monkeypatch):
    from posttrain.fake_openai import FakeOpenAI
    from posttrain.train import RunArguments, run
    from trl import ModelConfig, RewardConfig

    pairs = ROOT / "data" / "preference" / "train.jsonl"
    run("reward", RunArguments(name="rm", base="tiny", data=str(pairs), registry=str(tiny_registry.root), max_rows=8),
        RewardConfig(output_dir=str(tmp_path / "rm"), use_cpu=True, report_to="none", max_steps=1, max_length=256,
                     per_device_train_batch_size=4, save_strategy="no"), ModelConfig(lora_r=4, lora_alpha=8))
    grades = iter("Rating: [[7]]" if i % 2 else "Rating: [[3]]" for i in range(10_000))
    with FakeOpenAI(reply=lambda body: next(grades)) as server:
        monkeypatch.setenv("JUDGE_BASE_URL", server.url)
        monkeypatch.setenv("JUDGE_MODEL", "grader")
        import posttrain.rewards

        monkeypatch.setattr(posttrain.rewards, "_GRADER", None)
        entry = grpo("grpo", tiny_registry, tmp_path, "reward_model:rm,judge:openai", gold=None, steps=1)
        asked = len(server.requests)
    assert entry.card["reward"] == ["reward_model:rm", "judge:openai"] and entry.card["reward_versions"]["reward_model:rm"]
    assert asked >= 4  # the judge graded every completion of the step's group
    assert "rewards/judge_openai/mean" in entry.card["metrics"] and "rewards/reward_model_rm/mean" in entry.card["metrics"]


def test_vllm_rollouts_over_a_4bit_base_are_refused_before_anything_loads(tiny_registry, tmp_path):
    with pytest.raises(RecipeError, match="use_vllm with a 4-bit base"):
        grpo("grpo", tiny_registry, tmp_path, "ifeval", use_vllm="true", quantize="true")


def test_a_bad_reward_is_refused_by_train_before_anything_loads(tiny_registry, tmp_path):
    for reward, why in (("bleu", "unknown reward 'bleu'"), ("reward_model:ad-a", "'ad-a' is a 'sft' entry, not a reward model")):
        with pytest.raises(RecipeError, match=why):
            grpo("grpo", tiny_registry, tmp_path, reward)
