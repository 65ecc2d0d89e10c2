"""The clients that are not Python (clients/): the Node script (onnxruntime-node) and the web page in a real
headless Chromium (onnxruntime-web + tokenizers.js) give our engine's greedy tokens from the ONNX export, and
tokenizers.js encodes as our tokenizer does (special-token strings in text: as our allow_special=True).

Needs node, `npm ci` in clients/ and, for the page, Debian's chromium + the playwright package (.ci/run installs
all of them); each test says which is missing when it skips."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from nanochat_next.export.formats import tokenizer_texts
from nanochat_next.tokenizer.bpe import BPETokenizer

CLIENTS = Path(__file__).resolve().parents[2] / "clients"
pytestmark = pytest.mark.slow


def need_node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (CLIENTS / "node_modules" / "onnxruntime-node").is_dir():
        pytest.skip("the clients' packages are not installed: cd clients && ONNXRUNTIME_NODE_INSTALL=skip npm ci")
    return node


def test_node_script_generates_our_greedy_tokens(gold, onnx_exports):
    node = need_node()
    result = subprocess.run([node, "node/generate.mjs", str(onnx_exports[gold.name]), gold.prompt,
                             "--max-new-tokens", "24", "--json"], cwd=CLIENTS, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["prompt_ids"] == gold.prompt_ids and out["tokens"] == gold.greedy


def test_typed_special_tokens_are_plain_text_in_every_client(gold, onnx_exports):
    """The Node script and the page (one encodePrompt) read a typed "<|assistant_end|>" as text, as sample, chat
    and serve do (tokenizers.js alone would read it as the special token)."""
    node = need_node()
    prompt = "<|bos|> hi <|assistant_end|><|user_start|>x<|nope|>"
    result = subprocess.run([node, "node/generate.mjs", str(onnx_exports[gold.name]), prompt, "--max-new-tokens", "1",
                             "--json"], cwd=CLIENTS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    tokenizer = BPETokenizer.load(gold.path / "tokenizer")
    ids = json.loads(result.stdout)["prompt_ids"]
    assert ids == tokenizer.encode(prompt, prepend_bos=True)
    assert ids.count(tokenizer.bos_id) == 1 and tokenizer.special_id("<|assistant_end|>") not in ids


def test_node_script_fails_in_one_line_on_a_missing_export(tmp_path):
    node = need_node()
    result = subprocess.run([node, "node/generate.mjs", str(tmp_path), "hi"], cwd=CLIENTS, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1 and result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1


def test_tokenizers_js_encodes_as_we_do(golden_root, shakespeare_text, tmp_path):
    node = need_node()
    from nanochat_next.export.hf_tokenizer import write_hf_tokenizer

    tokenizer = BPETokenizer.load(golden_root / "modern-next" / "tokenizer")
    write_hf_tokenizer(tokenizer, tmp_path, 64)
    texts = [*tokenizer_texts(), shakespeare_text[-20_000:]]
    (tmp_path / "texts.json").write_text(json.dumps(texts))
    script = ("import { Tokenizer } from '@huggingface/tokenizers'; import { readFileSync } from 'node:fs';"
              f"const dir = {json.dumps(str(tmp_path))};"
              "const read = (n) => JSON.parse(readFileSync(dir + '/' + n, 'utf8'));"
              "const t = new Tokenizer(read('tokenizer.json'), read('tokenizer_config.json'));"
              "const ids = read('texts.json').map((s) => t.encode(s, {add_special_tokens: false}).ids);"
              "console.log(JSON.stringify(ids));")
    result = subprocess.run([node, "--input-type=module", "-e", script], cwd=CLIENTS, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    theirs = json.loads(result.stdout)
    # tokenizers.js always matches special-token strings in text: our allow_special=True (identical without them)
    assert [t for t, ids in zip(texts, theirs) if ids != tokenizer.encode(t, allow_special=True)] == []
    assert theirs[texts.index("<|bos|> is plain text here <|user_start|>")][0] == tokenizer.bos_id


@pytest.fixture(scope="module")
def site(onnx_exports, tmp_path_factory):
    """A static server over clients/ (page + node_modules) with the exports under /models/NAME/."""
    root = tmp_path_factory.mktemp("site")
    (root / "web").symlink_to(CLIENTS / "web")
    (root / "node_modules").symlink_to(CLIENTS / "node_modules")
    (root / "models").mkdir()
    for name, directory in onnx_exports.items():
        (root / "models" / name).symlink_to(directory)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_the_web_page_streams_our_greedy_tokens_in_chromium(gold, site, chromium_page):
    from urllib.parse import quote

    need_node()
    page = chromium_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{site}/web/index.html?model=/models/{gold.name}/&prompt={quote(gold.prompt)}&n=24&auto=1")
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#status")
    assert page.evaluate("window.promptIds") == gold.prompt_ids
    assert page.evaluate("window.generated") == gold.greedy
    assert errors == []
    assert page.inner_text("#output").startswith(gold.prompt.rstrip("\n"))


def test_the_web_page_says_when_the_export_is_missing(site, chromium_page):
    need_node()
    page = chromium_page
    page.goto(f"{site}/web/index.html?model=/models/nothing/")
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    assert "HTTP 404" in page.inner_text("#status") and "--to onnx" in page.inner_text("#status")


def test_a_user_types_a_prompt_and_clicks_generate(site, next_gold, chromium_page):
    need_node()
    gold, page = next_gold, chromium_page
    page.goto(f"{site}/web/index.html?model=/models/{gold.name}/")
    page.wait_for_function("document.body.dataset.state === 'ready'", timeout=30_000)
    page.fill("#prompt", gold.prompt)
    page.fill("#tokens", "24")
    page.click("#go")
    page.wait_for_function("document.body.dataset.state === 'done'", timeout=30_000)
    assert page.evaluate("window.generated") == gold.greedy
    assert page.inner_text("#status").startswith(f"{len(gold.greedy)} tokens in")
