"""A run's model: the base (NF4 + double quantization for QLoRA), the parent adapter or a fresh
LoRA, the template's untrained special tokens, Liger's kernels; and the adapter folder it
publishes (weights, tokenizer, chat template, generation config)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from posttrain import templates
from posttrain.errors import RecipeError
from posttrain.models import compute_dtype, device_map, load_tokenizer, nf4_config
from posttrain.recipe import RunArguments, lora_config, model_settings, quantized
from posttrain.registry import Entry, Registry, RegistryError

log = logging.getLogger(__name__)


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
