"""Scalar benchmark: our scalar mini-GPT vs karpathy's microgpt.py, same config, data, seed and machine.

    python benchmarks/scalar_bench.py --microgpt PATH/TO/microgpt.py [--steps 500] [--out results]

microgpt.py is not part of this repository: fetch a public copy (e.g. karpathy's gist, or the copy in
github:ricardofrantz/nanochat-rs-next at references/karpathy_microgpt.py) and pass its path. It runs in a
temporary directory with names.txt from our corpus cache as its input.txt, so it downloads nothing.

Our side runs ``nanochat_next.scalar_train.train`` with microgpt's exact setup: documents shuffled by
``random.Random(42)``, weights drawn from the same generator in the same order, n_embd 16, 4 heads,
1 layer, block 8, Adam(0.9, 0.95, eps 1e-8) at lr 0.01 with microgpt's cosine decay, no held-out split,
one document per step. Both run as separate processes; each reports its own peak RSS. Because the math is
the same, the two loss curves agree step for step (the JSON records the largest difference).
Writes results/scalar.json and results/scalar.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nanochat_next.corpus import corpus_path
from nanochat_next.provenance import write_results

# A child process that runs a script and prints its own peak RSS (KiB on Linux) when done.
RSS_WRAPPER = ("import resource, runpy, sys; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__'); "
               "print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)")

OURS = """
import sys, time
from nanochat_next.corpus import read_text, split_documents
from nanochat_next.scalar.train import ScalarRun, train
docs = split_documents(read_text(sys.argv[1]), "lines")
run = ScalarRun(model_kind="mini-gpt", steps=int(sys.argv[2]), optimizer="adamw", lr=1e-2, lr_schedule="cosine",
                warmdown_ratio=1.0, seed=42, val_fraction=0.0, n_embd=16, n_head=4, n_layer=1, block_size=8)
train(docs, run, progress=False, on_step=lambda s, loss: print(f"step {s + 1:4d} / {run.steps:4d} | loss {loss:.4f}",
                                                                flush=True))
"""

STEP_LINE = re.compile(r"step\s+(\d+)\s*/\s*\d+\s*\|\s*loss\s+([\d.]+)")


def run_timed(cmd: list[str], cwd: Path, timeout: float) -> dict:
    """Run cmd, timestamping each 'step i | loss x' line as it is printed."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    stamps, losses, rss_kb = [], [], None
    assert proc.stdout is not None
    for line in proc.stdout:
        match = STEP_LINE.search(line)
        if match:
            stamps.append(time.perf_counter())
            losses.append(float(match.group(2)))
        elif line.startswith("PEAK_RSS_KB"):
            rss_kb = int(line.split()[1])
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            raise TimeoutError(f"{cmd} ran past {timeout} s")
    if proc.wait() != 0:
        raise RuntimeError(f"{cmd} failed with exit code {proc.returncode}")
    # steps/s over the steady part: from the first step's print to the last (excludes start-up and data prep)
    steps_per_s = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return {"steps": len(losses), "steps_per_s": steps_per_s, "wall_seconds": time.perf_counter() - t0,
            "peak_rss_mb": rss_kb / 1024 if rss_kb else None, "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--microgpt", required=True, help="path to karpathy's microgpt.py")
    parser.add_argument("--steps", type=int, default=500, help="training steps (microgpt's default is 500)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours (microgpt runs once: ~2 minutes)")
    parser.add_argument("--out", default="results")
    args = parser.parse_args()

    names = corpus_path("names")
    work = Path(tempfile.mkdtemp(prefix="scalar-bench-"))
    try:
        shutil.copyfile(args.microgpt, work / "microgpt.py")
        shutil.copyfile(names, work / "input.txt")
        source = (work / "microgpt.py").read_text()
        if args.steps != 500:
            source = re.sub(r"num_steps = \d+", f"num_steps = {args.steps}", source)
            (work / "microgpt.py").write_text(source)
        (work / "ours.py").write_text(OURS)
        timeout = 60 + args.steps * 2.0
        ours = [run_timed([sys.executable, "-c", RSS_WRAPPER, "ours.py", str(names), str(args.steps)], work, timeout)
                for _ in range(args.repeats)]
        theirs = run_timed([sys.executable, "-c", RSS_WRAPPER, "microgpt.py"], work, timeout * 20)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ours_sps = statistics.median(r["steps_per_s"] for r in ours)
    diffs = [abs(a - b) for a, b in zip(ours[0]["losses"], theirs["losses"])]
    same_losses_across_runs = all(r["losses"] == ours[0]["losses"] for r in ours)
    data = {
        "benchmark": "scalar",
        "config": {"model": "mini-gpt", "n_embd": 16, "n_head": 4, "n_layer": 1, "block_size": 8,
                   "steps": args.steps, "optimizer": "adam(0.9, 0.95, eps 1e-8)", "lr": 0.01,
                   "schedule": "cosine over all steps", "seed": 42, "data": "names.txt (shuffled with seed 42)"},
        "ours_steps_per_s": round(ours_sps, 3),
        "microgpt_steps_per_s": round(theirs["steps_per_s"], 3),
        "speedup_vs_microgpt": round(ours_sps / theirs["steps_per_s"], 2),
        "target_speedup": 5.0,
        "ours_steps_per_s_runs": [round(r["steps_per_s"], 3) for r in ours],
        "ours_peak_rss_mb": max(r["peak_rss_mb"] for r in ours),
        "microgpt_peak_rss_mb": theirs["peak_rss_mb"],
        "ours_wall_seconds": round(statistics.median(r["wall_seconds"] for r in ours), 2),
        "microgpt_wall_seconds": round(theirs["wall_seconds"], 2),
        "loss_max_abs_diff_vs_microgpt": max(diffs),
        "loss_mean_abs_diff_vs_microgpt": statistics.fmean(diffs),
        "ours_runs_identical": same_losses_across_runs,
        "final_loss_ours": ours[0]["losses"][-1],
        "final_loss_microgpt": theirs["losses"][-1],
        "microgpt_source": str(args.microgpt),
    }
    data["target_met"] = data["speedup_vs_microgpt"] >= data["target_speedup"]
    d = data
    ours_row = (f"| ours (median of {args.repeats}) | {ours_sps:.2f} | {d['ours_wall_seconds']:.1f} "
                f"| {d['ours_peak_rss_mb']:.0f} | {d['final_loss_ours']:.4f} |")
    theirs_row = (f"| microgpt.py | {theirs['steps_per_s']:.2f} | {d['microgpt_wall_seconds']:.1f} "
                  f"| {theirs['peak_rss_mb']:.0f} | {d['final_loss_microgpt']:.4f} |")
    verdict = "met" if d["target_met"] else "MISSED"
    md = f"""# Scalar benchmark: our scalar mini-GPT vs microgpt.py

Same model (n_embd 16, 4 heads, 1 layer, block 8), data (names.txt shuffled with seed 42), init, optimizer
and schedule; {args.steps} steps, one document per step, on one CPU core each, run as separate processes.
Steps/s is measured from the first to the last step's print (start-up and data preparation excluded).

| | steps/s | wall time (s) | peak RSS (MB) | final loss |
|---|---:|---:|---:|---:|
{ours_row}
{theirs_row}

- **Speed-up: {d['speedup_vs_microgpt']:.1f}x** (target >= {d['target_speedup']:.0f}x: {verdict}).
- Same math: the printed (4-decimal) losses differ by at most {max(diffs):.4f} over {len(diffs)} steps
  (mean {data['loss_mean_abs_diff_vs_microgpt']:.5f}); the remaining differences are float rounding of
  fused vs unfused sums. Our {args.repeats} runs gave identical losses: {same_losses_across_runs}.
- Where the speed comes from: fused dot-product, softmax and cross-entropy nodes (one node per dot
  product instead of two per multiply-add), constants not wrapped as nodes, an iterative topological sort
  and `__slots__` on `Value`.
"""
    json_path, md_path = write_results(args.out, "scalar", data, md)
    print(md)
    print(f"wrote {json_path} and {md_path}")


if __name__ == "__main__":
    main()
