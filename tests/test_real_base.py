"""The real pretrained base, offline: Gemma 3 270M from PyPI's GGUF packages (scripts/install.sh
pins them), imported as a registry base with its Hub id, license and terms; Gemma's own turn
format fits its vocabulary where ChatML does not."""

import subprocess
import sys

import pytest

from conftest import ROOT


def test_import_default_gemma_is_a_pretrained_base_with_its_terms(tmp_path):
    from posttrain import templates
    from posttrain.models import load_tokenizer
    from posttrain.registry import Registry

    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "registry.py"), "--registry", str(tmp_path / "registry"),
                          "import-default", "--model", "gemma-3-270m"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-2000:]
    entry = Registry(tmp_path / "registry").get("gemma-3-270m")
    assert (entry.card["hub_id"], entry.card["base_model"], entry.card["license"]) == ("google/gemma-3-270m",) * 2 + ("gemma",)
    assert 260e6 < entry.card["parameters"] < 280e6
    assert "Gemma Terms of Use" in (entry.path / "NOTICE.md").read_text() + (entry.path / "README.md").read_text()
    assert (entry.path / "GEMMA_TERMS.html").is_file()
    tokenizer = load_tokenizer(entry.path)
    assert not getattr(tokenizer, "chat_template", None)  # pretrained: no template
    assert [tokenizer.convert_tokens_to_ids(t) for t in ("<start_of_turn>", "<end_of_turn>")] == [105, 106]
    with pytest.raises(templates.ChatTemplateError, match="<\\|im_start\\|>"):
        templates.apply(tokenizer, "chatml")
    templates.apply(tokenizer, "gemma")
    assert templates.end_of_turn_id(tokenizer) == 106
    again = subprocess.run([sys.executable, str(ROOT / "scripts" / "registry.py"), "--registry", str(tmp_path / "registry"),
                            "import-default", "--model", "gemma-3-270m"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0  # idempotent
    unknown = subprocess.run([sys.executable, str(ROOT / "scripts" / "registry.py"), "--registry", str(tmp_path / "r2"),
                              "import-default", "--model", "gemma-9b"], capture_output=True, text=True, timeout=300)
    assert unknown.returncode == 2 and "no embedded base 'gemma-9b'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_real_base_report_reads_each_win_rate_from_either_side_and_renders_the_table():
    import runpy

    real_base = runpy.run_path(str(ROOT / "scripts" / "real_base.py"))
    judged = {"win_rates": [{"model": "gemma-3-270m", "opponent": "gemma-sft", "win_rate": 0.25, "ci_low": 0.15,
                             "ci_high": 0.4, "wins": 20, "losses": 70, "ties": 10}]}
    flipped = real_base["win_rate"](judged, "gemma-sft", "gemma-3-270m")
    assert flipped == {"win_rate": 0.75, "ci95": [0.6, 0.85], "wins": 70, "losses": 20, "ties": 10}
    assert real_base["win_rate"](judged, "gemma-dpo", "gemma-sft") is None
    entry = {"prompt_loose": 0.3, "prompt_strict": 0.25, "ci95": [0.2, 0.4], "instruction_loose": 0.35, "n": 175}
    metrics = {"date": "2026-12-01", "quick": False, "ifeval": {k: entry for k in ("base", "sft", "sft_general_only", "dpo")},
               "win_rate": {"sft_vs_base": flipped, "dpo_vs_sft": None, "judge": "judge-smollm2", "prompts": "p.jsonl"},
               "perplexity": {"base": 40.0, "sft": 9.5}, "preference_accuracy": {"dpo": 0.7, "sft": 0.5},
               "synthetic_lift": {"sft_with_verified": 0.3, "sft_general_only": 0.2, "lift": 0.1},
               "closed_loop": {"votes": 100, "pairs": 60, "child": "c", "child_prompt_loose": 0.32, "parent_prompt_loose": 0.3,
                               "gain": 0.02, "gain_per_100_votes": 0.02},
               "adapter": {"trainable_parameters": 3_800_000, "parameters": 268_000_000, "adapter_weights_bytes": 15_000_000,
                           "adapter_folder_bytes": 48_000_000},
               "data": {"sft_rows": 900, "general_rows": 300, "sharegpt": {"train": 160}, "rewrite_rows": 440, "rewrite_pairs": 300},
               "minutes": 44.0}
    table = real_base["markdown"](metrics)
    assert "| IFEval prompt-level loose (95% CI) | 0.300 [0.200, 0.400] |" in table
    assert "judged win rate SFT vs base: **0.750** [0.600, 0.850] (70-20-10" in table and "DPO vs SFT: n/a" in table
    assert "+0.020; 0.0200 per 100 votes" in table and "(1.42%); weights 15.0 MB" in table
