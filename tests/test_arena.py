"""The arena through its public surfaces: a real Gradio server, gradio_client raters, the
command line, and a server killed between votes."""

import json
import os
import signal
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from arena_fixtures import MODELS, PASSWORD, launch, make_arena, start_app
from conftest import ROOT
from blindarena import operations as arena
from blindarena.operations import check_blind_name
from blindarena.export import export_pairs
from blindarena.store import StoreError


@pytest.fixture()
def site(tmp_path, tiny_dir):
    config, store = make_arena(tmp_path, tiny_dir, prompts=6)
    site = launch(config, store)
    yield site
    site.ui.close()


def no_model_names(text: str) -> bool:
    return not any(name in text for name in MODELS)


def test_twenty_concurrent_raters_lose_no_vote(site):
    from gradio_client import Client

    def rate(i: int) -> list[str]:
        client = Client(site.url, verbose=False)
        outputs = client.predict("tasting", f"rater-{i}", "", api_name="/start")
        seen = [json.dumps(outputs)]
        for _ in range(3):
            client.predict(["A is better", "B is better", "Tie"][i % 3], None, None, "", "", api_name="/vote")
            seen.append(json.dumps(client.predict(api_name="/next")))  # the next battle, before its vote
        return seen

    with ThreadPoolExecutor(max_workers=20) as pool:
        shown = [payload for result in pool.map(rate, range(20)) for payload in result]
    votes = site.store.votes("tasting")
    assert len(votes) == 60
    assert len({(v["rater"], v["battle_id"]) for v in votes}) == 60
    assert all(no_model_names(payload) for payload in shown)


def test_nothing_before_a_vote_names_a_model(site):
    from gradio_client import Client

    page = urllib.request.urlopen(site.url).read().decode()
    config = urllib.request.urlopen(site.url + "config").read().decode()
    info = urllib.request.urlopen(site.url + "gradio_api/info").read().decode()
    assert no_model_names(page) and no_model_names(config) and no_model_names(info)
    client = Client(site.url, verbose=False)
    started = client.predict("tasting", "eve", "", api_name="/start")
    assert no_model_names(json.dumps(started))
    after = client.predict("B is better", None, None, "", "", api_name="/vote")
    reveal = after[4]
    assert "zebra-one" in reveal and "zebra-two" in reveal  # revealed only after the vote
    assert after[1:4] == tuple(started[1:4])  # the battle stays, to match the names with the answers
    label_a, label_b = after[-2:]  # each model's name above its side, the rater's choice marked
    assert {label_a.split(": ")[1].split("*")[0], label_b.split(": ")[1].split("*")[0]} == set(MODELS)
    assert "your choice" in label_b and "your choice" not in label_a
    assert no_model_names(json.dumps(started)) and "A" == started[-2].strip("*")
    following = client.predict(api_name="/next")
    assert following[1] and no_model_names(json.dumps(following)) and following[-2:] == ("**A**", "**B**")


def test_admin_endpoints_are_not_reachable_by_raters(site):
    from gradio_client import Client

    client = Client(site.url, verbose=False)
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/start", "/vote", "/next", "/campaigns", "/ask"}
    with pytest.raises(StoreError, match="contains model name"):
        check_blind_name("zebra-one-vs-two", MODELS)


def test_server_killed_between_votes_loses_nothing(tmp_path, tiny_dir):
    from gradio_client import Client

    config, store = make_arena(tmp_path, tiny_dir)
    env = {**os.environ, "REGISTRY_DIR": str(config.registry_dir), "ARENA_DATA_DIR": str(config.data_dir),
           "BASE_MODEL": "tiny", "ADMIN_PASSWORD": PASSWORD}

    command = [sys.executable, str(ROOT / "app.py")]
    server, port = start_app(command, env, tmp_path)
    client = Client(f"http://127.0.0.1:{port}/", verbose=False)
    client.predict("tasting", "kim", "", api_name="/start")
    for _ in range(2):
        client.predict("A is better", None, None, "", "", api_name="/vote")
        client.predict(api_name="/next")
    server.send_signal(signal.SIGKILL)
    server.wait()
    assert len(store.votes("tasting")) == 2
    server, port = start_app(command, env, tmp_path)
    try:
        resumed = Client(f"http://127.0.0.1:{port}/", verbose=False).predict("tasting", "kim", "", api_name="/start")
        assert "<progress value='2' max='4'></progress> <b>battle 3 of 4</b>" == resumed[0]
    finally:
        server.kill()
        server.wait()


def test_cli_results_and_pair_export_load_with_datasets(tmp_path, tiny_dir):
    from datasets import load_dataset

    config, store = make_arena(tmp_path, tiny_dir)
    rater = arena.join(store, "tasting", "ann")
    for choice in ["left", "right", "tie", "left"]:
        store.vote(rater, store.next_assignment(rater).battle_id, choice)
    base = [sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(config.data_dir),
            "--registry", str(config.registry_dir), "--base", "tiny"]
    listed = json.loads(subprocess.run(base + ["campaign", "list", "--json"], capture_output=True, text=True, check=True).stdout)
    assert listed[0]["name"] == "tasting" and listed[0]["votes"] == 4
    res = json.loads(subprocess.run(base + ["results", "tasting", "--json"], capture_output=True, text=True, check=True).stdout)
    assert res["human_votes"] == 4 and {r["model"] for r in res["bradley_terry"]} == set(MODELS)
    (pair,) = res["win_rates"]
    assert pair["wins"] + pair["losses"] + pair["ties"] == 4 and pair["ties"] == 1
    out = tmp_path / "pairs.jsonl"
    subprocess.run(base + ["export-pairs", "tasting", "--out", str(out)], check=True, capture_output=True)
    loaded = load_dataset("json", data_files=str(out), split="train")
    assert len(loaded) == 3 and set(loaded.column_names) >= {"prompt", "chosen", "rejected"}
    assert export_pairs(store, "tasting", tmp_path / "pairs_ds") == 3


def test_cli_creates_a_campaign(tmp_path, tiny_dir):
    config, _ = make_arena(tmp_path, tiny_dir)
    prompts = tmp_path / "question.jsonl"  # the MT-Bench schema
    prompts.write_text(json.dumps({"question_id": 81, "category": "writing", "turns": ["Write a haiku.", "Now longer."]}) + "\n")
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "arena.py"), "--data-dir", str(config.data_dir),
                          "--registry", str(config.registry_dir), "--base", "tiny", "campaign", "create", "haiku",
                          "--models", *MODELS, "--prompts", str(prompts), "--max-new-tokens", "4", "--no-4bit", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout)["status"] == "ready"
