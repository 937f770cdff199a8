"""The one naming rule for things people name and the project stores as folders or files:
registry entries and arena campaigns. A name is never a path, never markup, never two lines."""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # fullmatch only: `$` would let a final newline through
RULE = "use letters, digits, '.', '_' or '-' (at most 100), starting with a letter or digit"


def is_valid(name) -> bool:
    return isinstance(name, str) and NAME.fullmatch(name) is not None


def problem(name, what: str) -> str | None:
    """Why `name` cannot name a `what` (None: it can)."""
    return None if is_valid(name) else f"bad {what} name {name!r}: {RULE}"
