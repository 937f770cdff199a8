"""A campaign's preference pairs written out: JSONL in TRL's preference format or a `datasets`
folder, with provenance (guidelines, target, the raters left out and why) beside them."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

from blindarena import quality
from blindarena.operations import rater_quality
from blindarena.pairs import build_pairs
from blindarena.records import StoreError
from blindarena.store import Store


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list: a spreadsheet reads such a cell as a formula


def spreadsheet_safe(value):
    """A CSV cell that no spreadsheet runs: text starting with =, +, -, @, tab or carriage return
    gets a leading ' (OWASP's "CSV injection" advice; Excel and LibreOffice then show it as text).
    Numbers stay numbers."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def file_stem(name: str) -> str:
    """A campaign name as a file name: never a path (no separators, no leading dot)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "campaign"


def write_votes_csv(votes: list[dict], path: Path) -> Path:
    """The votes as CSV for a spreadsheet, every text cell made formula-safe."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(votes[0]) if votes else ["id"])
        writer.writeheader()
        writer.writerows({key: spreadsheet_safe(value) for key, value in vote.items()} for vote in votes)
    return path


def check_export_target(out: Path) -> None:
    """The export's target can be written, and writing it mixes nothing in: a .jsonl file (replaced
    whole) in a folder we may write, or a new or empty folder for a `datasets` dataset."""
    if out.suffix == ".jsonl":
        if out.is_dir():
            raise StoreError(f"--out {out} is a folder; name a .jsonl file, or a folder without the suffix")
        folder = next((p for p in [out.parent, *out.parent.parents] if p.exists()), Path("."))
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise StoreError(f"--out {out}: cannot write in {folder}; choose a folder you can write to")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        what = "a file" if not out.is_dir() else "a folder that is not empty"
        raise StoreError(f"--out {out} is {what}; a `datasets` export needs a new or empty folder (or name a .jsonl file)")


def export_pairs(store: Store, name: str, out: str | Path, include_judge: bool = False) -> int:
    """The pairs written by `export` (see there): how many."""
    return export(store, name, out, include_judge)["pairs"]


def export(store: Store, name: str, out: str | Path, include_judge: bool = False) -> dict:
    """Write the campaign's pairs (people's votes only, unless `include_judge`; never gold checks,
    never the votes of raters left out) as JSONL in TRL's preference format (a .jsonl path) or as a
    `datasets` folder (any other path); provenance columns ride along (votes for and against,
    raters, source). Beside them, provenance.json (a .jsonl's sibling NAME.provenance.json) records
    the campaign's guidelines, its target and which raters were left out, and why. Returns that
    provenance (with `pairs` and `split_battles`)."""
    import hashlib

    out = Path(out)
    check_export_target(out)  # before the checks and the pairs are computed
    campaign = store.campaign(name)
    raters = rater_quality(store, name)
    left_out = quality.excluded_names(raters)
    rows, split = build_pairs(store.decisive_votes(name), name, include_judge, left_out)
    guidelines = campaign.settings.guidelines or ""
    digest = hashlib.sha256(guidelines.encode()).hexdigest() if guidelines else None
    rows = [{**p, "guidelines_sha256": digest} for p in rows]
    provenance = {"campaign": name, "models": campaign.models, "pairs": len(rows), "include_judge": include_judge,
                  "votes_per_battle": campaign.settings.votes_per_battle,
                  "guidelines": guidelines or None, "guidelines_sha256": digest,
                  "excluded_raters": [{"name": r["name"], "votes": r["votes"], "reasons": r["reasons"], "review": r["review"]}
                                      for r in raters if r["excluded"]],
                  "excluded_votes": sum(r["votes"] for r in raters if r["excluded"]),
                  "split_battles": split}
    try:
        write_export(out, rows, provenance)
    except OSError as exc:
        raise StoreError(f"--out {out} cannot be written ({exc.strerror or exc}); choose another path") from None
    return provenance


def write_export(out: Path, rows: list[dict], provenance: dict) -> None:
    """Both files appear whole or not at all. A .jsonl and its provenance are each written to a
    hidden temporary file and renamed into place, the provenance first, carrying the pairs' sha256:
    a kill between the two renames leaves a provenance that names pairs not (yet) there, which the
    hash shows, never a truncated file. A `datasets` folder is built whole in a hidden sibling
    folder, provenance.json inside, and renamed into place in one step. A killed run's leftovers
    are removed by the next run."""
    import hashlib
    import shutil

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".jsonl":
        text = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in rows).encode("utf-8")
        provenance = {**provenance, "pairs_file": out.name, "pairs_sha256": hashlib.sha256(text).hexdigest()}
        meta = out.with_name(out.stem + ".provenance.json")
        replace_whole(meta, json.dumps(provenance, indent=2, ensure_ascii=False).encode("utf-8"))
        replace_whole(out, text)
        return
    from datasets import Dataset

    staging = out.with_name(f".{out.name}.export-tmp")
    shutil.rmtree(staging, ignore_errors=True)  # a killed run's half-built folder
    Dataset.from_list(rows).save_to_disk(str(staging))
    (staging / "provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False), encoding="utf-8")
    if out.is_dir():
        out.rmdir()  # new or empty (check_export_target): the rename needs it gone
    staging.rename(out)


def replace_whole(path: Path, data: bytes) -> None:
    """Write `path` atomically: a hidden temporary file beside it, flushed to disk, renamed over it."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
