"""Automatic pairwise judges (MT-Bench-lite): our reward model, or any OpenAI-compatible chat
endpoint. Every pair is judged in both orders to cancel position bias; when the two orders
disagree the verdict is a tie. Verdicts go into the arena store as the judge's votes, so human
and judge agreement can be compared. Never trains and never generates answers itself."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Callable

from blindarena import operations as arena
from blindarena.store import Store
from blindarena.vocab import SIDES, conversation, other_side
from posttrain.chat_api import ChatClient
from posttrain.errors import SettingsError

# A judge's verdict is a choice in blindarena.vocab's words: the answer shown on the "left" (first in
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


MULTI_TURN_SYSTEM = (  # MT-Bench's pair-v2-multi-turn, for conversations of any number of turns
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI assistants to the "
    "user questions. You should choose the assistant that follows the user's instructions and answers the user's "
    "questions better. Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, "
    "creativity, and level of detail of their responses. You should focus on who provides a better answer to the last "
    "user question. Begin your evaluation by comparing the responses of the two assistants and provide a short "
    "explanation. Avoid any position biases and ensure that the order in which the responses were presented does not "
    "influence your decision. Do not allow the length of the responses to influence your evaluation. Do not favor "
    "certain names of the assistants. Be as objective as possible. After providing your explanation, output your final "
    "verdict by strictly following this format: \"[[A]]\" if assistant A is better, \"[[B]]\" if assistant B is "
    "better, and \"[[C]]\" for a tie.")


def transcript(label: str, turns, answers) -> str:
    """One assistant's side of a conversation in MT-Bench's pairwise multi-turn layout."""
    body = "".join(f"### User:\n{user}\n\n### Assistant {label}:\n{answer}\n\n" for user, answer in zip(turns, answers))
    return (f"<|The Start of Assistant {label}'s Conversation with User|>\n\n{body}"
            f"<|The End of Assistant {label}'s Conversation with User|>")


def both_orders(judge: Callable[[str, str, str], Verdict], prompt: str, left: str, right: str) -> Verdict:
    """The choice between `left` and `right` judged in both orders: a side wins only if it wins
    when shown first AND when shown second; anything else is a tie."""
    return judged_both_orders(judge, prompt, left, right)[0]


def judged_both_orders(judge, prompt, left: str, right: str) -> tuple[Verdict, dict]:
    """(the both-orders verdict, {"as_shown": the verdict with `left` first, "swapped": the verdict
    with `right` first, in the swapped display's own left/right words}) for the judge's audit."""
    as_shown, swapped = judge(prompt, left, right), judge(prompt, right, left)
    verdict = as_shown if as_shown in SIDES and swapped in SIDES and as_shown == other_side(swapped) else "tie"
    return verdict, {"as_shown": as_shown, "swapped": swapped}


@dataclass
class RewardJudge:
    """Our trained reward model as a judge: the higher-scored answer wins. A reward scores each
    answer on its own, so the swapped order of a pair reads its two scores back instead of running
    the model again (half the forward passes of a both-orders evaluation)."""

    scorer: object  # posttrain.reward.RewardScorer
    name: str = "reward-model"
    _scores: dict = field(default_factory=dict, init=False, repr=False)

    def __call__(self, prompt, left, right) -> Verdict:
        """`prompt` a user text and `left` / `right` answers, or, for a conversation, the user turns
        and each side's answers to them (each side is scored on its own whole conversation)."""
        if isinstance(prompt, (list, tuple)):
            scores = [self._score(conversation(prompt, side)[:-1], [side[-1]])[0] for side in (left, right)]
        else:
            scores = self._score(prompt, [left, right])
        score_left, score_right = scores
        return "left" if score_left > score_right else "right" if score_right > score_left else "tie"

    def _score(self, prompt, replies: list[str]) -> list[float]:
        """The scorer's score of each reply to `prompt` (a text or a message list), each once."""
        context = json.dumps(prompt, sort_keys=True, ensure_ascii=False)
        missing = [r for r in dict.fromkeys(replies) if (context, r) not in self._scores]
        if missing:
            self._scores.update({(context, r): s for r, s in zip(missing, self.scorer.score(prompt, missing))})
        return [self._scores[(context, r)] for r in replies]


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

    def __call__(self, prompt, left, right) -> Verdict:
        if isinstance(prompt, (list, tuple)):  # a conversation: MT-Bench's multi-turn pairwise prompt
            body = {"model": self.model, "temperature": 0, "messages": [
                {"role": "system", "content": MULTI_TURN_SYSTEM},
                {"role": "user", "content": transcript("A", prompt, left) + "\n\n\n" + transcript("B", prompt, right)}]}
        else:
            body = {"model": self.model, "temperature": 0, "messages": [
                {"role": "user", "content": JUDGE_PROMPT.format(question=prompt, answer_a=left, answer_b=right)}]}
        text = ChatClient(self.base_url, self.api_key, retries=self.retries, timeout=self.timeout).complete(body)["text"]
        match = re.findall(r"\[\[([ABC])\]\]", text)
        return {"A": "left", "B": "right"}.get(match[-1] if match else "C", "tie")  # MT-Bench's A is the first shown


def judge_campaign(store: Store, campaign: str, judge, progress: Callable[[int, int], None] | None = None) -> int:
    """Judge every battle of a ready campaign once (resumable); returns the number of new votes."""
    rater = arena.join(store, campaign, f"judge:{judge.name}", role="judge")
    done, total = store.progress(rater)
    new = 0
    while (assignment := store.next_assignment(rater)) is not None:
        if assignment.turns:  # a conversation: each side judged on its whole conversation
            verdict, raw = judged_both_orders(judge, assignment.turns, assignment.left_turns, assignment.right_turns)
        else:
            verdict, raw = judged_both_orders(judge, assignment.prompt, assignment.left, assignment.right)
        store.vote(rater, assignment.battle_id, verdict, verdicts=raw)
        new += 1
        if progress:
            progress(done + new, total)
    return new
