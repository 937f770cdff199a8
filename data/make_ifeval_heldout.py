"""Writes data/ifeval_heldout.jsonl: the project's own held-out set of verifiable instructions in
IFEval's input_data.jsonl schema (key, prompt, instruction_id_list, kwargs). Every one of IFEval's
25 instruction types appears on 6 tasks by itself, and 25 prompts carry a second instruction
(175 prompts). Tasks and wording are written here; deterministic, so rerunning writes the same file.

    python data/make_ifeval_heldout.py"""

import json
import random
from pathlib import Path

TASKS = [
    "Write a short note to a neighbour about a parcel left at your door",
    "Explain why bread goes stale",
    "Describe a walk along a river at dawn",
    "Give advice to someone learning to ride a bicycle",
    "Write a product description for a wooden desk lamp",
    "Explain how a lighthouse helps ships at night",
    "Write a thank-you message to a volunteer at a food bank",
    "Describe the life of a honeybee in one summer",
    "Explain what a budget is to a twelve-year-old",
    "Write a review of an imaginary seaside cafe",
    "Explain how to keep a houseplant alive while on holiday",
    "Describe a city market on a Saturday morning",
    "Write a short story about a lost umbrella",
    "Explain the difference between weather and climate",
    "Give tips for a first day at a new job",
    "Write an announcement for a community book swap",
    "Explain how a compass works",
    "Describe the sounds of a forest after rain",
    "Write a letter to a future self about learning to cook",
    "Explain why the sky looks blue",
    "Write a short speech for a school sports day",
    "Describe how to make a cup of tea properly",
    "Explain what recycling does with old glass bottles",
    "Write a postcard from a mountain hut",
    "Give reasons to learn a second language",
    "Explain how a library decides which books to buy",
    "Describe a train journey through farmland",
    "Write a short biography of an imaginary inventor of the paperclip",
    "Explain how to prepare for a long hike",
    "Write a complaint to a landlord about a broken heater",
]
LANGUAGES = {"fr": "French", "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "nl": "Dutch"}
WORDS = ["river", "lantern", "morning", "garden", "journey", "window", "harbour", "silver", "market", "quiet"]


def instruction(kind: str, task: str, rng: random.Random) -> tuple[str, dict]:
    """(the instruction's sentence, its kwargs) for one IFEval instruction id."""
    relation = rng.choice(["less than", "at least"])
    if kind == "keywords:existence":
        words = rng.sample(WORDS, 2)
        return f"Include the keywords {words[0]} and {words[1]} in the response.", {"keywords": words}
    if kind == "keywords:frequency":
        word, n = rng.choice(WORDS), rng.randint(2, 4)
        return f"In your response, the word {word} should appear {relation} {n} times.", {
            "keyword": word, "frequency": n, "relation": relation}
    if kind == "keywords:forbidden_words":
        words = rng.sample(["very", "really", "nice", "thing", "good", "just"], 2)
        return f"Do not include the words {words[0]} or {words[1]} in the response.", {"forbidden_words": words}
    if kind == "keywords:letter_frequency":
        letter, n = rng.choice("aeiostr"), rng.randint(5, 15)
        return f"In your response, the letter {letter} should appear {relation} {n} times.", {
            "letter": letter, "let_frequency": n, "let_relation": relation}
    if kind == "language:response_language":
        code = rng.choice(sorted(LANGUAGES))
        return (f"Your ENTIRE response should be in {LANGUAGES[code]} language, no other language is allowed.",
                {"language": code})
    if kind == "length_constraints:number_sentences":
        n = rng.randint(3, 6)
        return f"Your response should contain {relation} {n} sentences.", {"num_sentences": n, "relation": relation}
    if kind == "length_constraints:number_paragraphs":
        n = rng.randint(2, 4)
        return (f"There should be {n} paragraphs. Paragraphs are separated with the markdown divider: ***",
                {"num_paragraphs": n})
    if kind == "length_constraints:number_words":
        n = rng.choice([40, 60, 80, 120])
        return f"Answer with {relation} {n} words.", {"num_words": n, "relation": relation}
    if kind == "length_constraints:nth_paragraph_first_word":
        n = rng.randint(2, 4)
        nth, word = rng.randint(1, n), rng.choice(["today", "first", "however", "finally", "remember"])
        return (f"There should be {n} paragraphs. Paragraphs and only paragraphs are separated with each other by two "
                f"new lines. Paragraph {nth} must start with the word {word}.",
                {"num_paragraphs": n, "nth_paragraph": nth, "first_word": word})
    if kind == "detectable_content:number_placeholders":
        n = rng.randint(1, 3)
        return (f"The response must contain at least {n} placeholders represented by square brackets, such as [address].",
                {"num_placeholders": n})
    if kind == "detectable_content:postscript":
        marker = rng.choice(["P.S.", "P.P.S"])
        return f"At the end of your response, please explicitly add a postscript starting with {marker}", {
            "postscript_marker": marker}
    if kind == "detectable_format:number_bullet_lists":
        n = rng.randint(2, 5)
        return (f"Your answer must contain exactly {n} bullet points. Use the markdown bullet points such as:\n"
                "* This is point 1.\n* This is point 2", {"num_bullets": n})
    if kind == "detectable_format:constrained_response":
        return "Answer with one of the following options: My answer is yes., My answer is no., My answer is maybe.", {}
    if kind == "detectable_format:number_highlighted_sections":
        n = rng.randint(1, 3)
        return (f"Highlight at least {n} sections in your answer with markdown, i.e. *highlighted section*.",
                {"num_highlights": n})
    if kind == "detectable_format:multiple_sections":
        splitter, n = rng.choice(["SECTION", "Section"]), rng.randint(2, 4)
        return (f"Your response must have {n} sections. Mark the beginning of each section with {splitter} X, such as: "
                f"{splitter} 1.", {"section_spliter": splitter, "num_sections": n})
    if kind == "detectable_format:json_format":
        return "Entire output should be wrapped in JSON format. You can use markdown ticks such as ```.", {}
    if kind == "detectable_format:title":
        return "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>.", {}
    if kind == "combination:two_responses":
        return ("Give two different responses. Responses and only responses should be separated by 6 asterisk "
                "symbols: ******.", {})
    if kind == "combination:repeat_prompt":
        return ("First repeat the request word for word without change, then give your answer (1. do not say any words "
                "or characters before repeating the request; 2. the request you need to repeat does not include this "
                "sentence)", {"prompt_to_repeat": f"{task}."})
    if kind == "startend:end_checker":
        phrase = rng.choice(["Is there anything else I can help with?", "Let me know if you have additional questions.",
                             "That is all for now."])
        return f"Finish your response with this exact phrase {phrase} No other words should follow this phrase.", {
            "end_phrase": phrase}
    if kind == "startend:quotation":
        return "Wrap your entire response with double quotation marks.", {}
    if kind == "change_case:capital_word_frequency":
        n = rng.randint(2, 6)
        return (f"In your response, words with all capital letters should appear {relation} {n} times.",
                {"capital_frequency": n, "capital_relation": relation})
    if kind == "change_case:english_capital":
        return "Your entire response should be in English, and in all capital letters.", {}
    if kind == "change_case:english_lowercase":
        return ("Your entire response should be in English, and in all lowercase letters. No capital letters are "
                "allowed.", {})
    if kind == "punctuation:no_comma":
        return "In your entire response, refrain from the use of any commas.", {}
    raise KeyError(kind)


KINDS = [
    "keywords:existence", "keywords:frequency", "keywords:forbidden_words", "keywords:letter_frequency",
    "language:response_language", "length_constraints:number_sentences", "length_constraints:number_paragraphs",
    "length_constraints:number_words", "length_constraints:nth_paragraph_first_word",
    "detectable_content:number_placeholders", "detectable_content:postscript", "detectable_format:number_bullet_lists",
    "detectable_format:constrained_response", "detectable_format:number_highlighted_sections",
    "detectable_format:multiple_sections", "detectable_format:json_format", "detectable_format:title",
    "combination:two_responses", "combination:repeat_prompt", "startend:end_checker", "startend:quotation",
    "change_case:capital_word_frequency", "change_case:english_capital", "change_case:english_lowercase",
    "punctuation:no_comma",
]
# A second instruction that sits with any first one except where they would contradict each other.
SECOND = ["detectable_format:title", "detectable_content:postscript", "keywords:existence"]
CLASHES = {"detectable_format:json_format", "combination:repeat_prompt", "startend:quotation", "startend:end_checker",
           "detectable_format:constrained_response", "language:response_language", "change_case:english_capital",
           "change_case:english_lowercase", "combination:two_responses"}


def prompt_row(key: int, task: str, kinds: list[str], rng: random.Random) -> dict:
    """One prompt: the task, then each instruction's sentence, in IFEval's schema."""
    made = [instruction(kind, task, rng) for kind in kinds]
    return {"key": key, "prompt": f"{task}. " + " ".join(text for text, _ in made),
            "instruction_id_list": list(kinds), "kwargs": [kwargs for _, kwargs in made]}


def rows(seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for k, kind in enumerate(KINDS):
        for j in range(6):
            kinds = [kind]
            if j == 0 and kind not in CLASHES:  # one prompt in six of each type carries a second instruction
                kinds.append(next(s for s in SECOND if s != kind))
            out.append(prompt_row(5000 + len(out), TASKS[(k * 6 + j) % len(TASKS)], kinds, rng))
    extra = [kind for kind in KINDS if kind not in CLASHES]
    for i in range(175 - len(out)):  # two-instruction prompts until 175 in all
        kind = extra[i % len(extra)]
        second = "punctuation:no_comma" if kind != "punctuation:no_comma" else "detectable_format:title"
        out.append(prompt_row(5000 + len(out), TASKS[(i * 7 + 3) % len(TASKS)], [kind, second], rng))
    return out


if __name__ == "__main__":
    path = Path(__file__).resolve().parent / "ifeval_heldout.jsonl"
    made = rows()
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in made), encoding="utf-8")
    print(f"wrote {len(made)} prompts to {path}")
