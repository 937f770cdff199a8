"""The project's one error family. Every error a user can cause (a bad file, a recipe, a name,
a server) is a WorkbenchError whose message says what was wrong and what to do, in one line;
the command lines catch this base class once (`cli`) and print it without a traceback."""

from __future__ import annotations

import sys
from typing import Callable


class WorkbenchError(Exception):
    """Base of the project's errors: the message is the whole story, for a person."""


class RecipeError(WorkbenchError, ValueError):
    """A training recipe or its command-line overrides that cannot be used."""


class SettingsError(WorkbenchError, ValueError):
    """A setting the environment or the flags must give and did not (an endpoint, a model)."""


def cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command line's main(); a WorkbenchError becomes `error: MESSAGE` on stderr and exit 2."""
    try:
        return main(argv)
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
