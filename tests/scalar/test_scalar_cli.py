"""`train --mode scalar` and `sample --mode scalar` end to end: reproducible bytes, clear errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nanochat_next.cli.main import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nanochat_next", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("scalar")
    result = run_cli("train", "--mode", "scalar", "--model-kind", "mini-gpt", "--data", "names", "--steps", "40",
                     "--block-size", "8", "--eval-docs", "20", "--seed", "3", "--checkpoint-dir", str(out / "gpt"),
                     "--no-download")
    assert result.returncode == 0, result.stderr
    assert "val loss" in result.stdout and "saved" in result.stdout
    lines = (out / "gpt" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 40 and json.loads(lines[0])["step"] == 0
    result = run_cli("train", "--mode", "scalar", "--model-kind", "bigram", "--steps", "50", "--optimizer", "sgd",
                     "--checkpoint-dir", str(out / "bigram"), "--no-progress", "--no-download")
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.parametrize("kind", ["gpt", "bigram"])
def test_same_seed_same_bytes(trained, kind):
    args = ["sample", "--mode", "scalar", "--checkpoint", str(trained / kind), "--num-samples", "5", "--temperature",
            "0.9", "--max-new-tokens", "12"]
    a = run_cli(*args, "--seed", "11")
    b = run_cli(*args, "--seed", "11")
    c = run_cli(*args, "--seed", "12")
    assert a.returncode == 0, a.stderr
    assert a.stdout.encode() == b.stdout.encode()
    assert a.stdout != c.stdout
    samples = a.stdout.splitlines()
    assert len(samples) == 5 and all(len(s) <= 12 for s in samples)


def test_prompt_is_continued(trained):
    out = run_cli("sample", "--checkpoint", str(trained / "gpt"), "--prompt", "ma", "--num-samples", "3")
    assert out.returncode == 0 and all(s.startswith("ma") for s in out.stdout.splitlines())


def test_training_is_reproducible(tmp_path, trained):
    again = run_cli("train", "--mode", "scalar", "--steps", "40", "--block-size", "8", "--eval-docs", "20", "--seed",
                    "3", "--checkpoint-dir", str(tmp_path), "--no-download")
    assert again.returncode == 0
    first = json.loads((trained / "gpt" / "model.json").read_text())
    second = json.loads((tmp_path / "model.json").read_text())
    assert first["weights"] == second["weights"]


BAD = {
    "temperature zero": (["sample", "--temperature", "0"], "temperature must be a number > 0"),  # scalar: no greedy
    "temperature nan": (["sample", "--temperature", "nan"], "expected a number >= 0"),
    "temperature negative": (["sample", "--temperature", "-1"], "expected a number >= 0"),
    "prompt longer than block": (["sample", "--prompt", "abcdefghij"], "block size is 8"),
    "unknown characters": (["sample", "--prompt", "Zé"], "not in the tokenizer's vocabulary"),
    "missing checkpoint": (["sample", "--checkpoint", "MISSING"], "no checkpoint at"),
    "empty data": (["train", "--data", "EMPTY"], "is empty"),
    "missing data": (["train", "--data", "MISSING"], "neither a known corpus"),
    "zero steps": (["train", "--steps", "0"], "expected a positive integer"),
    "bad lr": (["train", "--lr", "-0.1"], "expected a number > 0"),
    "heads do not divide": (["train", "--n-embd", "10", "--n-head", "4", "--data", "GOOD"], "divisible"),
    "warmup + warmdown > 1": (["train", "--warmup-ratio", "0.6", "--data", "GOOD"], "exceeds 1"),
    "val fraction 1": (["train", "--val-fraction", "1", "--data", "GOOD"], "must be in [0, 1)"),
    "muon in scalar mode": (["train", "--optimizer", "muon", "--data", "GOOD"], "is for --mode tensor"),
    "unknown mode": (["train", "--mode", "quantum"], "invalid choice"),
    "tensor flag in scalar mode": (["train", "--depth", "3", "--data", "GOOD"],
                                   "--depth does not apply to --mode scalar"),
    "resume in scalar mode": (["train", "--resume", "latest", "--data", "GOOD"], "--resume is for --mode tensor"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exit_2_with_one_clear_line(case, trained, tmp_path, capsys):
    argv, expected = BAD[case]
    (tmp_path / "empty.txt").write_text("\n \n")
    (tmp_path / "good.txt").write_text("emma\n\nava\n\nolivia\n")
    subst = {"MISSING": str(tmp_path / "missing"), "EMPTY": str(tmp_path / "empty.txt"),
             "GOOD": str(tmp_path / "good.txt")}
    argv = [subst.get(a, a) for a in argv]
    if argv[0] == "sample" and "--checkpoint" not in argv:
        argv += ["--checkpoint", str(trained / "gpt")]
    if argv[0] == "train":
        argv += ["--mode", "scalar"] * ("--mode" not in argv)
        argv += ["--checkpoint-dir", str(tmp_path / "ck"), "--steps" if "--steps" not in argv else "--seed", "1",
                 "--no-progress", "--no-download"]
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(main(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert expected in err[-1], err
    assert not any("Traceback" in line for line in err)
