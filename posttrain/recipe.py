"""What a training run is asked for: a YAML recipe and its overrides parsed into three dataclasses,
as TRL's TrlParser reads them: the project's RunArguments (registry entries, data, replay, QLoRA
in one word, ...), the method's TRL config (SFTConfig, DPOConfig, ...) and TRL's ModelConfig
(the LoRA fields), with the precision filled from the hardware (posttrain.precision)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from posttrain.errors import RecipeError
from posttrain.methods import method, refuse_fields_without_effect
from posttrain.models import DEFAULT_BASE_NAME
from posttrain.precision import with_precision
from posttrain.registry import default_registry_dir


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


def trainer_config_class(method_name: str):
    """TRL's config class of a training method (posttrain.methods)."""
    return method(method_name).config_class()


def parse_run(method_name: str, args: list[str]):
    """(RunArguments, TRL's config, TRL's ModelConfig) from `--config RECIPE` and overrides, as
    TrlParser reads them, with the precision filled from the hardware when neither set it
    (posttrain.precision: bf16 autocast where it is native, fp32 elsewhere)."""
    import yaml
    from trl import ModelConfig, TrlParser

    recipe = next((args[i + 1] for i, a in enumerate(args[:-1]) if a == "--config"), None) or \
        next((a.split("=", 1)[1] for a in args if a.startswith("--config=")), None)
    fields = (yaml.safe_load(Path(recipe).read_text()) or {}) if recipe and Path(recipe).is_file() else {}
    parser = TrlParser((RunArguments, trainer_config_class(method_name), ModelConfig))
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
        model_args = replace(model_args, lora_target_modules=list(LINEAR))
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
