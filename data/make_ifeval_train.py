"""Writes the training-side prompts with verifiable instructions, in IFEval's schema (key, prompt,
instruction_id_list, kwargs), for the synthetic-data builder (`scripts/synth.py ifeval`) and the
closed loop's campaign:

- data/ifeval_train.jsonl: 200 prompts (keys 1000+), each of IFEval's 25 instruction types on 8;
- data/ifeval_loop.jsonl: 50 more (keys 3000+), two per type, for a campaign voted by the checker.

Tasks and wording are not the held-out set's: other topics, and each instruction said in other
words than IFEval's (data/make_ifeval_heldout.py keeps IFEval's wording), so a model that scores
on the held-out set has learned the instruction, not a sentence. The builder's contamination
check confirms no prompt overlaps a held-out one. Deterministic.

    python data/make_ifeval_train.py"""

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_ifeval_heldout import KINDS as HELDOUT_KINDS  # noqa: E402

TASKS = [
    "Write a note inviting friends to a picnic", "Explain how a kite stays in the air",
    "Describe a quiet library on a winter afternoon", "Give advice for keeping a tidy desk",
    "Write a short advert for a second-hand bookshop", "Explain how bees find flowers",
    "Describe a fishing village at sunset", "Give tips for planting tomatoes",
    "Write a message congratulating a friend on a new job", "Explain what a map scale is",
    "Describe a thunderstorm over the hills", "Give advice for a first camping trip",
    "Write a short review of a board game", "Explain how a thermometer works",
    "Describe a busy railway station", "Give tips for learning to swim",
    "Write a welcome note for new club members", "Explain why people keep diaries",
    "Describe an old clock tower", "Give advice for writing a good email",
    "Write a short story about a talking teapot", "Explain how a dam makes electricity",
    "Describe a snowy mountain path", "Give tips for saving water at home",
    "Write a notice about a lost cat", "Explain what a fossil is",
    "Describe the smell of a bakery in the morning", "Give reasons to visit a museum",
    "Write a letter to a pen pal about your town", "Explain how rain forms",
    "Describe a garden in spring", "Give advice for running a first marathon",
]
LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish", "it": "Italian"}
WORDS = ["bridge", "candle", "evening", "meadow", "travel", "door", "island", "golden", "village", "calm"]


def instruction(kind: str, task: str, rng: random.Random) -> tuple[str, dict]:
    """(the instruction in this file's own words, its kwargs) for one IFEval instruction id."""
    relation = rng.choice(["less than", "at least"])
    fewer = "fewer than" if relation == "less than" else "at least"
    if kind == "keywords:existence":
        words = rng.sample(WORDS, 2)
        return f"Use the words '{words[0]}' and '{words[1]}' somewhere in your answer.", {"keywords": words}
    if kind == "keywords:frequency":
        word, n = rng.choice(WORDS), rng.randint(2, 4)
        return f"Mention the word '{word}' {fewer} {n} times.", {"keyword": word, "frequency": n, "relation": relation}
    if kind == "keywords:forbidden_words":
        words = rng.sample(["great", "lovely", "stuff", "amazing", "always", "maybe"], 2)
        return f"Never use the words '{words[0]}' and '{words[1]}'.", {"forbidden_words": words}
    if kind == "keywords:letter_frequency":
        letter, n = rng.choice("aeiostr"), rng.randint(5, 15)
        return f"The letter '{letter}' must occur {fewer} {n} times in what you write.", {
            "letter": letter, "let_frequency": n, "let_relation": relation}
    if kind == "language:response_language":
        code = rng.choice(sorted(LANGUAGES))
        return f"Write your whole answer in {LANGUAGES[code]} only.", {"language": code}
    if kind == "length_constraints:number_sentences":
        n = rng.randint(3, 6)
        return f"Use {fewer} {n} sentences.", {"num_sentences": n, "relation": relation}
    if kind == "length_constraints:number_paragraphs":
        n = rng.randint(2, 4)
        return f"Split the answer into {n} paragraphs, with a line of three asterisks (***) between paragraphs.", {
            "num_paragraphs": n}
    if kind == "length_constraints:number_words":
        n = rng.choice([30, 50, 70, 100])
        return f"Keep the length to {fewer} {n} words.", {"num_words": n, "relation": relation}
    if kind == "length_constraints:nth_paragraph_first_word":
        n = rng.randint(2, 4)
        nth, word = rng.randint(1, n), rng.choice(["yesterday", "next", "also", "later", "truly"])
        return (f"Write {n} paragraphs separated by blank lines, and begin paragraph number {nth} with the word '{word}'.",
                {"num_paragraphs": n, "nth_paragraph": nth, "first_word": word})
    if kind == "detectable_content:number_placeholders":
        n = rng.randint(1, 3)
        return f"Leave {n} or more blanks in square brackets, like [name], for the reader to fill in.", {
            "num_placeholders": n}
    if kind == "detectable_content:postscript":
        marker = rng.choice(["P.S.", "P.P.S"])
        return f"Close with a postscript that begins with {marker}", {"postscript_marker": marker}
    if kind == "detectable_format:number_bullet_lists":
        n = rng.randint(2, 5)
        return f"Format the answer as a list of exactly {n} items, each line starting with '* '.", {"num_bullets": n}
    if kind == "detectable_format:constrained_response":
        return "Reply only with 'My answer is yes.', 'My answer is no.' or 'My answer is maybe.'", {}
    if kind == "detectable_format:number_highlighted_sections":
        n = rng.randint(1, 3)
        return f"Mark {n} or more phrases as highlighted by putting single asterisks around them, like *this*.", {
            "num_highlights": n}
    if kind == "detectable_format:multiple_sections":
        splitter, n = rng.choice(["SECTION", "Section"]), rng.randint(2, 4)
        return f"Organise it in {n} parts, each headed '{splitter} 1', '{splitter} 2' and so on.", {
            "section_spliter": splitter, "num_sections": n}
    if kind == "detectable_format:json_format":
        return "Give the whole answer as valid JSON and nothing else.", {}
    if kind == "detectable_format:title":
        return "Start with a title inside double angle brackets, for example <<my title>>.", {}
    if kind == "combination:two_responses":
        return "Write two different versions, with a line of six asterisks (******) between them.", {}
    if kind == "combination:repeat_prompt":
        return ("Begin by copying the first sentence of this request exactly, and then answer it.",
                {"prompt_to_repeat": f"{task}."})
    if kind == "startend:end_checker":
        phrase = rng.choice(["Have a good day.", "Thanks for reading.", "Hope this helps."])
        return f"The very last words of your answer must be: {phrase}", {"end_phrase": phrase}
    if kind == "startend:quotation":
        return "Put the whole answer inside double quotes.", {}
    if kind == "change_case:capital_word_frequency":
        n = rng.randint(2, 6)
        return f"Write {fewer} {n} words in full capitals, LIKE THIS.", {"capital_frequency": n, "capital_relation": relation}
    if kind == "change_case:english_capital":
        return "Answer in English, using capital letters only.", {}
    if kind == "change_case:english_lowercase":
        return "Answer in English using only lowercase letters, with no capitals at all.", {}
    if kind == "punctuation:no_comma":
        return "Do not use a single comma anywhere.", {}
    raise KeyError(kind)


KINDS = HELDOUT_KINDS  # IFEval's 25 ids, in the held-out set's order


def prompt_row(key: int, task: str, kind: str, rng: random.Random) -> dict:
    text, kwargs = instruction(kind, task, rng)
    if kind == "detectable_format:constrained_response":  # a yes/no question, so the options make sense
        task = f"Is it a good idea to {task[0].lower()}{task[1:]}?"
        kwargs = {}
    return {"key": key, "prompt": f"{task}. {text}" if not task.endswith("?") else f"{task} {text}",
            "instruction_id_list": [kind], "kwargs": [kwargs]}


def rows(first_key: int, per_kind: int, seed: int, offset: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for k, kind in enumerate(KINDS):
        for j in range(per_kind):
            task = TASKS[(k * per_kind + j + offset) % len(TASKS)]
            out.append(prompt_row(first_key + len(out), task, kind, rng))
    return out


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for name, made in (("ifeval_train.jsonl", rows(1000, 8, seed=1, offset=0)),
                       ("ifeval_loop.jsonl", rows(3000, 2, seed=2, offset=5))):
        (here / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in made), encoding="utf-8")
        print(f"wrote {len(made)} prompts to {here / name}")
