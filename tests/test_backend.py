"""The generation backend and the API client against a local fake OpenAI-compatible server (what
vLLM / SGLang / an API look like from here): a campaign, the demo stream through a real Gradio
server and an evaluation run through it; a server missing an adapter is refused before anything
is stored; scripts/serve.py names every adapter; the client's concurrency, rate limit and
Retry-After are measured."""

import importlib.util
import json
import time

import pytest

from conftest import ROOT
from blindarena import operations as arena
from blindarena.store import Store
from posttrain.fake_openai import FakeOpenAI, reply_text
from posttrain.backend import OpenAIGenerator, make_generator
from posttrain.chat_api import APIError, ChatClient
from posttrain.engine import EngineError, SamplingParams

PROMPTS = [{"question_id": i, "category": "misc", "prompt": f"question number {i}"} for i in range(1, 5)]


def script(name):
    spec = importlib.util.spec_from_file_location(f"{name}_script", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_campaign_through_the_server_with_sampling_passed_through(tiny_registry, tmp_path):
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"]) as server:
        generator = make_generator(tiny_registry, "tiny", backend="openai", base_url=server.url)
        assert isinstance(generator, OpenAIGenerator)
        store = Store(tmp_path / "arena.sqlite")
        params = SamplingParams(max_new_tokens=40, temperature=0.8, top_p=0.9, seed=7)
        arena.create_campaign(store, generator, "served", ["ad-a", "ad-b", "tiny"], PROMPTS, params)
        answers = store.answers("served")
        assert len(answers) == 12
        for answer in answers:
            served_name = "tiny" if answer["model"] in ("tiny", "__base__") else answer["model"]
            assert answer["text"] == f"[{served_name}] reply to: {answer['prompt']}"
        bodies = [body for _, _, body in server.requests]
        assert {(b["temperature"], b["top_p"], b["seed"], b["max_tokens"]) for b in bodies} == {(0.8, 0.9, 7, 40)}

    # Both sides of a battle go out at once: the server holds each reply until both are in flight.
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"], hold_until=2) as server:
        generator = make_generator(tiny_registry, "tiny", backend="openai", base_url=server.url)
        a, b = generator.battle("hello", "ad-a", "ad-b", SamplingParams(max_new_tokens=8, temperature=0))
        assert server.peak_in_flight == 2
        assert (a.text, b.text) == ("[ad-a] reply to: hello", "[ad-b] reply to: hello")


def test_a_server_missing_an_adapter_is_refused_before_anything_is_stored(tiny_registry, tmp_path):
    with FakeOpenAI(served=["tiny", "ad-a"]) as server:
        generator = make_generator(tiny_registry, "tiny", backend="openai", base_url=server.url)
        store = Store(tmp_path / "arena.sqlite")
        with pytest.raises(EngineError, match="does not serve 'ad-b'.*serve.py vllm-command"):
            arena.create_campaign(store, generator, "broken", ["ad-a", "ad-b"], PROMPTS, SamplingParams())
        assert store.campaigns() == [] and server.requests == []
        assert script("serve")(["--registry", str(tiny_registry.root), "--base", "tiny", "check", "--url", server.url]) == 1
    with pytest.raises(EngineError, match="needs GENERATION_BASE_URL"):
        make_generator(tiny_registry, "tiny", backend="openai", base_url="")


def test_serve_prints_a_vllm_command_naming_every_adapter(tiny_registry, capsys):
    assert script("serve")(["--registry", str(tiny_registry.root), "--base", "tiny", "vllm-command"]) == 0
    command = capsys.readouterr().out.strip()
    assert command.startswith("vllm serve ") and "--served-model-name tiny" in command and "--enable-lora" in command
    for name in ("ad-a", "ad-b"):
        assert f"{name}={tiny_registry.get(name).path.resolve()}" in command
    assert "--max-lora-rank 8" in command  # r=4 rounded up to a rank vLLM accepts
    assert script("serve")(["--registry", str(tiny_registry.root), "--base", "tiny", "sglang-command"]) == 0
    assert "--lora-paths ad-a=" in capsys.readouterr().out
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"]) as server:
        assert script("serve")(["--registry", str(tiny_registry.root), "--base", "tiny", "check", "--url", server.url]) == 0


def test_demo_streams_through_the_server_in_the_real_app(tiny_registry, tmp_path):
    from gradio_client import Client

    from arena_fixtures import launch
    from blindarena.ui import ArenaConfig

    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"]) as server:
        config = ArenaConfig(registry_dir=tiny_registry.root, data_dir=tmp_path / "data", base="tiny", admin_password="pw",
                             public_demo=True, quantize=False, generation_backend="openai", generation_base_url=server.url)
        site = launch(config, Store(config.data_dir / "arena.sqlite"))
        try:
            job = Client(site.url, verbose=False).submit("", "ad-a", "ad-b", "tell me a story", 16, 0.7, 3,
                                                          api_name="/side_by_side")
            updates = list(job)  # streamed (Gradio may merge partial updates, so their number is not asserted)
            left, right, _ = job.result()
        finally:
            site.ui.close()
        assert left == "[ad-a] reply to: tell me a story" and right == "[ad-b] reply to: tell me a story"
        assert updates and all(left.startswith(u[0]) and right.startswith(u[1]) for u in updates)
        assert all(body.get("stream") for _, _, body in server.requests)


def test_evaluation_runs_through_the_server(tiny_registry, tmp_path):
    with FakeOpenAI(served=["tiny", "ad-a", "ad-b"]) as server:
        out = tmp_path / "report"
        assert script("evaluate")(["--registry", str(tiny_registry.root), "--base", "tiny", "--models", "ad-a", "ad-b",
                                   "--judge", "none", "--data-dir", str(tmp_path / "data"), "--out", str(out),
                                   "--generation-backend", "openai", "--generation-base-url", server.url]) == 0
        summary = json.loads((out / "metrics.json").read_text())
        assert summary["metrics"] == {"ad-a": {}, "ad-b": {}}  # no teacher forcing through a server
        sample = summary["samples"][0]
        assert sample["answers"]["ad-a"] == reply_text({"model": "ad-a", "messages": [{"content": sample["prompt"]}]})
        assert "n/a" in (out / "report.md").read_text()


def test_client_runs_requests_in_parallel_under_the_rate_limit_and_honours_retry_after(tmp_path):
    body = lambda i: {"model": "m", "messages": [{"role": "user", "content": f"q{i}"}], "max_tokens": 5}
    with FakeOpenAI(hold_until=32) as server:  # no reply until 32 requests are in flight together
        replies = ChatClient(server.url, concurrency=32).complete_many([body(i) for i in range(64)])
        assert server.peak_in_flight == 32  # and never more than the client's concurrency
        assert [r["text"] for r in replies] == [f"[m] reply to: q{i}" for i in range(64)]  # in order
    with FakeOpenAI() as server:  # 600/min: a burst of 10, then 10 a second
        started = time.monotonic()
        ChatClient(server.url, concurrency=32, requests_per_minute=600).complete_many([body(i) for i in range(30)])
        assert time.monotonic() - started >= 1.8
    with FakeOpenAI(throttle_first=2, retry_after=0.3) as server:
        started = time.monotonic()
        assert ChatClient(server.url, backoff=0.01).complete(body(0))["text"] == "[m] reply to: q0"
        assert time.monotonic() - started >= 0.6  # waited the server's Retry-After twice, not the 0.01 backoff
    with FakeOpenAI(served=["m"]) as server:  # a 404 is not retried, and says why
        with pytest.raises(APIError, match="HTTP 404 after 1 attempts.*does not exist"):
            ChatClient(server.url).complete({**body(0), "model": "other"})


def test_client_cache_makes_a_rerun_free(tmp_path):
    body = {"model": "m", "messages": [{"role": "user", "content": "once"}]}
    with FakeOpenAI() as server:
        first = ChatClient(server.url, cache=tmp_path / "cache.sqlite").complete(body)
        again = ChatClient(server.url, cache=tmp_path / "cache.sqlite").complete(body)
        assert first == again and len(server.requests) == 1
