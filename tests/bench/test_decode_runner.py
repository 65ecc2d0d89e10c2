"""The decode runner each side of the benchmark runs in its own process: our cached and uncached decodes of the
same weights give the same greedy tokens, and the output is the one JSON line the harness reads."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import torch

from nanochat_next.bench import decode_runner
from nanochat_next.model.gpt import GPT, GPTConfig


def test_cached_and_uncached_decode_agree(tmp_path):
    config = GPTConfig(sequence_len=64, vocab_size=128, n_layer=2, n_head=2, n_kv_head=1, n_embd=64,
                       window_pattern="SL")
    torch.manual_seed(0)
    model = GPT(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # no zero projections: a non-trivial greedy sequence
    torch.save(model.state_dict(), tmp_path / "w.pt")
    (tmp_path / "cfg.json").write_text(json.dumps({
        "model_config": asdict(config), "prompt": [1, 5, 9, 2, 7], "new_tokens": 12, "repeats": 2, "device": "cpu",
        "dtype": "float32", "nanochat": None, "batches": [1, 3]}))
    results = {}
    for side in ("ours", "ours-nocache"):
        proc = subprocess.run([sys.executable, decode_runner.__file__, side, str(tmp_path / "w.pt"),
                               str(tmp_path / "cfg.json")], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        [line] = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
        results[side] = json.loads(line.removeprefix("RESULT "))
    for batch in ("1", "3"):
        ours, full = results["ours"][batch], results["ours-nocache"][batch]
        assert len(ours["tokens"]) == 12 and ours["tokens"] == full["tokens"]
        assert ours["decode_tok_s"] > 0 and ours["prefill_tok_s"] > 0
    assert len(set(results["ours"]["1"]["tokens"])) > 1, "a degenerate sequence would prove little"


def test_an_unknown_side_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "nanochat_next.bench.decode_runner", "theirs", "w", "c"],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown side 'theirs'" in proc.stderr


def test_nanochats_side_gets_only_the_fields_its_config_knows(tmp_path, monkeypatch):
    """Our saved model config carries the recipe's fields (smear, init, ...); nanochat's GPTConfig at the pinned
    ref rejects unknown keywords, which once lost the bench its nanochat decode row. A stand-in package with
    nanochat's GPTConfig fields checks what the runner passes."""
    pkg = tmp_path / "nanochat"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "engine.py").write_text("class Engine:\n    def __init__(self, model, tokenizer):\n        pass\n")
    (pkg / "gpt.py").write_text(
        "from dataclasses import dataclass\nimport torch\n\n"
        "@dataclass\nclass GPTConfig:\n    sequence_len: int = 2048\n    vocab_size: int = 32768\n"
        "    n_layer: int = 12\n    n_head: int = 6\n    n_kv_head: int = 6\n    n_embd: int = 768\n"
        "    window_pattern: str = 'SSSL'\n\n"
        "class GPT(torch.nn.Module):\n    def __init__(self, config):\n        super().__init__()\n"
        "        self.config = config\n    def load_state_dict(self, state, strict=True):\n        pass\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    config = {**asdict(GPTConfig(sequence_len=16, vocab_size=64, n_layer=1, n_head=2, n_kv_head=2, n_embd=32)),
              "smear": False, "init": "nanochat"}
    try:
        decode_runner.nanochat_stream({"nanochat": str(tmp_path), "model_config": config}, {}, "cpu")
    finally:  # the stand-in must not outlive the test
        for name in [m for m in sys.modules if m == "nanochat" or m.startswith("nanochat.")]:
            del sys.modules[name]
