"""The web chat's server: streamed replies equal the engine's, every bad request is a JSON error with its status
(never a crash, fuzzed), a loading or failed model is a 503, a busy server a 429, an overlong message a 413."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nanochat_next.infer.engine import Engine
from nanochat_next.model.saving import load_trained
from nanochat_next.tokenizer.chat_template import render_for_reply

pytest.importorskip("fastapi", reason="serve needs the serve extra: pip install 'nanochat-next[serve]'")
from fastapi.testclient import TestClient  # noqa: E402

from nanochat_next.serve.app import ModelHolder, create_app  # noqa: E402

MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "modern-next"  # context 64


@pytest.fixture(scope="module")
def client():
    app = create_app(str(MODEL), "cpu", max_concurrent=1)
    app.state.holder.thread.join(timeout=60)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def chat(client, body) -> tuple[int, list[dict] | dict]:
    response = client.post("/chat", content=body if isinstance(body, (str, bytes)) else json.dumps(body))
    if response.status_code != 200:
        return response.status_code, response.json()
    assert response.headers["content-type"].startswith("text/event-stream")
    return 200, [json.loads(chunk.removeprefix("data: ")) for chunk in response.text.split("\n\n") if chunk]


def test_page_and_health(client):
    assert "nanochat-next" in client.get("/").text
    health = client.get("/health").json()
    assert health["status"] == "ready" and health["context"] == 64 and health["parameters"] > 0


def test_the_stream_is_the_engines_greedy_reply(client):
    messages = [{"role": "user", "content": "Who art thou?"}]
    status, events = chat(client, {"messages": messages, "temperature": 0, "max_tokens": 20})
    assert status == 200 and events[-1]["done"] and events[-1]["dropped"] == 0
    model, tokenizer, _ = load_trained(MODEL, "cpu")
    expected = Engine(model, tokenizer).generate_batch(render_for_reply({"messages": messages}, tokenizer), 20,
                                                       temperature=0.0)[0]
    assert events[-1]["tokens"] == expected
    assert "".join(e["token"] for e in events[:-1]) == tokenizer.decode(expected)


def test_old_turns_are_dropped_and_an_overlong_message_is_413(client):
    long_turns = [{"role": r, "content": "word " * 12} for _ in range(4) for r in ("user", "assistant")]
    status, events = chat(client, {"messages": [*long_turns, {"role": "user", "content": "hi"}], "max_tokens": 8})
    assert status == 200 and events[-1]["dropped"] > 0
    status, body = chat(client, {"messages": [{"role": "user", "content": "word " * 200}], "max_tokens": 8})
    assert status == 413 and "context of 64 tokens" in body["error"]


BAD = {
    "not json": (b"{nope", "must be JSON"),
    "not an object": ("[1, 2]", "JSON object"),
    "no messages": ({"text": "hi"}, "messages"),
    "bad role": ({"messages": [{"role": "robot", "content": "hi"}]}, "role"),
    "last is the assistant": ({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
                              "the last message must be the user's"),
    "empty message": ({"messages": [{"role": "user", "content": "  "}]}, "non-empty"),
    "temperature": ({"messages": [{"role": "user", "content": "a"}], "temperature": -1}, "temperature must be"),
    "max_tokens": ({"messages": [{"role": "user", "content": "a"}], "max_tokens": 0}, "max_tokens must be"),
    "top_k type": ({"messages": [{"role": "user", "content": "a"}], "top_k": "x"}, "top_k must be an integer"),
    "seed type": ({"messages": [{"role": "user", "content": "a"}], "seed": "abc"}, "seed must be an integer"),
    "huge seed": ({"messages": [{"role": "user", "content": "a"}], "seed": 2**70}, "seed must be between"),
    "nan temperature": ('{"messages": [{"role": "user", "content": "a"}], "temperature": NaN}', "temperature must"),
    "deep nesting": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_requests_are_400_with_the_reason(client, case):
    body, message = BAD[case]
    status, answer = chat(client, body)
    assert status == 400 and message in answer["error"]


def test_without_max_tokens_the_reply_fits_the_context(client):
    """The default reply budget is half the context (at most 256): with a context of 64, a plain request works
    (it was a 413 "needs 0 tokens" when the default equalled the context)."""
    status, events = chat(client, {"messages": [{"role": "user", "content": "hi"}], "temperature": 0})
    assert status == 200 and events[-1]["done"] and len(events[-1]["tokens"]) <= 32
    status, body = chat(client, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 64})
    assert status == 413 and "leaves no room for a message" in body["error"] and "at most 59" in body["error"]


def test_extreme_sampling_values_stream_to_the_end(client):
    """A temperature of 1e-300 overflowed logits / T into NaN after the 200 was sent (a dropped stream)."""
    for body in ({"temperature": 1e-300}, {"temperature": 5.0, "top_k": 0}, {"seed": 2**63 - 1}):
        status, events = chat(client, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, **body})
        assert status == 200 and events[-1].get("done"), (body, events[-1])


def test_a_failure_after_the_stream_started_ends_it_with_an_error_event(client, monkeypatch):
    def broken(self, *args, **kwargs):
        yield 5, "partial"
        raise RuntimeError("the model fell over")

    monkeypatch.setattr(Engine, "stream_pieces", broken)
    status, events = chat(client, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
    assert status == 200 and events[0] == {"token": "partial"}
    assert "the model fell over" in events[-1]["error"]


def test_a_body_over_the_limit_is_413(client):
    body = json.dumps({"messages": [{"role": "user", "content": "x" * 1_100_000}]})
    response = client.post("/chat", content=body)
    assert response.status_code == 413 and "at most 1,000,000" in response.json()["error"]


def test_a_long_history_is_trimmed_in_linear_time_and_health_answers_meanwhile(client):
    """10,001 messages took 95 s (the history was re-rendered after each dropped exchange, on the event loop, so
    /health stalled 33 s). Now each message is tokenized once, in a worker thread."""
    import time

    history = [{"role": r, "content": f"line {i} of a long chat"} for i in range(5000) for r in ("user", "assistant")]
    body = {"messages": [*history, {"role": "user", "content": "hi"}], "max_tokens": 2}
    answers = []
    worker = threading.Thread(target=lambda: answers.append(chat(client, body)))
    t0 = time.perf_counter()
    worker.start()
    health = client.get("/health")
    worker.join(60)
    assert health.status_code == 200 and health.json()["status"] == "ready"
    status, events = answers[0]
    assert status == 200 and events[-1]["dropped"] >= 4990  # all but the newest exchange or so
    assert time.perf_counter() - t0 < 30  # linear: ~1 s of tokenizing here (a quadratic trim took 95 s)


def test_fit_history_equals_rendering_the_kept_messages():
    from nanochat_next.tokenizer.chat_template import fit_history

    _, tokenizer, _ = load_trained(MODEL, "cpu")
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "one"},
                {"role": "assistant", "content": "two"}, {"role": "user", "content": "three"},
                {"role": "assistant", "content": "four"}, {"role": "user", "content": "five"}]
    whole = render_for_reply({"messages": messages}, tokenizer)
    assert fit_history(messages, tokenizer, len(whole)) == (whole, 0)
    kept = render_for_reply({"messages": messages[3:]}, tokenizer)
    assert fit_history(messages, tokenizer, len(whole) - 1) == (kept, 1)  # the system message went with turn 1
    assert fit_history(messages, tokenizer, 3)[0] is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(
                        ["messages", "role", "content", "temperature", "top_k", "max_tokens", "seed", "x"]), inner,
                        max_size=5), max_leaves=12))
@example({"messages": [{"role": "user", "content": "a"}], "temperature": 1e-300, "seed": 2**70})
@example({"messages": [{"role": "user", "content": "a"}], "temperature": float("inf"), "top_k": 2**64})
@example({"messages": [{"role": "user", "content": "a"}], "max_tokens": 3.0, "seed": -1})
def test_fuzzed_bodies_never_crash_the_server(client, body):
    if isinstance(body, dict) and isinstance(body.get("max_tokens"), int):
        body["max_tokens"] = min(body["max_tokens"], 4)  # keep any accepted request quick
    status, answer = chat(client, body)
    assert status in (200, 400, 413)
    if status == 200:  # an accepted request streams to its end: a done event, never an error or a cut
        assert answer[-1].get("done"), answer[-1]


def test_busy_server_answers_429(client):
    slots = client.app.state.slots
    client.portal.call(slots.acquire)
    try:
        status, body = chat(client, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
        assert status == 429 and "busy" in body["error"]
    finally:
        slots.release()


def test_a_loading_or_failed_model_is_503():
    gate = threading.Event()

    def slow():
        gate.wait(10)
        raise OSError("disk on fire")

    app = create_app(str(MODEL), holder=ModelHolder(str(MODEL), "cpu", loader=slow))
    with TestClient(app) as c:
        assert c.get("/health").json()["status"] == "loading"
        response = c.post("/chat", json={"messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 503 and "loading" in response.json()["error"]
        gate.set()
        app.state.holder.thread.join(10)
        response = c.post("/chat", json={"messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 503 and "disk on fire" in response.json()["error"]


def test_a_taken_port_is_one_error_line(capsys):
    import socket

    from nanochat_next.cli.main import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--checkpoint", str(MODEL), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: cannot listen on 127.0.0.1:{port}") and len(err.splitlines()) == 1
