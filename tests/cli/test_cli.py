"""The command line: help texts, real runs, and one clear error line (exit code 2) for every bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from nanochat_next.cli.main import build_parser, main
from nanochat_next.tokenizer.bpe import BPETokenizer


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nanochat_next", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_every_command_and_option():
    top = run_cli("--help")
    assert top.returncode == 0
    for command in ("tok-train", "tok-eval", "doctor"):
        assert command in top.stdout
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        text = sub.format_help()
        for action in sub._actions:
            for flag in action.option_strings:
                assert flag in text
            assert action.help, f"{name} {action.option_strings} has no help text"
        # one default per option: a help that states its own default gets no second "(default: None)"
        assert not re.search(r"\(default[^)]*\)\s*\(default", " ".join(text.split())), f"{name}: two defaults"


def test_console_script_runs():
    from pathlib import Path

    exe = Path(sys.executable).with_name("nanochat-next")  # installed beside the interpreter
    assert exe.exists(), f"console script missing: {exe} (install the package with pip install -e .)"
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("nanochat-next ")


def test_doctor_reports_and_absent_device_fails_clearly():
    ok = run_cli("doctor", "--no-compile-check", "--json")
    assert ok.returncode == 0, ok.stderr
    profile = json.loads(ok.stdout)
    assert profile["available_devices"][-1] == "cpu"
    import torch

    if not torch.cuda.is_available():
        bad = run_cli("doctor", "--device", "cuda", "--no-compile-check")
        assert bad.returncode == 2
        lines = bad.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: --device cuda was requested but")


def test_tok_train_then_tok_eval(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: the quick brown fox {i * 7} jumps." for i in range(200)))
    assert main(["tok-train", "--corpus", str(corpus), "--vocab-size", "300", "--out", str(tmp_path / "tok"),
                 "--trainer", "python"]) == 0
    tok = BPETokenizer.load(tmp_path / "tok")
    assert tok.vocab_size == 300
    out = capsys.readouterr().out
    assert "bytes/token" in out and "saved to" in out
    assert main(["tok-eval", "--corpus", str(corpus), "--vocab-sizes", "280,300",
                 "--out", str(tmp_path / "ev")]) == 0
    report = json.loads((tmp_path / "ev" / "tok_eval.json").read_text())
    assert [r["vocab_size"] for r in report["rows"]] == [280, 300]
    assert report["rows"][0]["bytes_per_token"] < report["rows"][1]["bytes_per_token"]
    assert (tmp_path / "ev" / "tok_eval.png").stat().st_size > 1000
    assert main(["tok-eval", "--corpus", str(corpus), "--tokenizer", str(tmp_path / "tok"),
                 "--out", str(tmp_path / "ev2")]) == 0
    assert json.loads((tmp_path / "ev2" / "tok_eval.json").read_text())["rows"][0]["vocab_size"] == 300


def test_tok_eval_never_overwrites_an_earlier_result_by_default(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(f"Paragraph {i}: the quick brown fox {i * 7} jumps." for i in range(100)))
    monkeypatch.chdir(tmp_path)
    for _ in range(3):
        assert main(["tok-eval", "--corpus", str(corpus), "--vocab-sizes", "280"]) == 0
    written = sorted(p.parent.name for p in (tmp_path / "out").glob("*/tok_eval.json"))
    assert written == ["tok_eval", "tok_eval_2", "tok_eval_3"]
    assert "wrote out/tok_eval_3/tok_eval.json" in capsys.readouterr().out


def test_tok_train_on_the_default_corpus_uses_the_cache(tmp_path):
    result = run_cli("tok-train", "--vocab-size", "512", "--no-download", "--out", str(tmp_path / "tok"))
    assert result.returncode == 0, result.stderr
    from nanochat_next.corpus import load_corpus, split_documents, train_val_split

    train_docs, _ = train_val_split(split_documents(*load_corpus("tinyshakespeare", allow_download=False)))
    assert f"on {len(train_docs):,} documents" in result.stdout
    assert BPETokenizer.load(tmp_path / "tok").vocab_size == 512


def _bad_inputs(tmp_path):
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n\nau lait".encode("latin-1"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    one = tmp_path / "one.txt"
    one.write_text("a single paragraph")
    good = tmp_path / "good.txt"
    good.write_text("one\n\ntwo\n\nthree")
    return {
        "vocab too small": (["tok-train", "--corpus", str(good), "--vocab-size", "100"], "265 at least"),
        "vocab not a number": (["tok-train", "--vocab-size", "big"], "expected a positive integer"),
        "vocab negative": (["tok-train", "--vocab-size", "-5"], "expected a positive integer"),
        "missing corpus": (["tok-train", "--corpus", str(tmp_path / "nope.txt")], "neither a known corpus"),
        "non-UTF-8 corpus": (["tok-train", "--corpus", str(latin1)], "not valid UTF-8"),
        "empty corpus": (["tok-train", "--corpus", str(empty)], "is empty"),
        "one document": (["tok-train", "--corpus", str(one)], "at least 2 documents"),
        "bad val fraction": (["tok-train", "--val-fraction", "1.5"], "between 0 and 1"),
        "bad trainer": (["tok-train", "--trainer", "hf"], "invalid choice"),
        "bad vocab list": (["tok-eval", "--vocab-sizes", "512,x"], "comma-separated integers"),
        "missing tokenizer": (["tok-eval", "--corpus", str(good), "--tokenizer", str(tmp_path / "none")],
                              "no tokenizer at"),
        "unknown device": (["doctor", "--device", "tpu"], "invalid choice"),
        "unknown command": (["fly"], "invalid choice"),
    }


BAD_CASES = ["vocab too small", "vocab not a number", "vocab negative", "missing corpus", "non-UTF-8 corpus",
             "empty corpus", "one document", "bad val fraction", "bad trainer", "bad vocab list", "missing tokenizer",
             "unknown device", "unknown command"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_clear_line_and_exit_2(tmp_path, capsys, case):
    argv, expected = _bad_inputs(tmp_path)[case]
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    assert set(_bad_inputs(tmp_path)) == set(BAD_CASES)
    err = capsys.readouterr().err.strip().splitlines()
    assert expected in err[-1], err
    assert err[-1].startswith(("error:", "nanochat-next")), err
    assert not any("Traceback" in line for line in err)


def test_every_command_takes_threads():
    import argparse

    from nanochat_next.cli.main import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert all("--threads" in p._option_string_actions for p in sub.choices.values())
    args = build_parser().parse_args(["doctor", "--threads", "1"])
    assert args.threads == 1
