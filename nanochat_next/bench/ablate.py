"""The ablation runner: a grid over any train flag, several seeds each, judged with statistics.

``nanochat-next ablate --grid 'depth=2,4 matrix_lr=0.01,0.02' --seeds 42,43,44 --out DIR``:

1. the base run config (``--base-config FILE``, a bench ``--profile``, or the defaults) and the grid make the
   variants: the cartesian product of the values, the first value of every key being the baseline;
   A ``recipe`` value is the whole bundle (``recipe=nanochat,next`` compares the recipes); other keys
   of the same variant apply on top of it;
2. every (variant, seed) is one process of the ordinary ``train --config``, in ``DIR/runs/<variant>/seed_<s>``,
   so each run's own config.json reproduces it. A finished run (its model saved) is never run again: an
   interrupted sweep, started again with the same arguments, continues where it stopped;
3. per variant: the final metric (tensor: val bits per byte; scalar: val loss) as mean, std and 95% CI,
   with tok/s and time to a target bpb; against the baseline, the difference, the paired t-test (same
   seeds) and Welch's, and the verdict by the acceptance rule p < 0.01 (``stats``). The baseline's own
   spread over seeds is reported first: a difference smaller than that noise means nothing;
4. ``DIR/ablate_<name>_<UTC>.json``/``.md`` and a plot (metric vs step per variant: mean line, min-max band).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from nanochat_next.bench import stats
from nanochat_next.bench.scorecard import parse_our_metrics, summarize
from nanochat_next.errors import UserError
from nanochat_next.run_config import from_fields, read_config, write_config
from nanochat_next.scalar.config import ScalarRun
from nanochat_next.train.config import TensorRun, recipe_values

CONFIGS = {"scalar": ScalarRun, "tensor": TensorRun}
NOT_IN_A_GRID = {"seed", "out"}  # given by --seeds and by the runner


# Named grids: (grid, one change at a time?). `seed` is the seed project's original ablation; `hparams` and
# `features` are the screens behind the `next` recipe (docs/recipe.md: hparams against the nanochat recipe,
# features on top of the learning rates hparams adopted); `more`: candidates not measured yet; `recipe`
# compares the two recipes.
PRESETS: dict[str, tuple[str, bool]] = {
    "seed": ("tie_embeddings=false,true embed_norm=true,false", False),
    "hparams": ("matrix_lr=0.02,0.03,0.04 embedding_lr=0.3,0.6 unembedding_lr=0.004,0.008,0.016 "
                "weight_decay=0.2,0.28 warmdown_ratio=0.5,0.65,0.8 final_lr_fraction=0.0,0.05", True),
    "features": ("smear=false,true backout=false,true init=nanochat,next muon_eq=false,true "
                 "muon_momentum=nanochat,next wd_schedule=linear,cosine warmdown_ratio=0.5,0.35", True),
    "more": ("qk_scale=1.0,1.2 rope_base=10000,100000 ve_gate_range=2.0,3.0 ve_gate_channels=32,12 "
             "adam_groups=nanochat,next muon_beta2=0.95,0.9", True),
    "recipe": ("recipe=nanochat,next", False),
}


@dataclass
class Sweep:
    name: str
    mode: str
    base: dict  # the base run config's fields
    variants: list[tuple[str, dict]]  # (name, overrides); the first is the baseline
    seeds: list[int]
    out: Path
    target_bpb: float | None = None


def parse_value(text: str):
    """A grid value: JSON where it parses (numbers, true/false, null), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_grid(grid: str, mode: str, each: bool = False) -> list[tuple[str, dict]]:
    """'KEY=V1,V2 KEY2=V3,V4' -> every combination as (name, {field: value}); the first values make the
    baseline. Keys are train flags (``--matrix-lr`` or ``matrix_lr``) of the mode's run config.

    ``each``: one change at a time instead of the product: the baseline (every first value), then every
    other value of every key alone (1 + sum(len(values) - 1) variants: a screen of many candidates)."""
    known = {f.name for f in fields(CONFIGS[mode])} - NOT_IN_A_GRID
    axes = []
    for part in grid.split():
        key, sep, values = part.partition("=")
        name = key.lstrip("-").replace("-", "_")
        if not sep or not values:
            raise UserError(f"--grid: expected KEY=V1,V2 (e.g. depth=2,4), got {part!r}")
        if name not in known:
            raise UserError(f"--grid: {key!r} is not a {mode} train setting; choose from {', '.join(sorted(known))}")
        if name in (axis[0] for axis in axes):
            raise UserError(f"--grid: {key!r} appears twice")
        axes.append((name, [parse_value(v) for v in values.split(",") if v != ""]))
    if not axes:
        raise UserError("--grid is empty: give at least one KEY=V1,V2")
    if each:
        baseline = {k: vs[0] for k, vs in axes}
        return [("baseline", baseline)] + [(f"{k}={v}", {**baseline, k: v}) for k, vs in axes for v in vs[1:]]
    combos = itertools.product(*[[(k, v) for v in vs] for k, vs in axes])
    return [(",".join(f"{k}={v}" for k, v in combo), dict(combo)) for combo in combos]


def run_dir(sweep: Sweep, variant: str, seed: int) -> Path:
    return sweep.out / "runs" / variant.replace("/", "_") / f"seed_{seed}"


def finished(path: Path, mode: str) -> bool:
    return (path / ("model.json" if mode == "scalar" else "model/config.json")).is_file()


def run_one(sweep: Sweep, variant: str, seed: int) -> float:
    """One train process (skipped when already finished); returns its wall seconds (0 when skipped)."""
    path = run_dir(sweep, variant, seed)
    if finished(path, sweep.mode):
        return 0.0
    shutil.rmtree(path, ignore_errors=True)  # an unfinished run starts over: its partial output is not a result
    path.mkdir(parents=True)
    config = sweep.out / "variants" / f"{variant.replace('/', '_')}.json"
    cmd = [sys.executable, "-m", "nanochat_next", "train", "--config", str(config), "--seed", str(seed), "--out",
           str(path), "--no-progress"]
    t0 = time.perf_counter()
    with open(path / "train.log", "w") as log:
        code = subprocess.run(cmd, stdout=log, stderr=log, env=dict(os.environ)).returncode
    if code != 0:
        tail = (path / "train.log").read_text(errors="replace").strip().splitlines()[-1:]
        raise UserError(f"run {variant} seed {seed} failed (exit {code}): {tail[0] if tail else '?'}; log "
                        f"{path / 'train.log'}")
    return time.perf_counter() - t0


def prepare(sweep: Sweep) -> None:
    """The resolved config of every variant, written once (a resumed sweep must be the same sweep)."""
    (sweep.out / "variants").mkdir(parents=True, exist_ok=True)
    for name, overrides in sweep.variants:
        bundle = recipe_values(overrides["recipe"]) if sweep.mode == "tensor" and "recipe" in overrides else {}
        config = from_fields(CONFIGS[sweep.mode], {**sweep.base, **bundle, **overrides}, f"variant {name}")
        path = sweep.out / "variants" / f"{name.replace('/', '_')}.json"
        if path.exists():
            # the file's fields, with today's defaults for fields added since it was written: a sweep started before
            # an upgrade that only added settings is the same sweep
            _, old = read_config(path)
            if asdict(from_fields(CONFIGS[sweep.mode], old, str(path))) != asdict(config):
                raise UserError(f"{sweep.out} holds a different sweep (variant {name} changed); use another --out")
        else:
            write_config(path, sweep.mode, config)


def run_sweep(sweep: Sweep, log=print) -> dict:
    """Every (variant, seed), with a progress line and an ETA; then the statistics and the artifacts."""
    prepare(sweep)
    jobs = [(v, s) for v, _ in sweep.variants for s in sweep.seeds]
    times: list[float] = []
    for i, (variant, seed) in enumerate(jobs, 1):
        seconds = run_one(sweep, variant, seed)
        if seconds:
            times.append(seconds)
        eta = (sum(times) / len(times)) * (len(jobs) - i) if times else 0.0
        done = "already finished" if not seconds else f"{seconds:.0f} s"
        log(f"[{i}/{len(jobs)}] {variant} seed {seed}: {done}; ETA {eta / 60:.1f} min")
    return analyse(sweep)


def collect(sweep: Sweep, variant: str, seed: int) -> dict:
    """One finished run's metric, curve, speed and time to target."""
    path = run_dir(sweep, variant, seed)
    if sweep.mode == "scalar":
        record = json.loads((path / "model.json").read_text())["record"]
        losses = [json.loads(line)["loss"] for line in (path / "metrics.jsonl").read_text().splitlines()]
        return {"metric": record["val_loss"], "curve": [[i, x] for i, x in enumerate(losses)],
                "speed": record["steps_per_s"], "time_to_target_s": None}
    raw = parse_our_metrics((path / "metrics.jsonl").read_text())
    summary = summarize(raw, min(10, max(len(raw["dt"]) // 4, 1)), sweep.target_bpb)
    return {"metric": summary["final_val_bpb"], "curve": [[e["step"], e["val_bpb"]] for e in raw["evals"]],
            "speed": summary["tok_per_s"]["median"], "time_to_target_s": summary["time_to_target_s"]}


def analyse(sweep: Sweep) -> dict:
    runs = {v: {s: collect(sweep, v, s) for s in sweep.seeds} for v, _ in sweep.variants}
    baseline = sweep.variants[0][0]
    base_metric = [runs[baseline][s]["metric"] for s in sweep.seeds]
    table = {}
    for variant, overrides in sweep.variants:
        metric = [runs[variant][s]["metric"] for s in sweep.seeds]
        ttt = [runs[variant][s]["time_to_target_s"] for s in sweep.seeds]
        row = {"overrides": overrides, "metric": stats.describe(metric), "by_seed": dict(zip(sweep.seeds, metric)),
               "speed": stats.describe([runs[variant][s]["speed"] for s in sweep.seeds]),
               "time_to_target_s": stats.describe(ttt) if None not in ttt else None}
        if variant != baseline:
            row["paired"] = stats.compare(metric, base_metric, paired=True)
            row["welch"] = stats.compare(metric, base_metric)
            row["verdict"] = stats.verdict(row["paired"])
        table[variant] = row
    noise = table[baseline]["metric"]
    return {"benchmark": "ablate", "name": sweep.name, "mode": sweep.mode,
            "metric": "val loss (nats)" if sweep.mode == "scalar" else "final val bpb",
            "baseline": baseline, "seeds": sweep.seeds, "accept_p": stats.ACCEPT_P, "base_config": sweep.base,
            "seed_noise": {"std": noise["std"], "range": max(base_metric) - min(base_metric)},
            "variants": table, "curves": {v: {str(s): r["curve"] for s, r in rs.items()} for v, rs in runs.items()},
            "target_bpb": sweep.target_bpb}


def write(data: dict, out: Path) -> tuple[Path, Path, Path]:
    """The JSON, the report and the plot."""
    from nanochat_next.bench.ablate_report import plot, report

    return write_stamped(out, f"ablate_{data['name']}", data, plot, report)


def write_stamped(out: Path, stem: str, data: dict, plot, report) -> tuple[Path, Path, Path]:
    """OUT/<stem>_<UTC>.png, then .json (data + machine metadata) and .md (``report(data, png name)``)."""
    from nanochat_next.provenance import write_results

    name = f"{stem}_{dt.datetime.now(dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}"
    png = out / f"{name}.png"
    plot(data, png)
    json_path, md_path = write_results(out, name, data, report(data, png.name))
    return json_path, md_path, png
