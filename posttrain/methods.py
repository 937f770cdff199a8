"""The training methods, one record each: `train.py KIND` reads everything it does differently
per method from here (its TRL config and trainer, the data it reads and trains on, the held-out
measure on its card, the card's method name, the recipe fields it refuses). Adding a method is
adding a record."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Callable

from posttrain.errors import RecipeError

# What a method reads (posttrain.data kinds) and what its trainer is given.
DATA = {
    "conversations": "SFT conversations (messages), tokenized here with the prompt masked",
    "pairs": "preference pairs (prompt / chosen / rejected)",
    "unpaired": "KTO rows (prompt / completion / label): preference pairs are split into two",
    "prompts": "prompts only: the trainer generates and the recipe's rewards score (posttrain/rl.py)",
}
# The held-out measure each method puts on its card (posttrain.heldout, posttrain.reward).
MEASURES = {
    "perplexity": "eval_perplexity: held-out conversations, assistant tokens only",
    "preference_accuracy": "preference_accuracy: the policy's implicit reward ranks chosen over rejected",
    "pairwise_accuracy": "preference_accuracy: the reward model scores chosen above rejected",
    "rollouts": "the trainer's own rollouts on held-out prompts: every reward (gold too) and the length",
}
# RewardConfig options that act only while TRL builds the model or renders the chat template itself;
# here the model (LoRA + score head over a registry base) and the template are ours.
REWARD_REFUSED = {
    "model_init_kwargs": "the reward model is built from the registry base; use the recipe's quantize / lora_* fields",
    "chat_template_path": "set the chat template with the recipe's `chat_template` field",
    "trust_remote_code": "registry bases load without remote code",
}


def _simpo_loss(config) -> None:
    """SimPO is TRL's CPO with loss_type simpo; another loss under that name would mislabel the entry."""
    if config.loss_type != "simpo":
        raise RecipeError(f"train.py simpo runs TRL's CPO with loss_type simpo, got loss_type {config.loss_type!r}; "
                          "drop the field (or use cpo_alpha for CPO-SimPO)")


@dataclass(frozen=True)
class Method:
    name: str  # train.py's first argument
    config: str  # TRL's config class, "module:Class" (imported when used)
    trainer: str  # TRL's trainer class
    data: str  # one of DATA
    measure: str  # one of MEASURES
    card_method: Callable[[object, bool], str] | None = None  # (config, quantized) -> the card's method; None: its name
    refused: dict = field(default_factory=dict)  # config fields that would do nothing here -> what to use instead
    check: Callable[[object], None] | None = None  # more refusals of the config, before anything loads
    from_base: bool = False  # starts from the base with a fresh head (no --parent, no 4-bit)
    generates: bool = True  # a policy that writes text (every method but the reward model)
    online: bool = False  # generates from prompts while it trains (RL)

    def __post_init__(self):
        if self.data not in DATA or self.measure not in MEASURES:
            raise ValueError(f"method {self.name}: data {self.data!r} must be one of {list(DATA)}, measure "
                             f"{self.measure!r} one of {list(MEASURES)}")

    def config_class(self):
        return _load(self.config)

    def trainer_class(self):
        return _load(self.trainer)

    def card_name(self, config, quantized: bool) -> str:
        return self.card_method(config, quantized) if self.card_method else self.name

    def refuse(self, config) -> None:
        """A RecipeError for the first refused field set away from its default, or a failed check."""
        refuse_fields_without_effect(config, self.refused, f"{type(config).__name__} option", f"a registry {self.name} run")
        if self.check:
            self.check(config)


def refuse_fields_without_effect(config, fields: dict[str, str], what: str, where: str) -> None:
    """A RecipeError for the first of `fields` (name -> what to use instead) set away from its
    dataclass default: a recipe field that would silently do nothing is refused."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(type(config))}
    for name, instead in fields.items():
        if getattr(config, name, None) != defaults.get(name):
            raise RecipeError(f"{what} {name} has no effect on {where}: {instead}")


def _load(path: str):
    module, name = path.split(":")
    return getattr(import_module(module), name)


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("sft", "trl:SFTConfig", "trl:SFTTrainer", "conversations", "perplexity",
           card_method=lambda config, quantized: "qlora" if quantized else "sft"),
    Method("dpo", "trl:DPOConfig", "trl:DPOTrainer", "pairs", "preference_accuracy",
           card_method=lambda config, quantized: "ipo" if "ipo" in list(config.loss_type) else "dpo"),
    Method("kto", "trl:KTOConfig", "trl:KTOTrainer", "unpaired", "preference_accuracy"),
    # TRL 1.x keeps ORPO and CPO (SimPO's trainer) in trl.experimental; both are reference-free.
    Method("orpo", "trl.experimental.orpo:ORPOConfig", "trl.experimental.orpo:ORPOTrainer", "pairs", "preference_accuracy"),
    Method("simpo", "trl.experimental.cpo:CPOConfig", "trl.experimental.cpo:CPOTrainer", "pairs", "preference_accuracy",
           check=_simpo_loss),
    # TRL's RewardTrainer: its loss is the Bradley-Terry loss reward.bradley_terry_loss writes out.
    Method("reward", "trl:RewardConfig", "trl:RewardTrainer", "pairs", "pairwise_accuracy", refused=REWARD_REFUSED,
           from_base=True, generates=False),
    Method("grpo", "trl:GRPOConfig", "trl:GRPOTrainer", "prompts", "rollouts", online=True),
    Method("rloo", "trl:RLOOConfig", "trl:RLOOTrainer", "prompts", "rollouts", online=True),
)}
METHOD_NAMES = tuple(METHODS)
RL_METHOD_NAMES = tuple(k for k, m in METHODS.items() if m.online)


def method(name: str) -> Method:
    if name not in METHODS:
        raise RecipeError(f"unknown training method {name!r}; use one of {METHOD_NAMES}")
    return METHODS[name]
