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


class FaultError(WorkbenchError):
    """A fault outside the user's doing (a damaged database, a disk that refuses a write): the
    command lines exit 1 for it rather than 2."""


def cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a command line's main() and say any failure in one line on stderr, never a traceback:
    a user's mistake (WorkbenchError) exits 2, a fault (FaultError, a damaged SQLite file) 1, a
    file the system refuses (OSError) 2 with its path, Ctrl-C 130."""
    import sqlite3

    try:
        return main(argv)
    except FaultError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except WorkbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except sqlite3.DatabaseError as exc:
        print(f"error: the arena database could not be read ({exc}); restore it from a backup "
              "(scripts/arena.py backup makes one)", file=sys.stderr)
        return 1
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}; check the path and its permissions", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); what was saved is kept", file=sys.stderr)
        return 130
