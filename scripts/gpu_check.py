"""The GPU proof, side by side in one run on a 7B-shaped random Llama (no downloads):

    python scripts/gpu_check.py [--dry] [--out DIR] [--json]

train:  one QLoRA step (NF4 + double quant, LoRA r=16 on all linear layers, gradient
        checkpointing, paged 8-bit AdamW, batch 4 x 1024 tokens): tokens/s and peak memory of
        plain transformers + PEFT + bitsandbytes (prepare_model_for_kbit_training, the model's own
        loss) next to this project's path (posttrain.train.load_trainable: no fp32 upcasts, a
        chunked fused LM-head loss like TRL's; then with Liger's layer kernels as well).
decode: tokens/s at batch 1 with one adapter (and a battle, 2 rows) for plain PEFT and for the
        engine (eager, then static cache + torch.compile with CUDA graphs), next to the bandwidth
        bound (bytes read per token / measured copy bandwidth).
--dry runs every step on tiny shapes on the CPU (what CI does); the numbers then mean nothing.
Every figure is written to OUT/gpu_check.json as soon as it exists."""

import argparse
import gc
import json
import logging
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

from posttrain.engine import Engine, SamplingParams
from posttrain.registry import Registry
from posttrain.tiny import make_tokenizer
from posttrain.loading import load_trainable
from posttrain.recipe import LINEAR, RunArguments

ROOT = Path(__file__).resolve().parents[1]

SHAPES = {
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096),
    "dry": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=4, vocab_size=512, max_position_embeddings=2048),
}
results: dict = {}


def sync():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def save(out: Path):
    (out / "gpu_check.json").write_text(json.dumps(results, indent=2))


def step(name: str, out: Path, fn):
    """Run one measurement; a failure is recorded, not fatal, so the other rows still come back."""
    started = time.time()
    print(f"== {name}", flush=True)
    try:
        results[name] = fn()
    except Exception as exc:  # measured on a lent machine once: keep every other figure
        traceback.print_exc()
        results[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    results[name]["wall_s"] = round(time.time() - started, 1)
    print(f"   {results[name]}", flush=True)
    save(out)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def build_base(registry: Registry, shape: dict) -> str:
    """A random Llama of `shape` in bf16, published as a registry base."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer()
    tokenizer.model_max_length = shape["max_position_embeddings"]
    config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        torch.set_default_dtype(torch.bfloat16)
        model = LlamaForCausalLM(config)
        torch.set_default_dtype(torch.float32)

    def write(tmp: Path):
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    registry.publish_base("base", write, source="random-llama-7b-shape")
    del model
    return "base"


def lora_config(**extra):
    from peft import LoraConfig

    return LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=list(LINEAR), task_type="CAUSAL_LM", **extra)


def optimizer(model):
    params = [p for p in model.parameters() if p.requires_grad]
    if torch.cuda.is_available():
        import bitsandbytes as bnb

        return bnb.optim.PagedAdamW8bit(params, lr=1e-4)
    return torch.optim.AdamW(params, lr=1e-4)


def chunked_loss(model, input_ids, labels, chunk: int = 1024):
    """Causal-LM loss through the head a chunk of positions at a time, each chunk recomputed in
    backward: no [batch, seq, vocab] logits kept (what TRL's fused LM head does in SFTTrainer)."""
    from torch.utils.checkpoint import checkpoint

    base = model.get_base_model()
    hidden = base.get_decoder()(input_ids=input_ids).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    head = base.get_output_embeddings()

    def piece(h, t):
        return torch.nn.functional.cross_entropy(head(h).float().flatten(0, 1), t.flatten(), reduction="sum")

    total = sum(checkpoint(piece, hidden[:, s : s + chunk], target[:, s : s + chunk], use_reentrant=False)
                for s in range(0, hidden.shape[1], chunk))
    return total / target.numel()


def time_training(model, loss_fn, batch: int, seq: int, vocab: int, steps: int) -> dict:
    device = next(model.parameters()).device
    model.train()  # from_pretrained returns eval mode, where checkpointing and dropout are off
    opt = optimizer(model)
    ids = torch.randint(3, vocab, (batch, seq), device=device)
    times = []
    for i in range(steps + 2):  # two warm-up steps
        sync()
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(model, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if i >= 2:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    reserved = torch.cuda.max_memory_reserved() / 2**30 if torch.cuda.is_available() else float("nan")
    return {"tokens_per_s": round(batch * seq / seconds, 1), "step_s": round(seconds, 3),
            "peak_allocated_gib": round(peak, 2), "peak_reserved_gib": round(reserved, 2), "loss": round(loss.item(), 3)}


def reset_peak():
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train_plain(registry, args, vocab):
    from peft import get_peft_model, prepare_model_for_kbit_training
    from posttrain.models import nf4_config
    from transformers import AutoModelForCausalLM

    reset_peak()
    device_map = {"": 0} if torch.cuda.is_available() else None
    model = AutoModelForCausalLM.from_pretrained(str(registry.get("base").path), quantization_config=nf4_config(),
                                                 dtype=torch.bfloat16, device_map=device_map)
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, lora_config())
    loss = lambda m, ids: m(input_ids=ids, labels=ids).loss
    try:
        return time_training(model, loss, args.batch, args.seq, vocab, args.steps)
    finally:
        del model


def train_ours(registry, args, vocab, liger: bool):
    reset_peak()
    from trl import ModelConfig

    run = RunArguments(name="gpu-check", base="base", registry=str(registry.root), quantize=True,
                       train_template_tokens="false", liger_kernels=liger)
    base = registry.get("base")
    model = load_trainable(base, None, run, gradient_checkpointing=True,
                           model_args=ModelConfig(lora_r=16, lora_alpha=32, lora_dropout=0.05))
    loss = lambda m, ids: chunked_loss(m, ids, ids)
    try:
        return time_training(model, loss, args.batch, args.seq, vocab, args.steps)
    finally:
        del model


def make_adapter(registry: Registry, workdir: Path) -> str:
    """A random r=16 all-linear LoRA written with plain PEFT (base on the meta device: only the
    LoRA weights are materialised), imported into the registry."""
    from peft import get_peft_model, get_peft_model_state_dict
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(registry.get("base").path))
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    peft_model = get_peft_model(model, lora_config())
    torch.manual_seed(1)
    for name, module in peft_model.named_modules():
        if isinstance(module, torch.nn.Linear) and (".lora_A." in name or ".lora_B." in name):
            module.to_empty(device="cpu")
            torch.nn.init.normal_(module.weight, std=0.02)
    folder = workdir / "adapter"
    folder.mkdir()
    save_file({k: v.contiguous() for k, v in get_peft_model_state_dict(peft_model).items()},
              str(folder / "adapter_model.safetensors"))
    peft_model.peft_config["default"].save_pretrained(str(folder))
    registry.import_adapter(folder, "lora", base="base", method="sft")
    return "lora"


def bandwidth_gbs() -> float:
    if not torch.cuda.is_available():
        return float("nan")
    x = torch.empty(2**30, dtype=torch.uint8, device="cuda")  # 1 GiB
    y = torch.empty_like(x)
    for _ in range(3):
        y.copy_(x)
    sync()
    start = time.perf_counter()
    for _ in range(10):
        y.copy_(x)
    sync()
    return 2 * 10 * x.numel() / (time.perf_counter() - start) / 1e9  # read + write


def bytes_per_token(model) -> int:
    """Weights read per decode step: every parameter but the input embedding (one row)."""
    embed = model.get_input_embeddings().weight
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    return total - embed.numel() * embed.element_size()


def decode_rate(generate, tokens: int, rows: int, repeats: int) -> float:
    generate()  # warm-up (and compilation)
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        generate()
        sync()
        times.append(time.perf_counter() - start)
    return round(tokens / statistics.median(times), 1)  # tokens of one row per second


def decode_plain(registry, args):
    from peft import PeftModel
    from posttrain.models import load_base, load_tokenizer

    base = registry.get("base")
    loaded = load_base(base.path)
    model = PeftModel.from_pretrained(loaded.model, str(registry.get("lora").path)).eval()
    tokenizer = load_tokenizer(base.path)
    ids = tokenizer("hello world how are you today", return_tensors="pt").to(loaded.model.device)
    params = dict(max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False,
                  pad_token_id=tokenizer.pad_token_id)
    with torch.inference_mode():
        rate = decode_rate(lambda: model.generate(**ids, **params), args.tokens, 1, 1)  # slow: one timed run
    out = {"tokens_per_s": rate, "quantization": loaded.quantization}
    del model, loaded
    return out


def decode_engine(registry, args):
    """The engine eager, then with its compiled static-cache decode: one load, both rows."""
    engine = Engine(registry, "base", compile=False)
    params = SamplingParams(max_new_tokens=args.tokens, min_new_tokens=args.tokens, temperature=0)
    prompt = "hello world how are you today"
    bound = bandwidth_gbs() * 1e9 / bytes_per_token(engine.model)
    for mode in ("eager", "compiled"):
        if mode == "compiled":
            if not torch.cuda.is_available():
                break
            engine.enable_compiled_decode()

        def measure():
            with torch.inference_mode():
                single = decode_rate(lambda: engine.generate([prompt], ["lora"], params), args.tokens, 1, args.repeats)
                battle = decode_rate(lambda: engine.battle(prompt, "lora", "__base__", params), args.tokens, 2, args.repeats)
            return {"single_tokens_per_s": single, "battle_tokens_per_s_per_row": battle,
                    "battle_over_single_time": round(single / battle, 2), "bound_tokens_per_s": round(bound, 1),
                    "single_share_of_bound": round(single / bound, 3),
                    "bytes_per_token_gb": round(bytes_per_token(engine.model) / 1e9, 3)}

        step(f"decode_engine_{mode}", args.out_dir, measure)
    del engine
    return {}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry", action="store_true", help="tiny shapes on the CPU: checks the script, measures nothing")
    parser.add_argument("--out", default=".", help="folder for gpu_check.json")
    parser.add_argument("--only", choices=["train", "decode"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.dry and not torch.cuda.is_available():
        print("no GPU: run with --dry for the CPU check of this script", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING)
    shape = SHAPES["dry" if args.dry else "7b"]
    args.batch, args.seq, args.steps = (2, 64, 2) if args.dry else (4, 1024, 4)
    args.tokens, args.repeats = (8, 1) if args.dry else (64, 3)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu (dry run)"
    results["torch"] = torch.__version__
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "registry")
        step("build", out, lambda: {"base": build_base(registry, shape)})
        vocab = shape["vocab_size"] if args.dry else 400  # ids the tiny tokenizer knows
        if args.only != "decode":
            step("train_plain", out, lambda: train_plain(registry, args, vocab))
            step("train_ours", out, lambda: train_ours(registry, args, vocab, liger=False))
        if args.only != "train":
            step("adapter", out, lambda: {"name": make_adapter(registry, Path(tmp))})
            step("decode_plain_peft", out, lambda: decode_plain(registry, args))
            args.out_dir = out
            step("decode_engine", out, lambda: decode_engine(registry, args))
        if args.only != "decode":  # last: Liger patches the Llama classes for every later load
            step("train_ours_liger", out, lambda: train_ours(registry, args, vocab, liger=True))
    print_table()
    if args.json:
        print(json.dumps(results))
    return 0


def print_table():
    print(f"\ndevice: {results['device']}, torch {results['torch']}")
    for name, row in results.items():
        if isinstance(row, dict):
            print(f"{name:24} " + ", ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    sys.exit(main())
