"""One vocabulary for sides and winners, from the page to the export.

- A *side* is where an answer is shown: "left" (labelled A on the page) or "right" (labelled B).
- A *choice* is what a rater or a judge picks among the answers as shown: a side, "tie" or "both_bad".
- A battle stores its two models as `model_a` and `model_b`; its *winner* is "a", "b", "tie" or
  "both_bad" in those terms, whichever side each was shown on (`a_on_left`).
- A preference pair's answers are `chosen` and `rejected` (TRL's words).

And one word for each thing the arena counts:
- An *open* campaign has no prompt file: its raters ask their own questions, and each question
  starts an *open battle* (its prompt's category is OPEN_CATEGORY). "Open" means nothing else.
- A *claimable* battle is a regular battle of a campaign with a votes-per-battle target that a
  rater may still be handed (under its target, on a prompt they have not seen); handing it out is
  a *claim* (blindarena.allocation chooses, the store records).
- A rater's *role* is "human" or "judge"; on a vote the same value is `rater_role` (the
  database keeps it in the raters' `kind` column, as every earlier version wrote it).
- A rater *left out* is one whose votes do not count (the quality checks flagged them, or the
  admin excluded them): `left_out` holds rater NAMES, `left_out_ids` their database ids. The JSON
  of results and exports says `excluded_raters` / `excluded_votes` (kept as they were)."""

from __future__ import annotations

SIDES = ("left", "right")
CHOICES = ("left", "right", "tie", "both_bad")
WINNERS = ("a", "b", "tie", "both_bad")
DECISIVE = ("a", "b")
OPEN_CATEGORY = "open"  # the category of an open battle's prompt
RATER_ROLES = ("human", "judge")


def winner_of(choice: str, a_on_left: bool) -> str:
    """The battle's winner for a choice made on the page."""
    if choice not in CHOICES:
        raise ValueError(f"a choice is one of {CHOICES}, got {choice!r}")
    if choice in SIDES:
        return "a" if (choice == "left") == bool(a_on_left) else "b"
    return choice


def other_side(side: str) -> str:
    return {"left": "right", "right": "left"}[side]


def conversation(turns, answers, system: str = "") -> list[dict]:
    """The one message layout of a conversation, from generation to judge to export: the system
    prompt if any, then each user turn followed by that model's answer to it, while it has one (so
    a model is asked its next turn on its OWN earlier answers)."""
    messages = [{"role": "system", "content": system}] if system else []
    for k, user in enumerate(turns):
        messages.append({"role": "user", "content": user})
        if k < len(answers):
            messages.append({"role": "assistant", "content": answers[k]})
    return messages
