"""A campaign's preference pairs written out: JSONL in TRL's preference format or a `datasets`
folder, with provenance (guidelines, target, the raters left out and why) beside them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from evals import quality
from evals.arena import rater_quality
from evals.pairs import build_pairs
from evals.records import StoreError
from evals.store import Store


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
    if out.suffix == ".jsonl":
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in rows), encoding="utf-8")
        tmp.replace(out)
        out.with_name(out.stem + ".provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False))
    else:
        from datasets import Dataset

        Dataset.from_list(rows).save_to_disk(str(out))
        (out / "provenance.json").write_text(json.dumps(provenance, indent=2, ensure_ascii=False))
