"""Interop benchmark: every export format of every model style, its export and verification time, file sizes,
and how closely it reproduces the model; plus decode speed of the ONNX export (onnxruntime in Python, and the
Node client) against our eager engine.

    python benchmarks/interop_bench.py [--out results] [--llama-python PY]

Models: the three golden fixtures (tests/fixtures/golden: depth 2, width 64) and two models of the cpu bench
profile's size (depth 4, width 256, seq 256, vocab 4096), modern (next recipe) and classic, trained here for
60 steps (enough to make greedy decoding meaningful; the weights' quality is not the point). Writes
results/interop.json (top-level ``exports``: one row per model x format, ``all_verified``, ``decode``,
``llama_cpp``) and .md. ``--llama-python PY`` (a Python with llama-cpp-python) also runs the GGUF exports in
llama.cpp itself.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nanochat_next.cli.main import main as cli
from nanochat_next.export.formats import export
from nanochat_next.export.onnx_graphs import OnnxModel
from nanochat_next.infer.engine import Engine
from nanochat_next.model.saving import load_trained
from nanochat_next.provenance import write_results

REPO = Path(__file__).resolve().parents[1]
FORMATS = ("safetensors", "hf", "onnx", "tokenizer", "gguf")  # gguf: classic style only
LLAMA_SCRIPT = """
import json, sys
import numpy as np
from llama_cpp import Llama
path, prompt, new = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
llm = Llama(model_path=path, n_ctx=len(prompt) + new, logits_all=True, verbose=False, n_threads=2)
llm.eval(prompt)
logits = np.array(llm.scores[: len(prompt)])
tokens = []
for _ in range(new):
    tokens.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
    llm.eval([tokens[-1]])
print(json.dumps({"logits": logits.tolist(), "tokens": tokens}))
"""
CPU_MODELS = {"cpu-modern-next": [], "cpu-classic": ["--style", "classic", "--optimizer", "adamw", "--lr", "3e-3"]}
NEW_TOKENS, REPEATS = 128, 3


def train(work: Path) -> dict[str, Path]:
    models = {name: REPO / "tests/fixtures/golden" / name for name in ("modern-nanochat", "modern-next", "classic")}
    for name, flags in CPU_MODELS.items():
        out = work / name
        if cli(["train", "--steps", "60", "--eval-every", "0", "--no-progress", "--dtype", "float32", "--seed", "1",
                "--out", str(out), *flags]) != 0:
            raise SystemExit(f"training {name} failed")
        models[name] = out
    return models


def decode_speeds(name: str, checkpoint: Path, onnx_dir: Path) -> dict:
    """Greedy decode tok/s at batch 1, median of REPEATS: our eager engine, onnxruntime (Python), Node."""
    model, tokenizer, _ = load_trained(checkpoint, "cpu")
    prompt = tokenizer.encode("First Citizen:\n", prepend_bos=True)
    new = min(NEW_TOKENS, model.config.sequence_len - len(prompt))
    engine, onnx = Engine(model, tokenizer), OnnxModel(onnx_dir)
    compiled = Engine(model, tokenizer, compile=True) if model.style == "modern" else None

    def timed(fn) -> float:
        times = []
        for _ in range(REPEATS + 1):  # the first run warms up
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return new / statistics.median(times[1:])

    ours = engine.generate_batch(prompt, new, temperature=0.0, stop_tokens=set())[0]
    assert onnx.greedy(prompt, new, stop_ids=()) == ours, f"{name}: onnxruntime's greedy tokens differ"
    row = {"model": name, "new_tokens": new,
           "engine_tok_s": timed(lambda: engine.generate_batch(prompt, new, temperature=0.0, stop_tokens=set())),
           "compiled_engine_tok_s": None, "onnxruntime_tok_s": timed(lambda: onnx.greedy(prompt, new, stop_ids=())),
           "node_decode_tok_s": None}
    if compiled is not None:  # the first (warm-up) run compiles
        row["compiled_engine_tok_s"] = timed(lambda: compiled.generate_batch(prompt, new, temperature=0.0,
                                                                              stop_tokens=set()))
    node = shutil.which("node")
    if node and (REPO / "clients/node_modules/onnxruntime-node").is_dir():
        runs = []
        for _ in range(REPEATS):
            out = json.loads(subprocess.run([node, "node/generate.mjs", str(onnx_dir), "First Citizen:\n",
                                             "--max-new-tokens", str(new), "--json"], cwd=REPO / "clients",
                                            capture_output=True, text=True, check=True).stdout)
            runs.append(out["timing"]["decode_tok_s"])
        row["node_decode_tok_s"] = statistics.median(runs)  # tokens after the first, in the Node process
        row["node_tokens_equal"] = out["tokens"] == ours
    return row


def llama_cpp_check(python: str, checkpoint: Path, gguf_dir: Path) -> dict:
    """The GGUF file in llama.cpp itself (llama-cpp-python in ``python``): logits and greedy tokens vs ours."""
    from nanochat_next.export.verify import reference

    model, tokenizer, _ = load_trained(checkpoint, "cpu")
    ref = reference(model, tokenizer)
    out = subprocess.run([python, "-c", LLAMA_SCRIPT, str(gguf_dir / "model.gguf"), json.dumps(ref.prompt),
                          str(len(ref.greedy))], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    version = subprocess.run([python, "-c", "import llama_cpp; print(llama_cpp.__version__)"], capture_output=True,
                             text=True).stdout.strip()
    diff = max(abs(a - b) for row, ref_row in zip(got["logits"], ref.logits.tolist()) for a, b in zip(row, ref_row))
    return {"llama_cpp_python": version, "max_logit_diff": diff, "greedy_equal": got["tokens"] == ref.greedy,
            "greedy_tokens": len(ref.greedy)}


def report(rows: list[dict], decode: list[dict], llama: dict) -> str:
    lines = ["# Interop: every export format, verified against the model", "",
             "`python benchmarks/interop_bench.py`; each export is loaded as its users load it (onnxruntime, "
             "transformers, the portable forward over the safetensors file, the tokenizers library) and compared "
             "with our model: max |logit difference| on a fixed prompt (verify.PROMPT) (tolerance: 1e-5 PyTorch, 1e-4 "
             "onnxruntime) and 32 greedy tokens (must be equal). docs/interop.md explains each format.", "",
             "| model | format | export s | verify s | size MB | max logit diff | greedy equal |",
             "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        v = r["verified"] or {}
        diff = f"{v['max_logit_diff']:.1e}" if "max_logit_diff" in v else f"{v.get('texts', 0)} texts equal"
        lines.append(f"| {r['model']} | {r['format']} | {r['export_seconds']:.2f} | {v.get('seconds', 0):.2f} | "
                     f"{r['bytes'] / 1e6:.2f} | {diff} | {'yes' if v.get('greedy_equal', True) else 'NO'} |")
    lines += ["", "Greedy decode at batch 1, fp32, the same tokens everywhere (tok/s, median of 3 after a warm-up; "
              "ours and onnxruntime: prefill + decode of all tokens from Python; Node: the tokens after the first, "
              "inside the Node process; compiled: `--compile`, modern style only):", "",
              "| model | new tokens | our engine (eager) | our engine (compiled) | onnxruntime (Python) | "
              "Node client (onnxruntime-node) |", "|---|---:|---:|---:|---:|---:|"]

    def rate(value: float | None) -> str:
        return f"{value:.0f}" if value else "-"

    for d in decode:
        lines.append(f"| {d['model']} | {d['new_tokens']} | {rate(d['engine_tok_s'])} | "
                     f"{rate(d['compiled_engine_tok_s'])} | {rate(d['onnxruntime_tok_s'])} | "
                     f"{rate(d['node_decode_tok_s'])} |")
    for name, check in llama.items():
        lines += ["", f"llama.cpp itself (llama-cpp-python {check['llama_cpp_python']}, CPU) on {name}'s GGUF: max "
                  f"logit difference {check['max_logit_diff']:.1e} (its GELU and matmul kernels differ from ours), "
                  f"{check['greedy_tokens']} greedy tokens {'equal' if check['greedy_equal'] else 'DIFFERENT'}."]
    lines += ["", "Each ONNX export holds its weights twice (prefill.onnx and decode.onnx each carry them, so a "
              "browser fetches two self-contained files): about 2x the safetensors size."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results")
    parser.add_argument("--llama-python", help="a Python with llama-cpp-python: also run the GGUF in llama.cpp")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="interop-bench-"))
    rows, decode, llama = [], [], {}
    for name, checkpoint in train(work).items():
        for fmt in FORMATS:
            if fmt == "gguf" and "classic" not in name:
                continue
            r = export(checkpoint, fmt, work / "exports" / name / fmt)
            rows.append({"model": name, "format": fmt, "style": r["style"], "export_seconds": r["export_seconds"],
                         "bytes": sum(r["files"].values()), "files": r["files"], "verified": r["verified"]})
            print(f"{name} {fmt}: {rows[-1]['bytes'] / 1e6:.2f} MB, verified {r['verified']}", flush=True)
        if args.llama_python and "classic" in name:
            llama[name] = llama_cpp_check(args.llama_python, checkpoint, work / "exports" / name / "gguf")
            print(llama[name], flush=True)
        if name.startswith("cpu-"):
            decode.append(decode_speeds(name, checkpoint, work / "exports" / name / "onnx"))
            print(decode[-1], flush=True)
    verified = all(r["verified"] and r["verified"].get("greedy_equal", True) for r in rows)
    data = {"benchmark": "interop", "exports": rows, "all_verified": verified, "decode": decode, "llama_cpp": llama,
            "formats": list(FORMATS), "python": sys.version.split()[0],
            "packages": {m: __import__(m).__version__ for m in ("onnx", "onnxruntime", "transformers", "tokenizers")}}
    import importlib.metadata

    data["packages"]["gguf"] = importlib.metadata.version("gguf")
    json_path, md_path = write_results(args.out, "interop", data, report(rows, decode, llama))
    print(f"wrote {json_path} and {md_path}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
