"""Training runs driven by YAML recipes parsed into dataclasses (TRL's TrlParser convention):
SFT and QLoRA (TRL SFTTrainer on our prompt-masked tokens), DPO / IPO (TRL DPOTrainer, the
parent SFT adapter as reference), KTO (TRL KTOTrainer) and the reward model (reward.py). Every
run ends by publishing one registry entry, atomically, with its card; a killed run resumes from
its last checkpoint."""

from __future__ import annotations

import json
import logging
import platform
import random
import resource
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from posttrain.chat import TemplateError, build_example
from posttrain.data import DataError, read
from posttrain.errors import RecipeError
from posttrain.heldout import perplexity, preference_accuracy, text_perplexity
from posttrain.methods import METHODS, Method, method, refuse_fields_without_effect
from posttrain.precision import precision_of, with_precision
from posttrain.models import DEFAULT_BASE_NAME, compute_dtype, device_map, load_tokenizer, nf4_config
from posttrain import templates
from posttrain.registry import TRAINING_LOG, Entry, Registry, RegistryError, default_registry_dir
from posttrain.reward import load_reward_model, pairwise_accuracy

log = logging.getLogger(__name__)

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class RunArguments:
    """What every run shares; the trainer's own knobs live in TRL's config (SFTConfig, ...), the
    LoRA and quantization fields in TRL's ModelConfig (lora_r, lora_alpha, lora_dropout,
    lora_target_modules, use_dora, use_rslora, load_in_4bit, ...; see `model_settings`)."""

    name: str = field(metadata={"help": "registry entry this run publishes"})
    base: str = field(default=DEFAULT_BASE_NAME, metadata={"help": "registry base entry"})
    parent: str | None = field(default=None, metadata={"help": "registry adapter to start from (DPO: the SFT model, also the reference)"})
    data: str = field(default="data/sft/train.jsonl", metadata={"help": "training data: local file or Hub id"})
    data_format: str = field(default="auto", metadata={"help": "reader format (see scripts/data.py check)"})
    data_split: str = field(default="train", metadata={"help": "split of a Hub dataset (e.g. train_prefs)"})
    eval_data: str | None = field(default=None, metadata={"help": "held-out data; default: eval_fraction of data"})
    eval_split: str = field(default="test", metadata={"help": "split of a Hub eval_data (e.g. test_prefs)"})
    eval_fraction: float = field(default=0.1, metadata={"help": "share of data held out when eval_data is unset"})
    on_bad_rows: str = field(default="skip", metadata={"help": "skip (and count) or stop at the first bad row"})
    max_rows: int | None = field(default=None, metadata={"help": "use at most this many training rows"})
    replay_data: str | None = field(default=None, metadata={
        "help": "general data mixed into training against forgetting: chat or plain {'text'} rows for SFT, "
                "preference rows for DPO / ORPO / SimPO / KTO (a file or Hub id)"})
    replay_ratio: float = field(default=0.0, metadata={
        "help": "replay rows added per training row (0.25: one general row for every four of the task's)"})
    general_text: str | None = field(default="data/general_text.jsonl", metadata={
        "help": "held-out plain text whose perplexity before and after goes on the card (the forgetting check)"})
    quantize: bool = field(default=False, metadata={
        "help": "QLoRA in one word: TRL ModelConfig's load_in_4bit with bnb_4bit_quant_type nf4 and "
                "use_bnb_nested_quant (double quantization)"})
    chat_template: str | None = field(default=None, metadata={
        "help": "chatml | llama3 | mistral | a Jinja file; needed for a base without a chat template "
                "(default: the tokenizer's own, or the parent adapter's)"})
    train_template_tokens: str = field(default="auto", metadata={
        "help": "train the embedding / head rows of the template's special tokens: auto (when the base "
                "never trained them), true, false"})
    liger_kernels: bool = field(default=False, metadata={
        "help": "Liger's Triton RMSNorm / SwiGLU / RoPE kernels (GPU; pip install liger-kernel); the loss is "
                "already TRL's fused LM head"})
    loraplus_lr_ratio: float | None = field(default=None, metadata={
        "help": "LoRA+ (Hayou et al. 2024): B's learning rate is this many times A's (PEFT's create_loraplus_optimizer); "
                "the paper suggests 16"})
    upcast_non_quantized: bool = field(default=False, metadata={
        "help": "QLoRA: cast norms, embeddings and head to fp32 (PEFT's default); off keeps the compute dtype"})
    reward: str | None = field(default=None, metadata={
        "help": "grpo / rloo: the rewards, comma-separated: ifeval | ifeval:all | reward_model:NAME | judge:openai | "
                "python:MODULE:FUNCTION (weights: TRL's reward_weights)"})
    gold: str | None = field(default=None, metadata={
        "help": "grpo / rloo: a reward computed with weight 0 on every batch and held-out prompt (logged, never "
                "optimised): where the proxy and the truth part"})
    registry: str = field(default_factory=lambda: str(default_registry_dir()))
    recipe: str | None = field(default=None, metadata={"help": "set from --config; recorded in the card"})


def trainer_config_class(kind: str):
    """TRL's config class of a training method (posttrain.methods)."""
    return method(kind).config_class()


def parse_run(kind: str, args: list[str]):
    """(RunArguments, TRL's config, TRL's ModelConfig) from `--config RECIPE` and overrides, as
    TrlParser reads them, with the precision filled from the hardware when neither set it
    (posttrain.precision: bf16 autocast where it is native, fp32 elsewhere)."""
    import yaml
    from trl import ModelConfig, TrlParser

    recipe = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"), None) or \
        next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), None)
    fields = (yaml.safe_load(Path(recipe).read_text()) or {}) if recipe and Path(recipe).is_file() else {}
    parser = TrlParser((RunArguments, trainer_config_class(kind), ModelConfig))
    return parser.parse_args_and_config(args=with_precision(list(args), fields if isinstance(fields, dict) else {}))


# ModelConfig fields a registry run cannot honour: the base is a registry entry, loaded our way.
MODEL_FIELDS_WITHOUT_EFFECT = {
    "model_name_or_path": "name the registry base with `base` (import it first: scripts/registry.py import)",
    "model_revision": "import the revision you want as a registry base",
    "dtype": "the dtype follows the hardware (bf16 on a GPU that has it, fp32 on a CPU)",
    "load_in_8bit": "8-bit loading is not supported; use load_in_4bit (QLoRA)",
}


def model_settings(model_args=None):
    """TRL's ModelConfig with this project's defaults (LoRA on every linear layer of the block), after
    refusing the fields a registry run would ignore."""
    from trl import ModelConfig

    model_args = model_args or ModelConfig()
    refuse_fields_without_effect(model_args, MODEL_FIELDS_WITHOUT_EFFECT, "ModelConfig field", "a registry run")
    if model_args.lora_r is None or model_args.lora_r < 1:
        raise RecipeError(f"lora_r is {model_args.lora_r}; the LoRA rank must be a whole number of 1 or more (e.g. 16)")
    if model_args.lora_alpha is None or model_args.lora_alpha <= 0:
        raise RecipeError(f"lora_alpha is {model_args.lora_alpha}; it must be above 0 (often twice lora_r)")
    if not 0 <= model_args.lora_dropout < 1:
        raise RecipeError(f"lora_dropout is {model_args.lora_dropout}; it must be from 0 up to (not including) 1")
    if not model_args.lora_target_modules:
        model_args.lora_target_modules = list(LINEAR)
    return model_args


def quantized(run: RunArguments, model_args) -> bool:
    return run.quantize or model_args.load_in_4bit


def lora_config(model_args, task_type: str, **extra):
    """PEFT's LoraConfig from ModelConfig's fields (DoRA and rsLoRA included)."""
    from peft import LoraConfig

    return LoraConfig(r=model_args.lora_r, lora_alpha=model_args.lora_alpha, lora_dropout=model_args.lora_dropout,
                      target_modules=model_args.lora_target_modules, modules_to_save=model_args.lora_modules_to_save,
                      use_dora=model_args.use_dora, use_rslora=model_args.use_rslora, task_type=task_type, **extra)


def check_some_steps(config) -> None:
    """A run that would train for 0 steps is refused before anything loads (it would publish its
    parent's weights under a new name)."""
    steps, epochs = config.max_steps, config.num_train_epochs
    if steps == 0:  # transformers reads only a negative max_steps as "the epochs decide"; 0 ran one step
        raise RecipeError("max_steps 0 would train nothing; set max_steps to 1 or more, or -1 (the default) to let "
                          "num_train_epochs decide")
    if (steps is None or steps <= 0) and not (epochs and epochs > 0):  # max_steps <= 0: the epochs decide
        raise RecipeError(f"this run would train for 0 steps (max_steps {steps}, num_train_epochs {epochs}); set "
                          "max_steps to 1 or more, or num_train_epochs above 0")


# ---- data -----------------------------------------------------------------------------------
@dataclass
class Splits:
    train: list[dict]
    eval: list[dict]
    info: dict


def load_prompt_splits(run: RunArguments) -> Splits:
    """Prompts for an online RL round (posttrain/rl.py's formats), with held-out prompts."""
    import hashlib

    from posttrain import rl

    rows = rl.read_prompts(run.data)
    rows = rows[: run.max_rows] if run.max_rows else rows
    digest = lambda path: "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
    info = {"dataset": run.data, "dataset_format": "prompts", "dataset_hash": digest(run.data), "rows_skipped": 0}
    if run.eval_data:
        eval_rows = rl.read_prompts(run.eval_data)
        info.update(eval_dataset=run.eval_data, eval_dataset_hash=digest(run.eval_data))
    else:
        random.Random(0).shuffle(rows)
        n_eval = max(1, int(len(rows) * run.eval_fraction))
        rows, eval_rows = rows[n_eval:], rows[:n_eval]
        info.update(eval_dataset=f"{run.data} ({run.eval_fraction:.0%} held out, seed 0)")
    if not rows or not eval_rows:
        raise DataError(f"{run.data}: {len(rows)} training and {len(eval_rows)} held-out prompts; need at least one of each")
    info.update(train_rows=len(rows), eval_rows=len(eval_rows))
    return Splits(rows, eval_rows, info)


def load_splits(run: RunArguments, kind: str) -> Splits:
    data = METHODS[kind].data
    if data == "prompts":
        return load_prompt_splits(run)
    data_kind = "sft" if data == "conversations" else "preference"
    train = read(run.data, format=run.data_format, on_error=run.on_bad_rows, split=run.data_split,
                 kind="preference" if run.data_format == "oasst1" and data_kind != "sft" else None)
    if data == "unpaired" and train.kind == "unpaired":
        data_kind = "unpaired"
    if train.kind != data_kind:
        raise DataError(f"{run.data}: {kind} needs {data_kind} data, but format {train.format!r} gives {train.kind}")
    rows = train.rows[: run.max_rows] if run.max_rows else list(train.rows)
    info = {"dataset": run.data, "dataset_format": train.format, "dataset_hash": train.hash,
            "rows_skipped": len(train.skipped)}
    if run.eval_data:
        held = read(run.eval_data, format=run.data_format, on_error=run.on_bad_rows, split=run.eval_split,
                    kind=data_kind if data_kind != "unpaired" else None)
        eval_rows = held.rows
        info.update(eval_dataset=run.eval_data, eval_dataset_hash=held.hash)
    else:
        random.Random(0).shuffle(rows)
        n_eval = max(1, int(len(rows) * run.eval_fraction))
        rows, eval_rows = rows[n_eval:], rows[:n_eval]
        info.update(eval_dataset=f"{run.data} ({run.eval_fraction:.0%} held out, seed 0)")
    if len(rows) < 1 or len(eval_rows) < 1:
        raise DataError(f"{run.data}: {len(rows)} training and {len(eval_rows)} held-out rows; need at least one of each")
    for skipped in train.skipped[:5]:
        log.warning("skipped %s", skipped)
    if train.skipped:
        log.warning("%d bad rows skipped in %s", len(train.skipped), run.data)
    info.update(train_rows=len(rows), eval_rows=len(eval_rows))
    if run.replay_data:
        replay = replay_rows(run, kind, data_kind, len(rows))
        info.update(replay_data=run.replay_data, replay_ratio=run.replay_ratio, replay_rows=len(replay))
        rows = rows + replay
    return Splits(rows, eval_rows, info)


def replay_rows(run: RunArguments, kind: str, data_kind: str, train_rows: int) -> list[dict]:
    """round(replay_ratio x training rows) rows of the replay data (seed 0; repeated when it has
    fewer), in the run's own format: conversations or plain text for SFT, pairs (or unpaired rows
    for KTO on unpaired data) for preference training."""
    if not 0 < run.replay_ratio <= 10:
        raise RecipeError(f"replay_ratio must be above 0 and at most 10 when replay_data is set, got {run.replay_ratio}")
    replay = read(run.replay_data, on_error=run.on_bad_rows, split=run.data_split)
    allowed = ("sft", "text") if data_kind == "sft" else (data_kind,)
    if replay.kind not in allowed:
        raise DataError(f"{run.replay_data}: {kind} replays {' or '.join(KIND_WORDS[k] for k in allowed)}, "
                        f"but format {replay.format!r} gives {KIND_WORDS.get(replay.kind, replay.kind)}")
    wanted = max(1, round(run.replay_ratio * train_rows))
    rng = random.Random(0)
    pool = list(replay.rows)
    picked = []
    while len(picked) < wanted:
        rng.shuffle(pool)
        picked += pool[: wanted - len(picked)]
    return picked


KIND_WORDS = {"sft": "conversations", "text": "plain text", "preference": "preference pairs", "unpaired": "unpaired rows"}


def tokenized(tokenizer, conversations: list[dict], max_length: int):
    """SFT rows -> a datasets.Dataset of input_ids + labels (prompt tokens masked; a replayed
    plain-text row is trained on every token)."""
    from datasets import Dataset

    examples, dropped = [], 0
    for row in conversations:
        if "text" in row:  # replayed plain text: language modelling, every token trained
            ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"][: max_length - 1] + [tokenizer.eos_token_id]
            examples.append({"input_ids": ids, "labels": list(ids)})
            continue
        try:
            example = build_example(tokenizer, row["messages"], max_length)
        except TemplateError:
            dropped += 1
            continue
        examples.append({"input_ids": example.input_ids, "labels": example.labels})
    if dropped:
        log.warning("%d conversations left no assistant tokens within max_length=%d", dropped, max_length)
    return Dataset.from_list(examples)


def unpaired(pairs: list[dict]) -> list[dict]:
    """Preference pairs -> KTO rows: chosen is desirable, rejected is not."""
    rows = []
    for pair in pairs:
        if "label" in pair:
            rows.append(pair)
            continue
        rows.append({"prompt": pair["prompt"], "completion": pair["chosen"], "label": True})
        rows.append({"prompt": pair["prompt"], "completion": pair["rejected"], "label": False})
    return rows


# ---- model ----------------------------------------------------------------------------------
def prepare_for_qlora(model, gradient_checkpointing: bool, upcast: bool = False):
    """PEFT's prepare_model_for_kbit_training without its fp32 copies unless asked: it casts every
    non-quantized weight (norms, embeddings, lm_head: ~2 GB for Llama-3-8B) to fp32, and fp32
    norms then push fp32 activations through the whole network."""
    from peft import prepare_model_for_kbit_training

    if upcast:
        return prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
    for param in model.parameters():
        param.requires_grad_(False)
    if gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed blocks need a grad-requiring input
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def template_tokens_to_train(model, tokenizer, run: RunArguments) -> list[int]:
    """The template's special tokens whose rows get trained (PEFT trainable_token_indices)."""
    if run.train_template_tokens == "false":
        return []
    ids = templates.template_token_ids(tokenizer)
    if run.train_template_tokens == "true":
        return ids
    if run.train_template_tokens != "auto":
        raise RecipeError(f"train_template_tokens must be auto, true or false, not {run.train_template_tokens!r}")
    return templates.untrained_rows(model.get_input_embeddings().weight, ids)


def load_trainable(base: Entry, parent: Entry | None, run: RunArguments, gradient_checkpointing: bool,
                   tokenizer=None, model_args=None):
    from peft import PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    model_args = model_settings(model_args)
    placement = device_map()  # this rank's own GPU under DDP; none under FSDP / ZeRO-3
    attention = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    if quantized(run, model_args):
        bnb = nf4_config(quant_type=model_args.bnb_4bit_quant_type,
                         double_quant=run.quantize or model_args.use_bnb_nested_quant)
        model = AutoModelForCausalLM.from_pretrained(
            str(base.path), quantization_config=bnb, dtype=compute_dtype(), device_map=placement, **attention)
        model = prepare_for_qlora(model, gradient_checkpointing, run.upcast_non_quantized)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            str(base.path), dtype=compute_dtype(quantized=False), device_map=placement, **attention)
    if run.liger_kernels:
        apply_liger(model)
    if parent is not None:
        model = PeftModel.from_pretrained(model, str(parent.path), is_trainable=True)
        expose_merged_head(model)
        return model
    tokens = template_tokens_to_train(model, tokenizer, run) if tokenizer is not None else []
    trainable_tokens = None
    if tokens:
        embed = module_name(model, model.get_input_embeddings())
        trainable_tokens = {embed: tokens}
        if not model.config.tie_word_embeddings:  # an untied head learns to emit them too
            trainable_tokens[module_name(model, model.get_output_embeddings())] = tokens
        log.info("training the rows of template tokens %s (%s)", tokenizer.convert_ids_to_tokens(tokens),
                 ", ".join(trainable_tokens))
    model = get_peft_model(model, lora_config(model_args, "CAUSAL_LM", trainable_token_indices=trainable_tokens))
    if tokens:
        expose_merged_head(model)
    return model


def apply_liger(model) -> None:
    """Liger's layer kernels on a loaded model (its fused loss stays off: TRL's fused head is ours)."""
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance
    except ImportError as exc:
        raise RegistryError(f"liger_kernels: true needs the liger-kernel package (pip install liger-kernel): {exc}") from None
    _apply_liger_kernel_to_instance(model=model, rope=True, rms_norm=True, swiglu=True,
                                    cross_entropy=False, fused_linear_cross_entropy=False)


def expose_merged_head(model) -> None:
    """TRL's fused LM-head loss reads `lm_head.weight` / `.bias` directly; PEFT's trainable-token
    wrapper has neither. Give it both: the weight with the trained rows copied in (differentiable
    in those rows, so the fused loss trains them as the plain forward would)."""
    from peft.utils.other import TrainableTokensWrapper

    head = model.get_base_model().get_output_embeddings()
    if not isinstance(head, TrainableTokensWrapper):
        return
    layer = head.token_adapter
    original = layer.base_layer
    head.__class__ = type("FusedHeadTrainableTokens", (TrainableTokensWrapper,), {
        "weight": property(lambda self: layer.get_merged_weights(layer.active_adapters)),
        "bias": property(lambda self: getattr(original, "bias", None)),
    })


def module_name(model, module) -> str:
    """The short name PEFT matches (`embed_tokens`, `lm_head`)."""
    return next(name for name, m in model.named_modules() if m is module).rsplit(".", 1)[-1]


def trainable_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def hardware() -> str:
    if torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


# ---- the run --------------------------------------------------------------------------------
def resolve_entries(run: RunArguments) -> tuple[Registry, Entry, Entry | None]:
    registry = Registry(run.registry)
    if run.name in registry:
        raise RegistryError(f"entry {run.name!r} already exists in {registry.root}; pick another --name or remove it")
    if run.base in registry and registry.get(run.base).is_adapter:
        adapter = registry.get(run.base)
        raise RegistryError(f"--base {run.base!r} is an adapter (method {adapter.method!r}, on base {adapter.base!r}); "
                            f"train on top of it with --base {adapter.base} --parent {run.base}")
    base = registry.ensure_base(run.base)
    parent = registry.get(run.parent) if run.parent else None
    if parent is not None and (not parent.is_adapter or parent.base != base.name):
        raise RegistryError(f"parent {parent.name!r} is not an adapter on base {base.name!r} (it runs on {parent.base!r})")
    return registry, base, parent


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest checkpoint that was fully written. The Trainer writes trainer_state.json last,
    so a run killed mid-save leaves a folder without it (or with it half-written): skip those."""
    if not output_dir.is_dir():
        return None
    numbered = [(int(p.name.split("-")[1]), p) for p in output_dir.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]
    for _, folder in sorted(numbered, reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
            return str(folder)
        except (OSError, ValueError):
            log.warning("skipping incomplete checkpoint %s", folder)
    return None


def default_output_dir(config, name: str) -> None:
    if not config.output_dir or config.output_dir == "trainer_output":
        config.output_dir = str(Path("runs") / name)


def run(kind: str, run_args: RunArguments, config, model_args=None) -> Entry:
    """Train and publish. Returns the new registry entry. `model_args`: TRL's ModelConfig (LoRA and
    quantization fields; default: its defaults, LoRA on every linear layer). What differs per
    method comes from its record in posttrain.methods."""
    how = method(kind)
    model_args = model_settings(model_args)
    check_before_loading(how, run_args, config, model_args)
    registry, base, parent = resolve_entries(run_args)
    if how.from_base and parent is not None:
        raise RegistryError(f"a {kind} run starts from the base (a fresh score head); drop --parent")
    default_output_dir(config, run_args.name)
    splits = load_splits(run_args, kind)
    tokenizer = run_tokenizer(registry, base, parent, run_args)
    fingerprint = check_fingerprint(Path(config.output_dir), run_args, config, splits.info, model_args)
    if how.from_base:
        model, _ = load_reward_model(base.path, lora=lora_config(model_args, "SEQ_CLS"))  # + trained score head
    else:
        model = load_trainable(base, parent, run_args, config.gradient_checkpointing, tokenizer, model_args)
    trainable, total = trainable_parameters(model)
    log.info("trainable parameters: %d of %d (%.3f%%)", trainable, total, 100 * trainable / total)
    started = time.time()
    measure, trainer = build(kind, model, tokenizer, splits, config, run_args, registry)
    measure = with_general_perplexity(measure, kind, tokenizer, run_args)
    if run_args.loraplus_lr_ratio is not None:
        trainer.optimizer = loraplus_optimizer(trainer, run_args.loraplus_lr_ratio)
    # Under DDP / FSDP / ZeRO every rank trains; only the main process measures, writes and publishes.
    main = trainer.accelerator.is_main_process
    parent_metrics = measure(model) if main else {}  # before any step: the model is still its parent
    last = last_complete_checkpoint(Path(config.output_dir))
    if last:
        log.info("resuming from %s", last)
    if main:
        write_fingerprint(Path(config.output_dir), fingerprint)
    train_output = trainer.train(resume_from_checkpoint=last)
    eval_metrics = trainer.evaluate()
    if not main:
        trainer.accelerator.wait_for_everyone()  # the main process publishes; then the entry exists
        return registry.get(run_args.name)
    metrics = run_metrics(trainer, train_output, eval_metrics, measure(model), parent_metrics)
    eot = templates.end_of_turn_id(tokenizer) if how.generates else None
    card = {**card_of(how, run_args, config, model_args, registry, base, parent, tokenizer, splits, eot),
            "fingerprint": fingerprint, "metrics": metrics, "trainable_parameters": trainable,
            "trainable_share": round(trainable / total, 6), "peak_memory_mb": round(peak_memory_mb(), 1),
            "world_size": trainer.accelerator.num_processes,
            "distributed": str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1], "hardware": hardware(),
            "duration_s": round(time.time() - started, 1), "steps": trainer.state.global_step}

    def write(tmp: Path) -> None:
        save_adapter(trainer.accelerator.unwrap_model(model), tokenizer, tmp, base, eot)
        (tmp / TRAINING_LOG).write_text(json.dumps(trainer.state.log_history, indent=1))  # the Models tab's curves

    entry = registry.publish(run_args.name, write, card)
    log.info("published %s: %s", entry.name, metrics)
    trainer.accelerator.wait_for_everyone()
    return entry


def check_before_loading(how: Method, run_args: RunArguments, config, model_args) -> None:
    """Every refusal that needs no model, before the registry's entries or any weights load: the
    method's refused fields, a 0-step run, a 4-bit reward model, an RL round's rewards."""
    how.refuse(config)
    check_some_steps(config)
    if how.from_base and quantized(run_args, model_args):
        raise RecipeError(f"a {how.kind} run loads its base unquantized (a fresh score head); drop quantize / load_in_4bit")
    if how.online and getattr(config, "use_vllm", False) and quantized(run_args, model_args):
        raise RecipeError("use_vllm with a 4-bit base: TRL syncs vLLM by merging the LoRA weights into the base, which "
                          "on an NF4 base would round them into 4-bit; train the round on the full-precision base "
                          "(quantize: false), where only the adapter is saved and the merge is undone after each sync")
    if how.online:
        from posttrain import rl

        rl.check(rl.parse_specs(run_args.reward), config.reward_weights, run_args.gold, Registry(run_args.registry))


def run_metrics(trainer, train_output, eval_metrics: dict, measured: dict, parent_metrics: dict) -> dict:
    """The card's metrics: the training loss (first and last logged), TRL's evaluation, the
    method's held-out measure after training and on the parent before it."""
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = {
        # The last logged training loss: a resumed run's own average covers only its new steps.
        "train_loss": round(losses[-1] if losses else train_output.training_loss, 4),
        **({"train_loss_first": round(losses[0], 4)} if losses else {}),
        **{k: round(v, 4) for k, v in eval_metrics.items() if isinstance(v, (int, float)) and not k.endswith(("_runtime", "per_second"))},
        **{k: round(v, 4) for k, v in measured.items()},
        **{f"parent_{k}": round(v, 4) for k, v in parent_metrics.items()},
    }
    if "eval_rewards/accuracies" in eval_metrics:
        metrics["reward_accuracy"] = round(eval_metrics["eval_rewards/accuracies"], 4)
    return metrics


def card_of(how: Method, run_args: RunArguments, config, model_args, registry, base: Entry, parent: Entry | None,
            tokenizer, splits: Splits, eot: int | None) -> dict:
    """What the run was: method, lineage, recipe, template, data and configuration."""
    return {
        "method": how.method_name(config, quantized(run_args, model_args)),
        "base": base.name, "base_model": base.card.get("base_model"), "base_hash": base.card.get("base_hash"),
        **({"license": base.card["license"]} if base.card.get("license") else {}),
        "parent": parent.name if parent else base.name,
        "recipe": run_args.recipe,
        "chat_template": run_args.chat_template or (parent.card.get("chat_template") if parent else None) or "tokenizer",
        **({"end_of_turn_token": tokenizer.convert_ids_to_tokens(eot), "end_of_turn_id": eot} if eot is not None else {}),
        "eval_rows_too_long": 0 if how.online else metrics_too_long(how, tokenizer, splits.eval, config.max_length or 1024),
        **(rl_card(run_args, config, registry) if how.online else {}),
        "config": run_config(run_args, config, model_args),
        "precision": precision_of(config),
        **splits.info,
    }


def rl_card(run_args: RunArguments, config, registry) -> dict:
    """What an online RL round optimised: the rewards (each registry reward model's hash), their
    weights, the gold measure, the group size and the KL coefficient."""
    from posttrain import rl
    from posttrain.registry import folder_hash

    specs = rl.parse_specs(run_args.reward)
    versions = {}
    for spec in specs + ([run_args.gold] if run_args.gold else []):
        if spec.startswith("reward_model:"):
            entry = registry.get(spec.split(":", 1)[1])
            versions[spec] = folder_hash(entry.path, ("adapter_config.json", "*.safetensors"))
    return {"reward": specs, "reward_weights": list(config.reward_weights or []), "gold": run_args.gold,
            "reward_versions": versions, "group_size": config.num_generations, "kl_coefficient": config.beta}


def with_general_perplexity(measure, kind: str, tokenizer, run: RunArguments):
    """The held-out measure plus the general-text perplexity (forgetting), for generating runs."""
    from posttrain.data import read_jsonl

    path = Path(run.general_text or "")
    if not path.is_file() and not path.is_absolute():  # the project's own file, from any folder
        path = Path(__file__).resolve().parents[1] / path
    if not METHODS[kind].generates or not run.general_text or not path.is_file():
        return measure
    texts = [r["text"] for r in read_jsonl(path)]
    return lambda m: {**measure(m), "general_perplexity": text_perplexity(m, tokenizer, texts)}


def loraplus_optimizer(trainer, ratio: float):
    """The trainer's own optimizer class and settings, with LoRA+ parameter groups: every lora_B
    (and 1-d adapter parameter) at `ratio` times the learning rate of lora_A."""
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer

    if ratio < 1:
        raise RecipeError(f"loraplus_lr_ratio is B's learning rate over A's and should be at least 1, got {ratio}")
    if trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled:
        raise RecipeError("loraplus_lr_ratio builds the optimizer before DeepSpeed / FSDP wrap the model; use DDP or one GPU")
    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(trainer.args, trainer.model)
    kwargs.pop("lr", None)
    return create_loraplus_optimizer(trainer.model, optimizer_cls, lr=trainer.args.learning_rate, loraplus_lr_ratio=ratio,
                                     loraplus_weight_decay=trainer.args.weight_decay, **kwargs)


def run_tokenizer(registry: Registry, base: Entry, parent: Entry | None, run_args: RunArguments):
    """The base's tokenizer with the run's chat template: the recipe's, else the parent adapter's
    (saved with it), else the tokenizer's own; a base with none is refused here, naming the field."""
    tokenizer = load_tokenizer(registry.tokenizer_path(parent or base))
    templates.apply(tokenizer, run_args.chat_template)
    return tokenizer


def save_adapter(model, tokenizer, folder: Path, base: Entry, end_of_turn: int | None) -> None:
    """A plain PEFT folder that also carries what a user of it needs: the tokenizer with the chat
    template it was trained on, a generation config that stops at the end of turn, and the base's
    Hub id as base_model_name_or_path (our registry path would mean nothing elsewhere)."""
    from transformers import GenerationConfig

    model.save_pretrained(folder, selected_adapters=["default"])
    from posttrain.models import GEMMA_NOTICE

    if (base.path / GEMMA_NOTICE).is_file():  # a base whose terms travel with everything made from it
        shutil.copy(base.path / GEMMA_NOTICE, folder / GEMMA_NOTICE)
    config_path = folder / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text())
    adapter_config["base_model_name_or_path"] = base.card.get("base_model") or base.name
    config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True))
    tokenizer.save_pretrained(folder)
    if end_of_turn is not None:
        stops = sorted({end_of_turn, tokenizer.eos_token_id} - {None})
        GenerationConfig(eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id).save_pretrained(folder)


def metrics_too_long(how: Method, tokenizer, rows: list[dict], max_length: int) -> int:
    from posttrain.heldout import too_long

    if how.data == "conversations":
        return too_long(tokenizer, rows, "sft", max_length)
    return too_long(tokenizer, [r for r in rows if "chosen" in r], "pairs", max_length)


FINGERPRINT = "fingerprint.json"


# TRL config fields that cannot change what a run learns: where and how often it logs, saves,
# evaluates and pushes, how long it trains (a longer run is a resume), and run-time plumbing. Every
# other field, of the recipe, of TRL's config and of its ModelConfig, is in the fingerprint.
NOT_FINGERPRINTED = frozenset({
    "output_dir", "overwrite_output_dir", "logging_dir", "logging_strategy", "logging_steps", "logging_first_step",
    "logging_nan_inf_filter", "log_level", "log_level_replica", "log_on_each_node", "report_to", "run_name",
    "disable_tqdm", "project", "trackio_space_id", "trackio_bucket_id", "save_strategy", "save_steps",
    "save_total_limit", "save_safetensors", "save_on_each_node", "save_only_model", "eval_strategy", "eval_steps",
    "eval_delay", "eval_on_start", "per_device_eval_batch_size", "eval_accumulation_steps", "eval_do_concat_batches",
    "prediction_loss_only", "include_for_metrics", "include_num_input_tokens_seen", "batch_eval_metrics",
    "max_steps", "num_train_epochs", "resume_from_checkpoint", "ignore_data_skip", "restore_callback_states_from_checkpoint",
    "push_to_hub", "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push", "hub_revision",
    "dataloader_num_workers", "dataloader_prefetch_factor", "dataloader_persistent_workers", "dataloader_pin_memory",
    "local_rank", "ddp_timeout", "skip_memory_metrics", "log_completions", "num_completions_to_print",
    "activation_offloading",
})
RUN_NOT_FINGERPRINTED = frozenset({"registry", "recipe"})  # where the registry lives; the recipe file's name


def fingerprint_fields(run_args: RunArguments, config, info: dict, model_args=None) -> dict:
    """What decides a run's result: every field of the recipe's RunArguments, TRL's config and its
    ModelConfig but the named few above, and the data's hashes."""
    from dataclasses import fields

    trl_fields = {f.name: getattr(config, f.name) for f in fields(config)
                  if f.name not in NOT_FINGERPRINTED and not f.name.startswith("_")}
    return {"run": {k: v for k, v in asdict(run_args).items() if k not in RUN_NOT_FINGERPRINTED},
            "trl": trl_fields, "model": asdict(model_settings(model_args)),
            "dataset_hash": info.get("dataset_hash"), "eval_dataset_hash": info.get("eval_dataset_hash")}


def fingerprint_of(run_args: RunArguments, config, info: dict, model_args=None) -> str:
    """sha256 of `fingerprint_fields`."""
    import hashlib

    fields = fingerprint_fields(run_args, config, info, model_args)
    return "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint_v1(run_args: RunArguments, config, info: dict, model_args=None) -> str:
    """The fingerprint before 2026-12-01 (an allow-list of fields): checkpoints a previous version
    left are still resumed when their run is unchanged by that measure."""
    import hashlib

    chosen = {k: v for k, v in run_config(run_args, config, model_args).items() if k not in ("max_steps", "num_train_epochs")}
    fields = {**chosen, **{k: v for k, v in asdict(run_args).items() if k not in ("registry", "recipe")},
              "dataset_hash": info.get("dataset_hash"), "eval_dataset_hash": info.get("eval_dataset_hash")}
    return "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()


FINGERPRINT_VERSION = 2


def check_fingerprint(output_dir: Path, run_args: RunArguments, config, info: dict, model_args=None) -> str:
    """Refuse to resume checkpoints that another recipe or other data produced."""
    fingerprint = fingerprint_of(run_args, config, info, model_args)
    path = output_dir / FINGERPRINT
    if last_complete_checkpoint(output_dir) and path.is_file():
        stored = json.loads(path.read_text())
        mine = fingerprint if stored.get("version") == FINGERPRINT_VERSION else fingerprint_v1(run_args, config, info, model_args)
        if stored.get("fingerprint") != mine:
            raise RegistryError(
                f"{output_dir} holds checkpoints of a run with another recipe or other data ({stored.get('fingerprint')} "
                f"!= {mine}); to start fresh remove it (rm -r {output_dir}) or pass --output_dir NEW_FOLDER")
    return fingerprint


def write_fingerprint(output_dir: Path, fingerprint: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / FINGERPRINT).write_text(json.dumps({"fingerprint": fingerprint, "version": FINGERPRINT_VERSION}) + "\n")


def build(kind: str, model, tokenizer, splits: Splits, config, run_args: RunArguments | None = None, registry=None):
    """The method's TRL trainer over its data, and the held-out measure that goes into the card."""
    how = method(kind)  # its refusals ran before anything loaded (check_before_loading)
    max_length = getattr(config, "max_length", None) or 1024  # online RL configs bound prompt and completion instead
    train, held = datasets(how, tokenizer, splits, max_length)
    extra = {}
    if how.online:
        from posttrain import rl

        functions, weights = rl.rewards(rl.parse_specs(run_args.reward), config.reward_weights, run_args.gold,
                                        registry, device=getattr(model, "device", None))
        config.reward_weights = weights  # the recipe's, plus the gold measure's 0
        extra["reward_funcs"] = functions
    trainer = how.trainer_class()(model=model, args=config, processing_class=tokenizer, train_dataset=train,
                                  eval_dataset=held, **extra)
    if "length" in getattr(train, "column_names", ()):  # keep it past the Trainer's unused-column removal: the sampler reads it
        trainer._set_signature_columns_if_needed()
        trainer._signature_columns = [*trainer._signature_columns, "length"]
    return held_out_measure(how, tokenizer, splits, max_length, trainer), trainer


def datasets(how: Method, tokenizer, splits: Splits, max_length: int):
    """The method's training and held-out datasets, in the shape its TRL trainer takes."""
    from datasets import Dataset

    if how.data == "conversations":
        return tokenized(tokenizer, splits.train, max_length), tokenized(tokenizer, splits.eval, max_length)
    if how.data == "unpaired":
        return with_lengths(unpaired(splits.train), tokenizer), with_lengths(unpaired(splits.eval), tokenizer)
    if how.data == "pairs":
        return with_lengths(splits.train, tokenizer), with_lengths(splits.eval, tokenizer)
    return Dataset.from_list(splits.train), Dataset.from_list(splits.eval)


def with_lengths(rows: list[dict], tokenizer):
    """Rows plus a `length` column (tokens of the prompt and its longest answer), which the
    Trainer's `group_by_length` sampling reads to batch rows of similar length: pairs cannot be
    packed (each side is scored whole), so this is how they avoid computing on padding."""
    from datasets import Dataset

    text = lambda value: value if isinstance(value, str) else " ".join(str(m.get("content", "")) for m in value or [])
    lengths = [len(tokenizer(text(r.get("prompt")) + " " + max((text(r.get(k)) for k in ("chosen", "rejected", "completion")),
                                                                key=len), add_special_tokens=False)["input_ids"])
               for r in rows]
    return Dataset.from_list(rows).add_column("length", lengths) if rows else Dataset.from_list(rows)


def held_out_measure(how: Method, tokenizer, splits: Splits, max_length: int, trainer):
    """model -> {measure: value} for the card (posttrain.methods.MEASURES)."""
    pairs = [p for p in splits.eval if "chosen" in p]  # KTO's held-out rows may be unpaired
    if how.measure == "perplexity":
        conversations = [r["messages"] for r in splits.eval]
        return lambda m: {"eval_perplexity": perplexity(m, tokenizer, conversations, max_length)}
    if how.measure == "pairwise_accuracy":
        return lambda m: {"preference_accuracy": pairwise_accuracy(m, tokenizer, pairs, max_length)}
    if how.measure == "rollouts":  # the trainer's own rollouts on the held-out prompts: every reward (gold too), length
        return lambda m: {k.removeprefix("eval_"): v for k, v in trainer.evaluate().items()
                          if k.startswith(("eval_reward", "eval_completions/mean_length"))}
    return lambda m: {"preference_accuracy": preference_accuracy(m, tokenizer, pairs, max_length)} if pairs else {}


def run_config(run_args: RunArguments, config, model_args=None) -> dict:
    keys = ("learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
            "gradient_accumulation_steps", "max_length", "packing", "padding_free", "gradient_checkpointing",
            "optim", "lr_scheduler_type", "seed", "beta", "loss_type", "center_rewards_coefficient", "disable_dropout",
            "simpo_gamma", "cpo_alpha")
    chosen = {k: getattr(config, k) for k in keys if hasattr(config, k)}
    chosen = {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in chosen.items()}
    model_args = model_settings(model_args)
    adapter = {k: v for k, v in asdict(model_args).items()
               if k.startswith(("lora_", "use_dora", "use_rslora", "load_in_4bit", "bnb_", "use_bnb")) and v is not None}
    return {**chosen, **adapter, "quantize": quantized(run_args, model_args),
            **({"loraplus_lr_ratio": run_args.loraplus_lr_ratio} if run_args.loraplus_lr_ratio is not None else {})}

