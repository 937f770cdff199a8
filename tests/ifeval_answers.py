"""Varied answers for holding the IFEval checkers to Google's reference implementation: seeded
compositions of the shapes real answers take (paragraphs split by blank lines or ***, bullets,
highlights, sections, titles, postscripts, JSON, quotes, case, commas, placeholders) and of the
first words and word forms where implementations part ("P.S.", "[your", "**Bold**", "#Title",
"-dash", "Don't", "e.g.", "state-of-the-art")."""

from __future__ import annotations

import json
import random

WORDS = ("the model answer river data state-of-the-art don't it's well-known planning trip Japan budget "
         "history summary code python tree ocean music e.g. i.e. 3.5 2024 AI NASA USA OK GPU temple "
         "coffee market letter friend poem rhyme story love dog cat sun rain walk think price buy").split()
FIRST_WORDS = ["P.S.", "[your", "**Bold**", "#Title", "-dash", "Don't", "e.g.", "'quoted'", '"Hi"', "Hello,", "hello",
               "Summary:", "*Highlight*", "1.", "The", "the", "Intro", "Dear", "Conclusion", "Weather", "Finally!", "Why?"]


def sentence(rng: random.Random, low: int = 4, high: int = 14) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(["however,", "and,", "so,", "yes,"]))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", ".", "!", "?", "..."])


def paragraph(rng: random.Random) -> str:
    text = " ".join(sentence(rng) for _ in range(rng.randint(1, 4)))
    if rng.random() < 0.35:
        text = rng.choice(FIRST_WORDS) + " " + text
    return text


def answer(rng: random.Random, prompt: str = "", hints: tuple[str, ...] = ()) -> str:
    """One answer, its shape drawn at random; `hints` (an instruction's own words: a first word, a
    keyword, an end phrase) are worked in now and then, so that verdicts go both ways."""
    parts = [paragraph(rng) for _ in range(rng.randint(1, 5))]
    for hint in hints:
        if rng.random() < 0.5:
            i = rng.randrange(len(parts))
            variant = rng.choice([hint, hint.capitalize(), hint.upper(), f"{hint},", f"{hint}.", f'"{hint}', f"'{hint}",
                                  f"**{hint}**", f"{hint}'s", f"{hint}-like", f"[{hint}"])
            parts[i] = f"{variant} {parts[i]}" if rng.random() < 0.7 else f"{parts[i]} {variant}"
    shape = rng.random()
    if shape < 0.15:
        parts = [f"* {p}" if rng.random() < 0.7 else f"- {p}" for p in parts]
        text = "\n".join(parts)
    elif shape < 0.3:
        text = "\n***\n".join(parts) if rng.random() < 0.7 else " *** ".join(parts)
    elif shape < 0.4:
        name = rng.choice(["SECTION", "Section", "PARAGRAPH", "Day"])
        text = "\n\n".join(f"{name} {i + 1}\n{p}" for i, p in enumerate(parts))
    elif shape < 0.5:
        text = json.dumps({"answer": parts[0], "items": parts[1:]}, indent=rng.choice([None, 2]))
        if rng.random() < 0.5:
            text = "```json\n" + text + "\n```" if rng.random() < 0.7 else "```\n" + text + "\n```"
        if rng.random() < 0.2:
            text = text[:-1]  # broken JSON
    elif shape < 0.6:
        text = "\n******\n".join(parts[:2]) if len(parts) > 1 else parts[0] + "\n******\n" + parts[0]
    else:
        text = rng.choice(["\n\n", "\n\n\n", "\n \n", "\n"]).join(parts)
    if rng.random() < 0.2:
        text = f"<<{' '.join(rng.choice(WORDS) for _ in range(3))}>>\n" + text
    if rng.random() < 0.25:
        words = text.split(" ")
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(words))
            words[i] = rng.choice([f"*{words[i]}*", f"**{words[i]}**", f"[{words[i]}]"])
        text = " ".join(words)
    if rng.random() < 0.2:
        text += rng.choice(["\n\nP.S. " + sentence(rng), "\nP.P.S " + sentence(rng), "\n\np.s. " + sentence(rng),
                            "\n\nP.S " + sentence(rng)])
    if rng.random() < 0.15:
        text = text.upper()
    elif rng.random() < 0.15:
        text = text.lower()
    if rng.random() < 0.15:
        text = text.replace(",", "")
    if rng.random() < 0.1:
        text = f'"{text}"'
    if rng.random() < 0.1:
        text += rng.choice([" Is there anything else I can help with?", " Let me know if you have additional questions.",
                            " Any other questions?"])
    if prompt and rng.random() < 0.1:
        text = prompt + "\n" + text
    if rng.random() < 0.08:
        text = rng.choice(["My answer is yes.", "My answer is no.", "My answer is maybe."]) + ("" if rng.random() < 0.5 else " " + text)
    return text
