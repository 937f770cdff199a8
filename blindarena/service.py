"""The arena's one front door: `Arena(store, registry, generator)` owns every operation the command
line (`scripts/arena.py`) and the app (`blindarena/ui/`) offer: creating a campaign (every check,
the size guard included), resuming, deleting, joining, the next battle, voting, open battles,
results (one read snapshot), pairs and their export, and the next round. Both front ends only
parse or render and call it, so they refuse the same things in the same words. It keeps the
rater-check cache (operations.RaterChecks) as its own state; the operations themselves are plain
functions over a store in blindarena/operations.py. Knows nothing of Gradio or argparse."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from blindarena import open_battles, operations
from blindarena.export import export as export_campaign
from blindarena.prompts import DEFAULT_PROMPTS, answers_needed, load_gold, load_guidelines, load_prompts
from blindarena.records import SAMPLING, Assignment, CampaignSettings, StoreError
from blindarena.store import Store
from posttrain.backend import Generator
from posttrain.engine import SamplingParams

MAX_ANSWERS = operations.MAX_ANSWERS


@dataclass(frozen=True)
class NewCampaign:
    """A campaign as the command line's flags and the Admin form ask for it, before any check.
    `prompts_file` None: the 50 held-out prompts (an open campaign takes none); `settings`: the
    rating settings (votes per battle, allocation, gold rate, open-battle caps, ...) without the
    gold checks, guidelines and identity words, which come from `gold_file`, `guidelines_file`
    and `identity_words` (beside the models' names, their family and lab)."""

    name: str
    models: tuple[str, ...]
    prompts_file: str | None = None
    sampling: dict = field(default_factory=lambda: dict(SAMPLING))
    settings: CampaignSettings = field(default_factory=CampaignSettings)
    gold_file: str | None = None
    guidelines_file: str | None = None
    identity_words: tuple[str, ...] = ()
    max_answers: int = MAX_ANSWERS
    source: str | None = None  # what the campaign records as its prompts' source (default: the file's path)


@dataclass(frozen=True)
class CheckedCampaign:
    """A campaign that passed every check: what `Arena.create` generates and stores."""

    name: str
    models: list[str]
    prompts: list[dict]
    dropped: int  # exact repeats of a prompt, dropped
    params: SamplingParams
    settings: CampaignSettings
    source: str
    answers: int  # answers to generate
    estimate: str  # a rough time for them


class Arena:
    """The arena over one store. `registry` and `generator` (a factory: the model loads on first
    use) are needed by what generates or trains: campaigns, open battles, the next round."""

    def __init__(self, store: Store, registry=None, generator: Callable[[], Generator] | None = None,
                 base: str | None = None, backend: str = "engine"):
        self.store, self.registry, self.base, self.backend = store, registry, base, backend
        self._generator = generator
        self.checks = operations.RaterChecks()
        self._results: dict = {}  # campaign -> (vote stamp, (results, votes)): cached_results
        self.embed = operations.minilm()  # open campaigns' near-duplicate rule and the topics, loaded on first use
        self._lock = threading.Lock()

    def generator(self) -> Generator:
        if self._generator is None:
            raise StoreError("this arena has no model to answer with (no generator was given)")
        return self._generator()

    # ---- campaigns -------------------------------------------------------------------------------
    def check(self, request: NewCampaign) -> CheckedCampaign:
        """Every check a new campaign passes before any model loads, for the command line and the
        Admin form alike: the sampling values, an open campaign without a prompt file, the prompt,
        gold and guideline files, the name (the naming rule, no model's name in it, not taken), two
        or more models the registry can run, and the size guard (`max_answers`)."""
        from posttrain.registry import check_models

        name, models, open_campaign = (request.name or "").strip(), list(request.models or ()), request.settings.open
        params = SamplingParams(**{**SAMPLING, **request.sampling})  # refuses a bad value with its name
        if open_campaign and request.prompts_file:
            raise StoreError("an open campaign takes no prompt file: raters ask their own questions")
        prompts = [] if open_campaign else load_prompts(request.prompts_file or DEFAULT_PROMPTS)
        prompts, dropped = operations.unique_prompts(prompts)
        answers = answers_needed(prompts, models) if prompts else 0
        estimate = operations.estimate(answers, params.max_new_tokens, self.backend)
        operations.check_new_campaign(self.store, name, models, prompts, request.max_answers, estimate)
        words = operations.default_identity_words(self.registry, self.base, models, request.identity_words) \
            if self.registry is not None else list(request.identity_words)
        settings = replace(request.settings, gold=tuple(load_gold(request.gold_file)) if request.gold_file else (),
                           guidelines=load_guidelines(request.guidelines_file) if request.guidelines_file else "",
                           system=(request.settings.system or "").strip(), identity_words=tuple(words))
        if self.backend == "engine" and self.registry is not None:
            check_models(self.registry, self.base, models)
        source = "open" if open_campaign else request.source or str(request.prompts_file or "data/heldout_prompts.jsonl")
        return CheckedCampaign(name, models, prompts, dropped, params, settings, source, answers, estimate)

    def create(self, campaign: CheckedCampaign, progress: Callable[[int, int], None] | None = None) -> dict:
        """Store the checked campaign and generate every answer once (saved batch by batch: an
        interrupted creation is finished by `resume`)."""
        made = operations.create_campaign(self.store, self.generator(), campaign.name, campaign.models, campaign.prompts,
                                          campaign.params, source=campaign.source, progress=progress,
                                          settings=campaign.settings)
        return {**made, "dropped_prompts": campaign.dropped}

    def resume(self, name: str, progress: Callable[[int, int], None] | None = None) -> dict | None:
        """Generate an interrupted campaign's missing answers; None when it is ready already."""
        if self.store.campaign(name).status == "ready":
            return None
        return operations.generate_missing(self.store, self.generator(), name, progress=progress)

    def delete(self, name: str, force: bool = False) -> int:
        """Delete a campaign with its answers; one that holds votes only with `force` (export or
        back them up first). Returns the votes deleted with it."""
        votes = self.store.vote_stamp(name)[0]
        if votes and not force:
            raise StoreError(f"campaign {name!r} holds {votes} votes; export or back them up first "
                             "(export-pairs, backup), then delete it anyway (--force)")
        self.store.delete_campaign(name)
        return votes

    # ---- raters --------------------------------------------------------------------------------
    def join(self, campaign: str, name: str, role: str = "human") -> int:
        return operations.join(self.store, campaign, name, role)

    def join_by_invite(self, campaign: str, token: str) -> int:
        return operations.join_by_invite(self.store, campaign, token)

    def excluded_raters(self, campaign: str) -> tuple[frozenset[str], frozenset[int]]:
        return self.checks.excluded(self.store, campaign)

    def next_battle(self, campaign: str, rater_id: int) -> Assignment | None:
        return operations.next_battle(self.store, campaign, rater_id, self.checks)

    def progress(self, campaign: str, rater_id: int) -> tuple[int, int]:
        return operations.progress(self.store, campaign, rater_id, self.checks)

    def is_complete(self, campaign: str) -> bool:
        return operations.is_complete(self.store, campaign, checks=self.checks)

    def vote(self, campaign: str, rater_id: int, battle_id: int, choice: str, **details) -> dict:
        """A rater's vote (details: score_left, score_right, edited, comment) under the campaign's
        limits; returns the battle's model names for the reveal."""
        return operations.cast_vote(self.store, campaign, rater_id, battle_id, choice, checks=self.checks, **details)

    def ask(self, campaign: str, rater_id: int, battle_id: int | None, text: str):
        """An open battle's next user turn, both answers streaming (open_battles.ask)."""
        return open_battles.ask(self.store, self.generator(), campaign, rater_id, battle_id, text)

    # ---- results, pairs, the next round --------------------------------------------------------
    def results(self, name: str, rounds: int = 200, **rules) -> dict:
        """Everything the Results tab and `results --json` show, read from one snapshot; `rules`:
        ties (half, rao-kupper, davidson), min_games and max_width (the provisional rule)."""
        with self.store.one_snapshot():
            return operations.results(self.store, name, rounds, embed=self.embed, **rules)

    def results_with_votes(self, name: str, rounds: int = 200, **rules) -> tuple[dict, list[dict]]:
        """The results and every vote as a row (the Results tab's CSV and timeline), one snapshot."""
        with self.store.one_snapshot():
            votes = [{**dict(v), "rater_kind": v.rater_role} for v in self.store.votes(name)]  # the CSV's earlier column too
            return operations.results(self.store, name, rounds, embed=self.embed, **rules), votes

    def cached_results(self, name: str) -> tuple[dict, list[dict]]:
        """results_with_votes, kept per campaign until its vote stamp (votes, the last vote, the
        reviews) changes: showing the same results again costs two small reads."""
        stamp = (self.store.campaign(name).id, self.store.vote_stamp(name))  # a campaign made again under its name differs
        with self._lock:
            hit = self._results.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        shown = self.results_with_votes(name, topics=None)  # topics where no prompt has a category
        with self._lock:
            self._results[name] = (stamp, shown)
            while len(self._results) > 16:
                self._results.pop(next(iter(self._results)))
        return shown

    def pairs(self, name: str, include_judge: bool = False) -> list[dict]:
        with self.store.one_snapshot():
            return operations.pairs(self.store, name, include_judge)

    def export_pairs(self, name: str, out: str | Path, include_judge: bool = False) -> dict:
        """Write the campaign's pairs (blindarena.export); returns their provenance."""
        with self.store.one_snapshot():
            return export_campaign(self.store, name, out, include_judge=include_judge)

    def pairs_and_export(self, name: str, out: str | Path) -> tuple[list[dict], dict]:
        """The pairs the Pairs tab shows and the file it offers, from one snapshot."""
        with self.store.one_snapshot():
            return operations.pairs(self.store, name), export_campaign(self.store, name, out)

    def set_consent(self, rater_id: int, consent: bool) -> None:
        self.store.set_consent(rater_id, consent)

    def release(self, name: str, out: str | Path, license: str = "cc-by-4.0", push: str | None = None,
                reviewed: str | None = None) -> dict:
        """The consenting raters' votes as a releasable dataset (blindarena.release), one snapshot."""
        from blindarena.release import release

        with self.store.one_snapshot():
            return release(self.store, name, out, license, push, reviewed)

    def release_dry_run(self, name: str) -> dict:
        """What a release of the campaign would carry, for the admin only (blindarena.release.dry_run)."""
        from blindarena.release import dry_run

        with self.store.one_snapshot():
            return dry_run(self.store, name)

    def next_round(self, campaign: str, parent: str, child: str, prompts_file: str | Path, out_dir: str | Path,
                   progress: Callable[[str], None] | None = None, **round_settings) -> dict:
        """The closed loop's round (blindarena.loop.next_round: pairs -> training -> child -> its
        campaign against the parent); round_settings: max_steps, recipe, settings, method, extra_pairs."""
        from blindarena.loop import next_round

        if self.registry is None:
            raise StoreError("the next round needs the registry")
        return next_round(self.store, self.registry, self.generator, campaign, parent, child, prompts_file, out_dir,
                          progress=progress, **round_settings)
