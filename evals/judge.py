"""Automatic pairwise judges (MT-Bench-lite): our reward model, or any OpenAI-compatible chat
endpoint. Every pair is judged in both orders to cancel position bias; when the two orders
disagree the verdict is a tie. Verdicts go into the arena store as the judge's votes, so human
and judge agreement can be compared. Never trains and never generates answers itself."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable

from evals.store import Store
from evals.vocab import SIDES, other_side
from posttrain.chat_api import ChatClient
from posttrain.errors import SettingsError

# A judge's verdict is a choice in evals.vocab's words: the answer shown on the "left" (first in
# its prompt), the one on the "right" (second), or "tie".
Verdict = str

JUDGE_PROMPT = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants "
    "to the user question below. Choose the assistant that follows the instructions and answers the question "
    "better, considering helpfulness, relevance, accuracy and level of detail. Do not let the order of the "
    "responses, their length, or the assistants' names influence you. Output your final verdict strictly as "
    "\"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is better, and \"[[C]]\" for a tie.\n\n"
    "[User Question]\n{question}\n\n[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]"
    "\n\n[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)


def both_orders(judge: Callable[[str, str, str], Verdict], prompt: str, left: str, right: str) -> Verdict:
    """The choice between `left` and `right` judged in both orders: a side wins only if it wins
    when shown first AND when shown second; anything else is a tie."""
    as_shown, swapped = judge(prompt, left, right), judge(prompt, right, left)
    return as_shown if as_shown in SIDES and swapped in SIDES and as_shown == other_side(swapped) else "tie"


@dataclass
class RewardJudge:
    """Our trained reward model as a judge: the higher-scored answer wins."""

    scorer: object  # posttrain.reward.RewardScorer
    name: str = "reward-model"

    def __call__(self, prompt: str, left: str, right: str) -> Verdict:
        score_left, score_right = self.scorer.score(prompt, [left, right])
        return "left" if score_left > score_right else "right" if score_right > score_left else "tie"


@dataclass
class OpenAIJudge:
    """Any OpenAI-compatible /chat/completions endpoint, with retries and backoff."""

    base_url: str
    model: str
    api_key: str = ""
    retries: int = 4
    timeout: float = 60.0

    @property
    def name(self) -> str:
        return f"openai:{self.model}"

    @classmethod
    def from_env(cls) -> "OpenAIJudge":
        missing = [k for k in ("JUDGE_BASE_URL", "JUDGE_MODEL") if not os.environ.get(k)]
        if missing:
            raise SettingsError(f"the OpenAI-compatible judge needs {', '.join(missing)} in the environment")
        return cls(os.environ["JUDGE_BASE_URL"].rstrip("/"), os.environ["JUDGE_MODEL"], os.environ.get("JUDGE_API_KEY", ""))

    def __call__(self, prompt: str, left: str, right: str) -> Verdict:
        body = {"model": self.model, "temperature": 0, "messages": [
            {"role": "user", "content": JUDGE_PROMPT.format(question=prompt, answer_a=left, answer_b=right)}]}
        text = ChatClient(self.base_url, self.api_key, retries=self.retries, timeout=self.timeout).complete(body)["text"]
        match = re.findall(r"\[\[([ABC])\]\]", text)
        return {"A": "left", "B": "right"}.get(match[-1] if match else "C", "tie")  # MT-Bench's A is the first shown


def judge_campaign(store: Store, campaign: str, judge, progress: Callable[[int, int], None] | None = None) -> int:
    """Judge every battle of a ready campaign once (resumable); returns the number of new votes."""
    rater = store.rater(campaign, f"judge:{judge.name}", kind="judge")
    done, total = store.progress(rater)
    new = 0
    while (assignment := store.next_assignment(rater)) is not None:
        store.vote(rater, assignment.battle_id, both_orders(judge, assignment.prompt, assignment.left, assignment.right))
        new += 1
        if progress:
            progress(done + new, total)
    return new
