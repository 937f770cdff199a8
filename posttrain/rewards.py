"""Rewards for online RL rounds (TRL reward functions: f(prompts, completions, **columns) -> list):
the IFEval checkers as a verifier, and an OpenAI-compatible judge's grade. train.py's recipes name
them `ifeval`, `ifeval:all` and `judge:openai` (posttrain/rl.py)."""

from __future__ import annotations

import json
import os

from posttrain import checkers


def reply_text(completion) -> str:
    """The text of a TRL completion: conversational ones come as [{"role": "assistant", "content": ...}]."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def _verdicts(completions, columns: dict) -> list[list[bool] | None]:
    out = []
    for completion, spec in zip(completions, columns.get("ifeval") or [""] * len(completions)):
        if not spec:
            out.append(None)  # a prompt without verifiable instructions: no reward from the checker
            continue
        row = {**json.loads(spec), "response": reply_text(completion)}
        out.append(checkers.check_row(row)["follow_instruction_list"])
    return out


def ifeval(prompts, completions, **columns) -> list[float | None]:
    """The share of the prompt's instructions the completion follows (IFEval, strict)."""
    return [None if v is None else sum(v) / len(v) for v in _verdicts(completions, columns)]


def ifeval_all(prompts, completions, **columns) -> list[float | None]:
    """1 when the completion follows every instruction of its prompt (IFEval, strict), else 0."""
    return [None if v is None else float(all(v)) for v in _verdicts(completions, columns)]


_GRADER = None


def openai_judge(prompts, completions, **columns) -> list[float | None]:
    """An OpenAI-compatible judge's 1-10 grade of each completion (MT-Bench's single-answer prompt),
    requests in parallel through the project's client; an unparseable verdict is None."""
    global _GRADER
    if _GRADER is None:  # one client per process: its cache and rate limits span the round
        from evals.judge import OpenAIJudge
        from evals.mtbench import OpenAIGrader
        from posttrain.chat_api import ChatClient

        judge = OpenAIJudge.from_env()
        _GRADER = OpenAIGrader(ChatClient(judge.base_url, judge.api_key, retries=judge.retries,
                                          concurrency=int(os.environ.get("JUDGE_CONCURRENCY", "16"))), judge.model)
    items = []
    for prompt, completion in zip(prompts, completions):
        question = prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)
        items.append(({"turns": [question], "category": "writing"}, [reply_text(completion)], 0))
    return _GRADER.grade(items)
