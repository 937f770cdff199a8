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
