"""MT-Bench-lite: MT-Bench's single-answer grading (Zheng et al. 2023, FastChat's llm_judge).
Each model answers every question's turns in order, turn k on its OWN earlier answers; an
OpenAI-compatible judge grades each turn 1-10 with MT-Bench's prompts (reference answers for
math, reasoning and coding when the question file has them) and `[[rating]]` parsing, or our
reward model scores each turn. Verdicts that do not parse are counted, never guessed."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

from blindarena.operations import answer_turns
from blindarena.store import StoreError
from blindarena.vocab import conversation
from posttrain.backend import Generator
from posttrain.engine import SamplingParams

DEFAULT_QUESTIONS = Path(__file__).resolve().parents[1] / "data" / "mtbench_lite.jsonl"
NEED_REFERENCE = ("math", "reasoning", "coding")  # FastChat's NEED_REF_CATS
RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")  # FastChat's one_score_pattern
RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")  # and its backup

# FastChat's judge_prompts.jsonl: single-v1, single-math-v1, and their multi-turn forms.
_RATE = ('After providing your explanation, you must rate the response on a scale of 1 to 10 by strictly following '
         'this format: "[[rating]]", for example: "Rating: [[5]]".')
SINGLE = ("[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an AI "
          "assistant to the user question displayed below. Your evaluation should consider factors such as the "
          "helpfulness, relevance, accuracy, depth, creativity, and level of detail of the response. Begin your "
          "evaluation by providing a short explanation. Be as objective as possible. " + _RATE +
          "\n\n[Question]\n{question}\n\n[The Start of Assistant's Answer]\n{answer}\n[The End of Assistant's Answer]")
SINGLE_MATH = ("[Instruction]\nPlease act as an impartial judge and evaluate the quality of the response provided by an "
               "AI assistant to the user question displayed below. Your evaluation should consider correctness and "
               "helpfulness. You will be given a reference answer and the assistant's answer. Begin your evaluation by "
               "comparing the assistant's answer with the reference answer. Identify and correct any mistakes. Be as "
               "objective as possible. " + _RATE + "\n\n[Question]\n{question}\n\n[The Start of Reference Answer]\n"
               "{ref_answer_1}\n[The End of Reference Answer]\n\n[The Start of Assistant's Answer]\n{answer}\n"
               "[The End of Assistant's Answer]")
MULTI_SYSTEM = ("Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant to "
                "the user question displayed below. Your evaluation should consider factors such as the helpfulness, "
                "relevance, accuracy, depth, creativity, and level of detail of the response. You evaluation should "
                "focus on the assistant's answer to the second user question. Begin your evaluation by providing a short "
                "explanation. Be as objective as possible. " + _RATE + "\n\n")
MULTI_MATH_SYSTEM = ("Please act as an impartial judge and evaluate the quality of the response provided by an AI assistant "
                     "to the user question. Your evaluation should consider correctness and helpfulness. You will be given "
                     "a reference answer and the assistant's answer. You evaluation should focus on the assistant's answer "
                     "to the second question. Begin your evaluation by comparing the assistant's answer with the reference "
                     "answer. Identify and correct any mistakes. Be as objective as possible. " + _RATE + "\n\n")
CONVERSATION = ("<|The Start of Assistant A's Conversation with User|>\n\n### User:\n{question_1}\n\n### Assistant A:\n"
                "{answer_1}\n\n### User:\n{question_2}\n\n### Assistant A:\n{answer_2}\n\n"
                "<|The End of Assistant A's Conversation with User|>")
REFERENCE = ("<|The Start of Reference Answer|>\n\n### User:\n{question_1}\n\n### Reference answer:\n{ref_answer_1}\n\n"
             "### User:\n{question_2}\n\n### Reference answer:\n{ref_answer_2}\n\n<|The End of Reference Answer|>\n\n\n")


def load_questions(path: str | Path = DEFAULT_QUESTIONS) -> list[dict]:
    """MT-Bench question.jsonl rows: question_id, category, turns (one or more user turns) and an
    optional reference (one answer per turn)."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such question file")
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise StoreError(f"{path}:{number}: broken JSON ({exc.msg})") from None
        turns = row.get("turns")
        if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
            raise StoreError(f"{path}:{number}: 'turns' must be a list of non-empty user turns")
        reference = row.get("reference")
        if reference is not None and (not isinstance(reference, list) or len(reference) != len(turns)):
            raise StoreError(f"{path}:{number}: 'reference' must hold one answer per turn")
        questions.append({"question_id": row.get("question_id", number), "category": row.get("category") or "general",
                          "turns": turns, "reference": reference})
    if not questions:
        raise StoreError(f"{path}: no questions")
    return questions


def answer(generator: Generator, model: str, questions: list[dict], params: SamplingParams,
           system: str | None = None) -> list[list[str]]:
    """Every turn of every question, turn k given the model's own answers to turns 1..k-1 (all
    questions' turn k in one batched call: the arena's answer_turns)."""
    rows = [(q["turns"], model) for q in questions]
    return [answers for answers, _ in answer_turns(generator, rows, params, system or "")]


def judge_messages(question: dict, answers: list[str], turn: int) -> list[dict]:
    """MT-Bench's judge request for `turn` (0-based) of one answered question."""
    reference = question["reference"] if question["category"] in NEED_REFERENCE else None
    if turn == 0:
        template = SINGLE_MATH if reference else SINGLE
        content = template.format(question=question["turns"][0], answer=answers[0],
                                  ref_answer_1=reference[0] if reference else "")
        return [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": content}]
    fields = {"question_1": question["turns"][turn - 1], "answer_1": answers[turn - 1],
              "question_2": question["turns"][turn], "answer_2": answers[turn]}
    if reference:
        content = REFERENCE.format(**fields, ref_answer_1=reference[turn - 1], ref_answer_2=reference[turn]) + \
            CONVERSATION.format(**fields)
        return [{"role": "system", "content": MULTI_MATH_SYSTEM}, {"role": "user", "content": content}]
    return [{"role": "system", "content": MULTI_SYSTEM}, {"role": "user", "content": CONVERSATION.format(**fields)}]


def parse_rating(text: str) -> float | None:
    """The judge's [[rating]] (FastChat's pattern, then its backup); None when neither is there."""
    match = RATING.search(text) or RATING_BACKUP.search(text)
    return float(match.group(1)) if match else None


class OpenAIGrader:
    """An OpenAI-compatible judge grading 1-10 with MT-Bench's prompts, requests in parallel."""

    def __init__(self, client, model: str):
        self.client, self.model, self.name = client, model, f"openai:{model}"

    def grade(self, items: list[tuple[dict, list[str], int]]) -> list[float | None]:
        bodies = [{"model": self.model, "temperature": 0, "max_tokens": 2048, "messages": judge_messages(q, a, t)}
                  for q, a, t in items]
        return [parse_rating(reply["text"]) for reply in self.client.complete_many(bodies)]


class RewardGrader:
    """Our reward model's score of each turn, given the conversation before it (not a 1-10 scale)."""

    def __init__(self, scorer, name: str):
        self.scorer, self.name = scorer, f"reward:{name}"

    def grade(self, items: list[tuple[dict, list[str], int]]) -> list[float | None]:
        scores = []
        for question, answers, turn in items:
            context = conversation(question["turns"][: turn + 1], answers[:turn])
            scores.append(self.scorer.score(context, [answers[turn]])[0])
        return scores


def grade(grader, questions: list[dict], answers: dict[str, list[list[str]]]) -> dict:
    """{"mtbench": {MODEL: {turn_1, turn_2, overall, by_category, graded, unparseable}}, "judge"}:
    means over the grades that parsed; unparseable verdicts are counted and left out."""
    out = {}
    for model, model_answers in answers.items():
        items = [(q, a, t) for q, a in zip(questions, model_answers) for t in range(len(q["turns"]))]
        grades = grader.grade(items)
        per_turn, per_category, every = defaultdict(list), defaultdict(list), []
        for (question, _, turn), value in zip(items, grades):
            if value is None:
                continue
            per_turn[turn].append(value)
            per_category[question["category"]].append(value)
            every.append(value)
        mean = lambda values: round(sum(values) / len(values), 3) if values else None
        out[model] = {"turn_1": mean(per_turn[0]), "turn_2": mean(per_turn[1]), "overall": mean(every),
                      "by_category": {c: mean(v) for c, v in sorted(per_category.items())},
                      "graded": len(every), "unparseable": sum(v is None for v in grades)}
    return {"mtbench": out, "judge": grader.name}
