"""The web chat in a real headless Chromium: type a question, see the streamed answer equal the engine's greedy
answer; an error from the server shows in the page and the chat goes on."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from nanochat_next.infer.engine import Engine
from nanochat_next.model.saving import load_trained
from nanochat_next.tokenizer.chat_template import render_for_reply

uvicorn = pytest.importorskip("uvicorn", reason="serve needs the serve extra: pip install 'nanochat-next[serve]'")
pytestmark = pytest.mark.slow
MODEL = Path(__file__).resolve().parents[1] / "fixtures" / "golden" / "modern-next"


@pytest.fixture(scope="module")
def server():
    from nanochat_next.serve.app import create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(str(MODEL), "cpu")
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def ask(page, text: str) -> None:
    """Send a message; return once its reply (window.lastReply) or an error note has arrived."""
    notes = page.evaluate("window.lastReply = undefined; document.querySelectorAll('.note').length")
    page.fill("#input", text)
    page.click("#send")
    page.wait_for_function(f"document.body.dataset.state === 'ready' && (window.lastReply !== undefined "
                           f"|| document.querySelectorAll('.note').length > {notes})", timeout=60_000)


def test_a_question_gets_the_engines_greedy_answer_streamed(server, chromium_page):
    page = chromium_page
    page.goto(server)
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=60_000)
    page.evaluate("window.forceGreedy = true")
    page.fill("#maxtokens", "16")
    ask(page, "Who art thou?")
    model, tokenizer, _ = load_trained(MODEL, "cpu")
    prompt = render_for_reply({"messages": [{"role": "user", "content": "Who art thou?"}]}, tokenizer)
    expected = Engine(model, tokenizer).generate_batch(prompt, 16, temperature=0.0)[0]
    assert page.evaluate("window.lastReply.tokens") == expected
    assert page.inner_text(".assistant") == tokenizer.decode(expected)
    assert "modern model" in page.inner_text("#status")


def test_an_error_shows_in_the_page_and_the_chat_goes_on(server, chromium_page):
    page = chromium_page
    page.goto(server)
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=60_000)
    page.fill("#maxtokens", "60")  # with a context of 64, a long message cannot fit
    ask(page, "word " * 40)
    assert "error:" in page.inner_text(".note") and "context" in page.inner_text(".note")
    page.fill("#maxtokens", "4")
    page.evaluate("window.forceGreedy = true")
    ask(page, "hi")
    assert page.evaluate("window.lastReply.done") is True


def test_the_page_recovers_from_a_network_error(server, chromium_page):
    """After "Failed to fetch" the Send button stayed disabled for good (only a reload helped). Here the network
    drops for one request: the page says so, and the next question is answered."""
    page = chromium_page
    page.goto(server)
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=60_000)
    page.evaluate("window.forceGreedy = true")
    page.fill("#maxtokens", "4")
    page.route("**/chat", lambda route: route.abort("internetdisconnected"))  # the server is unreachable
    ask(page, "hi")
    assert "error:" in page.inner_text(".note") and not page.is_disabled("#send")
    assert page.locator(".assistant").count() == 0 and page.locator(".user").count() == 1
    page.unroute("**/chat")  # the server is back
    ask(page, "hello")
    assert page.evaluate("window.lastReply.done") is True and not page.is_disabled("#send")
