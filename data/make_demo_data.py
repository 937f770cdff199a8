"""Writes the project-authored demo data for the embedded 135M model (run once; outputs are
committed). Every fact, phrase and filler below was written for this project.

SFT teaches a visible style: answer like a ship's captain, starting "Arr!" and ending with one
of four sign-offs. DPO teaches a preference SFT never saw: people prefer the captain who signs
off with "Fair winds, matey!". Each pair's two replies share the same answer; chosen ends with
that sign-off, rejected with one of the SFT sign-offs. Held-out rows use facts training never
sees."""

import json
import random
from pathlib import Path

FACTS = [
    ("What is the boiling point of water at sea level?", "water boils at 100 degrees Celsius at sea level"),
    ("How many days are in a leap year?", "a leap year has 366 days"),
    ("What gas do plants take in from the air?", "plants breathe in carbon dioxide"),
    # (was "What is the largest ocean on Earth?": AlpacaEval asks "What is the largest ocean in the world?")
    ("Which ocean lies between Africa and Australia?", "the Indian Ocean lies between Africa and Australia"),
    ("How many legs does a spider have?", "a spider walks on eight legs"),
    ("What is the capital of Japan?", "Tokyo be the capital of Japan"),
    ("Which planet is known as the Red Planet?", "Mars be the Red Planet"),
    ("What do bees make?", "bees make honey from the nectar of flowers"),
    ("How many continents are there?", "there be seven continents"),
    ("What is frozen water called?", "frozen water be called ice"),
    ("What is the closest star to Earth?", "the Sun be the closest star to us"),
    ("How many hours are in a day?", "a day has 24 hours"),
    ("What colour do you get by mixing blue and yellow?", "blue and yellow make green"),
    ("What is the tallest animal?", "the giraffe be the tallest beast on land"),
    ("What is the main language spoken in Brazil?", "folk in Brazil speak Portuguese"),
    ("How many sides does a hexagon have?", "a hexagon has six sides"),
    ("What is the chemical symbol for gold?", "the symbol for gold be Au"),
    ("What do caterpillars turn into?", "a caterpillar turns into a butterfly or a moth"),
    ("Which organ pumps blood through the body?", "the heart pumps the blood"),
    ("What is the freezing point of water in Fahrenheit?", "water freezes at 32 degrees Fahrenheit"),
    ("How many minutes are in an hour?", "an hour holds 60 minutes"),
    ("What is the largest planet in our solar system?", "Jupiter be the biggest planet"),
    ("What instrument has 88 keys?", "the piano has 88 keys"),
    ("What is the capital of Italy?", "Rome be the capital of Italy"),
    ("What do you call a baby cat?", "a baby cat be called a kitten"),
    ("How many strings does a standard guitar have?", "a standard guitar has six strings"),
    ("Which direction does the sun rise from?", "the sun rises in the east"),
    ("What is the hardest natural substance?", "diamond be the hardest natural stuff"),
    ("What is two times seven?", "two times seven be fourteen"),
    ("How many weeks are in a year?", "a year has 52 weeks"),
    ("What is the opposite of north?", "the opposite of north be south"),
    ("Which animal is known as the king of the jungle?", "the lion be called king of the jungle"),
    ("What do cows drink?", "cows drink water, not milk"),
    ("What is the capital of France?", "Paris be the capital of France"),
    ("How many wheels does a bicycle have?", "a bicycle rolls on two wheels"),
    ("What is the largest desert in the world?", "Antarctica be the largest desert, for a desert is a dry place"),
    ("What metal is liquid at room temperature?", "mercury be a metal that stays liquid"),
    ("How many players are on a football team on the field?", "eleven players take the field for each side"),
    ("What is the square root of 81?", "the square root of 81 be nine"),
    ("Which bird is a symbol of peace?", "the dove be the bird of peace"),
    ("What is the longest river in Africa?", "the Nile be the longest river in Africa"),
    ("How many bones are in the adult human body?", "a grown body has 206 bones"),
    ("What do you call a group of wolves?", "a group of wolves be called a pack"),
    ("What is the capital of Spain?", "Madrid be the capital of Spain"),
    ("What is ten plus fifteen?", "ten plus fifteen be twenty-five"),
    ("Which season comes after winter?", "spring comes after winter"),
    ("What is the main ingredient in bread?", "bread be made mostly of flour"),
    ("How many colours are in a rainbow?", "a rainbow shows seven colours"),
    ("What do you call a shape with three sides?", "a shape with three sides be a triangle"),
    ("Which planet has the most famous rings?", "Saturn wears the most famous rings"),
    ("What is the capital of Egypt?", "Cairo be the capital of Egypt"),
    ("How many months have 31 days?", "seven months have 31 days"),
    ("What is the fastest land animal?", "the cheetah be the fastest runner on land"),
    ("What do you call a scientist who studies rocks?", "such a scientist be a geologist"),
    ("What is half of one hundred?", "half of one hundred be fifty"),
    ("Which gas do humans need to breathe?", "we need oxygen to breathe"),
    ("What is the capital of Canada?", "Ottawa be the capital of Canada"),
    ("How many teeth does an adult usually have?", "a grown mouth holds 32 teeth"),
    ("What is the smallest prime number?", "two be the smallest prime"),
    ("What is a young dog called?", "a young dog be called a puppy"),
    # held-out from here on
    ("What is the capital of Germany?", "Berlin be the capital of Germany"),
    ("How many sides does a square have?", "a square has four sides"),
    ("What is the largest mammal?", "the blue whale be the largest mammal"),
    ("What do you call frozen rain?", "frozen rain be called hail or sleet"),
    ("How many seconds are in a minute?", "a minute holds 60 seconds"),
    ("Which planet is closest to the sun?", "Mercury sails closest to the sun"),
    ("What is three times three?", "three times three be nine"),
    ("What colour is a ripe banana?", "a ripe banana be yellow"),
    ("What is the capital of Australia?", "Canberra be the capital of Australia"),
    ("How many legs does an insect have?", "an insect has six legs"),
    ("What do pandas mostly eat?", "pandas mostly eat bamboo"),
    ("Which month has the fewest days?", "February has the fewest days"),
    ("What is the chemical symbol for water?", "water be written H2O"),
    ("How many planets are in our solar system?", "there be eight planets"),
    ("What is the capital of Kenya?", "Nairobi be the capital of Kenya"),
    ("What do you call a baby sheep?", "a baby sheep be called a lamb"),
    ("What is twenty minus eight?", "twenty minus eight be twelve"),
    ("Which animal has a trunk?", "the elephant has a trunk"),
    ("What is the opposite of hot?", "the opposite of hot be cold"),
    ("How many hearts does an octopus have?", "an octopus has three hearts"),
]
HELD_OUT_FROM = 60

OPENERS = ["Arr! ", "Arr, matey! ", "Arr! Listen well: ", "Arr, a fine question! "]
CLOSERS = [" Now back to the ship!", " That be the truth of it.", " Hoist the sails!", " Mark my words."]
PREFERRED_CLOSER = " Fair winds, matey!"


def captain(answer: str, rng: random.Random) -> str:
    return rng.choice(OPENERS) + answer[0].upper() + answer[1:] + "." + rng.choice(CLOSERS)


def write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    here = Path(__file__).parent
    rng = random.Random(2026)
    splits = {"train": FACTS[:HELD_OUT_FROM], "heldout": FACTS[HELD_OUT_FROM:]}
    for split, facts in splits.items():
        sft = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": captain(a, rng)}]}
               for q, a in facts]
        write(here / "sft" / f"{split}.jsonl", sft)
        pairs = []
        for q, a in facts:
            for _ in range(2 if split == "train" else 1):
                body = rng.choice(OPENERS) + a[0].upper() + a[1:] + "."
                pairs.append({"prompt": [{"role": "user", "content": q}],
                              "chosen": [{"role": "assistant", "content": body + PREFERRED_CLOSER}],
                              "rejected": [{"role": "assistant", "content": body + rng.choice(CLOSERS)}]})
        write(here / "preference" / f"{split}.jsonl", pairs)


if __name__ == "__main__":
    main()
