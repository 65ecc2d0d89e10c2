"""The depth ladder: recipes compared at several model sizes and token budgets by nanochat's compute multiplier.

``nanochat-next ladder --preset cpu --out DIR`` trains every recipe of the preset (ours first, then the
baselines) at every rung (a depth and a number of steps) with the same seeds, and compares them the way
nanochat's experiment branch does (scripts/compare.py), plus seeds and p-values:

1. a rung is an ``ablate`` sweep whose variants are the recipes, in ``DIR/d<depth>_s<steps>/``: the same runs,
   resumable the same way (a finished run is never run again: stop the ladder and start it again to continue),
   one tokenizer for the whole ladder (``DIR/tokenizer``), Muon in the dtype each machine measures faster for
   every recipe (the loss is the same within 2e-4: results/muon_dtype.md; the pinned recipe's bf16 is ~13x slower
   on a CPU without AVX-512);
2. per run: the final val bpb, the best val bpb and its step, and the passes over the training tokens (epochs):
   a small corpus repeats, and a recipe that learns faster also over-fits sooner;
3. per rung, ours against every baseline on the same seeds: the paired t-test on the final and on the best bpb,
   and the compute multiplier (``bench.compute_multiplier``) per seed, of the final point against the baseline's
   raw curve (nanochat's definition) and of the best point against its best-so-far curve (defined when the data
   repeats and a curve rises again). FLOPs = the run's FLOPs per token (nanochat's estimate) x tokens seen;
4. ``DIR/ladder_<preset>_<UTC>.json``/``.md``/``.png``: the rung tables and, per rung, val bpb against FLOPs.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nanochat_next.atomic import write_text
from nanochat_next.bench import stats
from nanochat_next.bench.ablate import Sweep, finished, prepare, run_dir, run_one, write_stamped
from nanochat_next.bench.compute_multiplier import Curve, best_so_far, compute_multiplier
from nanochat_next.bench.profiles import PROFILES
from nanochat_next.errors import UserError
from nanochat_next.train.config import RECIPES, TensorRun

CM_TARGETS = {"nanochat": 2.0, "nanochat-92d63d4": 1.3}  # #25: what `next` should reach at every rung


@dataclass(frozen=True)
class Preset:
    description: str
    base: TensorRun  # every run's config but depth, steps and the recipe
    depths: tuple[int, ...]
    steps: tuple[int, ...]  # the token budgets, as steps of base.total_batch_size tokens
    recipes: tuple[str, ...] = ("next", "nanochat", "nanochat-92d63d4")  # ours first, then the baselines
    seeds: tuple[int, ...] = (42, 43, 44)
    evals_per_run: int = 10  # points on every curve (the CM interpolates between them)


# cpu: the cpu bench profile's data, tokenizer and context at 1,024-token steps; the longer budget is the cpu
# profile's 410k tokens, the shorter 5x less. Measured on a 2-core AVX2-only EPYC: depths 2 and 4 take 64 min, depth
# 6 about 2.5 hours more (~175 s per 80-step run, ~14 min per 400-step run): run it in sittings, it resumes.
PRESETS = {
    "cpu": Preset("depths 2, 4, 6 x 80 and 400 steps of 1,024 tokens on tinyshakespeare, 3 recipes x 3 seeds",
                  replace(PROFILES["cpu"].run, device_batch_size=4, total_batch_size=1024, compile=False,
                          eval_tokens=8192, peak_flops=1e12),
                  depths=(2, 4, 6), steps=(80, 400)),
    # kjv: the same sizes and budgets on a corpus 4x larger (the King James Bible, tools/build_kjv_corpus.py), so
    # every budget stays under one epoch (400 x 1,024 tokens ~ 0.35 of its ~1.2M training tokens), with seeds and a
    # validation split (its last 119 chapters) that no tuning step of `next` used: the confirmation ladder
    "kjv": Preset("depths 2, 4, 6 x 80 and 400 steps of 1,024 tokens on the King James Bible (under one epoch), "
                  "seeds 47-49 and a validation split no tuning step used",
                  replace(PROFILES["cpu"].run, data="kjv", device_batch_size=4, total_batch_size=1024, compile=False,
                          eval_tokens=8192, peak_flops=1e12),
                  depths=(2, 4, 6), steps=(80, 400), seeds=(47, 48, 49)),
    "tiny": Preset("depths 1, 2 x 4 and 8 steps of 256 tokens: the whole ladder in about a minute (tests)",
                   replace(PROFILES["smoke"].run, vocab_size=300, max_seq_len=32, device_batch_size=4,
                           total_batch_size=128, compile=False, eval_tokens=512, peak_flops=1e12),
                   depths=(1, 2), steps=(4, 8), seeds=(42, 43), evals_per_run=4),
}


@dataclass
class Ladder:
    preset: str
    base: TensorRun
    depths: tuple[int, ...]
    steps: tuple[int, ...]
    recipes: tuple[str, ...]
    seeds: tuple[int, ...]
    out: Path
    evals_per_run: int = 10

    @classmethod
    def from_preset(cls, name: str, out: Path, **overrides) -> Ladder:
        if name not in PRESETS:
            raise UserError(f"unknown ladder preset {name!r}; presets: {', '.join(PRESETS)}")
        p = PRESETS[name]
        values = {"base": p.base, "depths": p.depths, "steps": p.steps, "recipes": p.recipes, "seeds": p.seeds,
                  "evals_per_run": p.evals_per_run, **{k: v for k, v in overrides.items() if v}}
        ladder = cls(name, out=out, **values)
        ladder.check()
        return ladder

    def check(self) -> None:
        unknown = [r for r in self.recipes if r not in RECIPES]
        if unknown:
            raise UserError(f"unknown recipe {unknown[0]!r}; recipes: {', '.join(RECIPES)}")
        if len(self.recipes) < 2 or len(set(self.recipes)) != len(self.recipes):
            raise UserError("a ladder compares at least two distinct recipes (ours first, then the baselines)")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise UserError("a ladder needs at least two distinct seeds (the p-values are paired over them)")
        if any(d < 1 for d in self.depths) or any(s < 2 for s in self.steps) or not self.depths or not self.steps:
            raise UserError("depths must be >= 1 and steps >= 2, at least one of each")

    def rungs(self) -> list[tuple[int, int]]:
        return [(d, s) for d in self.depths for s in self.steps]

    def sweep(self, depth: int, steps: int) -> Sweep:
        """The rung as an ablation whose variants are the recipes (each bundle, then the rung's own values)."""
        rung = {"depth": depth, "steps": steps, "eval_every": max(1, steps // self.evals_per_run),
                "muon_dtype": "auto", "tokenizer": str(self.out / "tokenizer")}
        variants = [(r, {"recipe": r, **rung}) for r in self.recipes]
        return Sweep(f"{self.preset}_d{depth}_s{steps}", "tensor", asdict(self.base), variants, list(self.seeds),
                     self.out / f"d{depth}_s{steps}")


def training_tokens(ladder: Ladder) -> int | None:
    """The tokenizer (trained once into DIR/tokenizer) and the training tokens it makes of the corpus, a BOS per
    document as the loader packs them (None for parquet shards, which are not read whole here)."""
    from nanochat_next.train.data import run_data

    data = run_data(replace(ladder.base, out=str(ladder.out), tokenizer=""), log=lambda *a: None,
                    save_tokenizer=not (ladder.out / "tokenizer" / "tokenizer.json").is_file())
    if data.train.docs is None:
        return None
    return sum(len(ids) + 1 for ids in data.tokenizer.encode_batch(list(data.train.docs)))


def run_ladder(ladder: Ladder, log=print) -> dict:
    """Every rung's runs (finished ones skipped), with progress lines and an ETA; then the analysis."""
    t0 = time.perf_counter()
    ladder.out.mkdir(parents=True, exist_ok=True)
    tokens = training_tokens(ladder)
    sweeps = [ladder.sweep(d, s) for d, s in ladder.rungs()]
    for sweep in sweeps:
        prepare(sweep)
    jobs = [(sweep, v, s) for sweep in sweeps for v, _ in sweep.variants for s in sweep.seeds]
    walls = read_walls(ladder)
    done: list[tuple[float, float]] = []  # (seconds, work) of the runs trained now
    for i, (sweep, variant, seed) in enumerate(jobs, 1):
        seconds = run_one(sweep, variant, seed)
        if seconds:
            done.append((seconds, work(sweep)))
            walls[f"{sweep.out.name}/{variant}/{seed}"] = seconds
            write_text(ladder.out / WALLS, json.dumps(walls, indent=1))  # each run's wall time survives a stop
        # ETA: seconds per unit of work so far (work ~ steps x depth^2: width grows with depth, small models are
        # dominated by the per-step overhead rather than depth^3 FLOPs)
        rate = sum(s for s, _ in done) / sum(w for _, w in done) if done else 0.0
        left = sum(work(j[0]) for j in jobs[i:])
        log(f"[{i}/{len(jobs)}] {sweep.out.name} {variant} seed {seed}: "
            f"{f'{seconds:.0f} s' if seconds else 'already finished'}; ETA {rate * left / 60:.0f} min")
    data = analyse(ladder, tokens)
    data["wall_seconds_this_invocation"] = time.perf_counter() - t0
    return data


WALLS = "wall_seconds.json"


def work(sweep: Sweep) -> float:
    rung = sweep.variants[0][1]
    return rung["steps"] * rung["depth"] ** 2


def read_walls(ladder: Ladder) -> dict[str, float]:
    path = ladder.out / WALLS
    return json.loads(path.read_text()) if path.is_file() else {}


def read_run(path: Path) -> dict:
    """One finished run: its curve (step, val bpb), final and best points, FLOPs per token, tokens per step."""
    config = json.loads((path / "model" / "config.json").read_text())
    summary, run = config["summary"], config["run"]
    evals = [(e["step"], e["val_bpb"]) for e in summary["evals"]]
    best_step, best = min(evals, key=lambda e: (e[1], e[0]))
    return {"curve": evals, "final": evals[-1][1], "final_step": evals[-1][0], "best": best, "best_step": best_step,
            "flops_per_token": summary["flops_per_token"], "tokens_per_step": run["total_batch_size"],
            "train_seconds": summary["train_seconds"]}


def flops_curve(r: dict) -> Curve:
    """(FLOPs spent, val bpb) at every eval after the first step (step 0 has spent nothing: no log)."""
    per_step = r["flops_per_token"] * r["tokens_per_step"]
    return [(step * per_step, bpb) for step, bpb in r["curve"] if step > 0]


def summarize_cms(by_seed: dict[int, dict | None]) -> dict:
    """Per-seed multipliers (None: undefined) -> their geometric mean, range and flags."""
    values = [m["cm"] for m in by_seed.values() if m]
    return {"by_seed": by_seed,
            "geomean": math.exp(statistics.fmean(math.log(v) for v in values)) if values else None,
            "min": min(values, default=None), "max": max(values, default=None),
            "extrapolated": any(m["extrapolated"] for m in by_seed.values() if m),
            "undefined": sum(m is None for m in by_seed.values())}


def as_record(m) -> dict | None:
    return None if m is None else {"cm": m.cm, "extrapolated": m.extrapolated, "text": str(m)}


def multipliers(ours: dict[int, dict], base: dict[int, dict], best: bool) -> dict:
    """nanochat's CM per seed: the FLOPs the baseline (its curve of the same seed) needs to reach our final bpb
    (``best``: our best bpb, on its best-so-far curve), over our FLOPs to that point."""
    by_seed = {}
    for seed, r in ours.items():
        curve = flops_curve(base[seed])
        per_step = r["flops_per_token"] * r["tokens_per_step"]
        if best:
            m = compute_multiplier(best_so_far(curve), r["best_step"] * per_step, r["best"])
        else:
            m = compute_multiplier(curve, r["final_step"] * per_step, r["final"])
        by_seed[seed] = as_record(m)
    return summarize_cms(by_seed)


def multipliers_at_their_final(ours: dict[int, dict], base: dict[int, dict]) -> dict:
    """The CM anchored at the baseline's final bpb instead of ours: its FLOPs over the FLOPs our curve needs to reach
    that bpb. When ours ends below anything the baseline reached, nanochat's CM must extend the baseline's flattening
    last segment (the LR decays there) and can come out at absurd values; this one is then read inside our curve.
    It is conservative: an intermediate point of our run is read before its LR decayed, worse than a run that
    short would end."""
    by_seed = {}
    for seed, theirs in base.items():
        per_step = theirs["flops_per_token"] * theirs["tokens_per_step"]
        m = compute_multiplier(flops_curve(ours[seed]), theirs["final_step"] * per_step, theirs["final"])
        by_seed[seed] = as_record(None if m is None else replace(m, cm=1 / m.cm))  # theirs / ours, not ours / theirs
    return summarize_cms(by_seed)


def headline(cm: dict, at_their_final: dict) -> dict:
    """Per seed: nanochat's CM where it is read inside the baseline's curve, else the one anchored at the baseline's
    final bpb where that is read inside ours, else nanochat's extrapolated one (flagged)."""
    by_seed = {}
    for seed, forward in cm["by_seed"].items():
        backward = at_their_final["by_seed"][seed]
        if forward and not forward["extrapolated"]:
            by_seed[seed] = {**forward, "kind": "nanochat"}
        elif backward and not backward["extrapolated"]:
            by_seed[seed] = {**backward, "kind": "at the baseline's final bpb"}
        else:
            by_seed[seed] = None if forward is None else {**forward, "kind": "nanochat, extrapolated"}
    return summarize_cms(by_seed)


def finished_recipes(ladder: Ladder, depth: int, steps: int) -> list[str]:
    """The recipes of this rung whose every seed has finished."""
    sweep = ladder.sweep(depth, steps)
    return [r for r in ladder.recipes if all(finished(run_dir(sweep, r, s), sweep.mode) for s in ladder.seeds)]


def report_ladder(ladder: Ladder) -> dict:
    """The analysis of what has finished, training nothing (``ladder --report``: a ladder run in parts shows what it
    has so far). A rung is compared with a baseline once ours and that baseline have finished every seed; a rung
    where some baseline has not is reported against the others and listed as ``partial``; one where ours or
    every baseline is unfinished is ``pending``."""
    done = {}
    for rung in ladder.rungs():
        names = finished_recipes(ladder, *rung)
        if ladder.recipes[0] in names and len(names) > 1:
            done[rung] = names
    if not done:
        raise UserError(f"no rung of this ladder has finished in {ladder.out}: run it without --report first")
    return analyse(ladder, training_tokens(ladder), done)


def analyse(ladder: Ladder, tokens: int | None, rungs_done: dict[tuple[int, int], list[str]] | None = None) -> dict:
    """Per rung: each recipe's final and best val bpb over seeds, and ours against every baseline (paired p-values,
    compute multipliers). ``rungs_done``: analyse only these rungs, each with the recipes that finished (ours
    first); the other rungs are ``pending``, the baselines left out of a rung ``partial``."""
    ours_name, baselines = ladder.recipes[0], ladder.recipes[1:]
    todo = rungs_done if rungs_done is not None else {rung: list(ladder.recipes) for rung in ladder.rungs()}
    rungs = []
    for (depth, steps), names in todo.items():
        sweep = ladder.sweep(depth, steps)
        runs = {r: {s: read_run(run_dir(sweep, r, s)) for s in ladder.seeds} for r in names}
        any_run = runs[ours_name][ladder.seeds[0]]
        seen = steps * any_run["tokens_per_step"]
        recipes = {}
        for name, by_seed in runs.items():
            finals, bests = [r["final"] for r in by_seed.values()], [r["best"] for r in by_seed.values()]
            recipes[name] = {"final": stats.describe(finals), "best": stats.describe(bests),
                             "final_by_seed": {s: r["final"] for s, r in by_seed.items()},
                             "best_by_seed": {s: r["best"] for s, r in by_seed.items()},
                             "best_step_by_seed": {s: r["best_step"] for s, r in by_seed.items()},
                             "flops_per_token": by_seed[ladder.seeds[0]]["flops_per_token"],
                             "curves": {s: r["curve"] for s, r in by_seed.items()},
                             "train_seconds": stats.describe([r["train_seconds"] for r in by_seed.values()])}
        versus = {}
        for base in (b for b in baselines if b in runs):
            ours, theirs = runs[ours_name], runs[base]
            versus[base] = {
                "final": stats.compare([ours[s]["final"] for s in ladder.seeds],
                                       [theirs[s]["final"] for s in ladder.seeds], paired=True),
                "best": stats.compare([ours[s]["best"] for s in ladder.seeds],
                                      [theirs[s]["best"] for s in ladder.seeds], paired=True),
                "cm": multipliers(ours, theirs, best=False),
                "cm_best_so_far": multipliers(ours, theirs, best=True),
                "cm_at_their_final": multipliers_at_their_final(ours, theirs)}
            versus[base]["cm_headline"] = headline(versus[base]["cm"], versus[base]["cm_at_their_final"])
            versus[base]["verdict"] = stats.verdict(versus[base]["final"])
        rungs.append({"rung": f"d{depth}_s{steps}", "depth": depth, "steps": steps, "tokens": seen,
                      "epochs": seen / tokens if tokens else None, "recipes": recipes, "versus": versus})
    return {"benchmark": "ladder", "preset": ladder.preset, "ours": ours_name, "baselines": list(baselines),
            "seeds": list(ladder.seeds), "depths": list(ladder.depths), "steps": list(ladder.steps),
            "training_tokens": tokens, "accept_p": stats.ACCEPT_P, "base_config": asdict(ladder.base),
            "cm_targets": {b: CM_TARGETS.get(b) for b in baselines}, "rungs": rungs,
            "summary": summary(rungs, baselines), "wall_seconds": wall_seconds(ladder, todo),
            "pending": [f"d{d}_s{s}" for d, s in ladder.rungs() if (d, s) not in todo],
            "partial": {f"d{d}_s{s}": [b for b in baselines if b not in names] for (d, s), names in todo.items()
                        if len(names) < len(ladder.recipes)}}


def wall_seconds(ladder: Ladder, rungs: dict[tuple[int, int], list[str]]) -> float:
    """The wall time of these rungs' runs of these recipes: every run's process, from start to exit, over however
    many invocations it took (a run finished before the times were recorded counts its training time)."""
    walls, total = read_walls(ladder), 0.0
    for (depth, steps), recipes in rungs.items():
        sweep = ladder.sweep(depth, steps)
        for recipe in recipes:
            for seed in ladder.seeds:
                key = f"{sweep.out.name}/{recipe}/{seed}"
                total += walls[key] if key in walls else read_run(run_dir(sweep, recipe, seed))["train_seconds"]
    return total


def summary(rungs: list[dict], baselines) -> dict:
    """Per baseline: the headline CM's range over the rungs (geometric means over seeds), how many rungs reach the
    target, and the rungs where ours is significantly worse at the end."""
    out = {}
    for base in baselines:
        compared = [r for r in rungs if base in r["versus"]]  # a rung where this baseline has not finished: not here
        cms = [r["versus"][base]["cm_headline"]["geomean"] for r in compared
               if r["versus"][base]["cm_headline"]["geomean"]]
        target = CM_TARGETS.get(base)
        out[base] = {"cm_min": min(cms, default=None), "cm_max": max(cms, default=None),
                     "rungs_at_target": sum(c >= target for c in cms) if target else None, "rungs": len(compared),
                     "extrapolated": [r["rung"] for r in compared if r["versus"][base]["cm_headline"]["extrapolated"]],
                     "significantly_worse": [r["rung"] for r in compared
                                             if r["versus"][base]["verdict"] == "regression"]}
    return out


def write(data: dict, out: Path) -> tuple[Path, Path, Path]:
    from nanochat_next.bench.ladder_report import plot, report

    return write_stamped(out, f"ladder_{data['preset']}", data, plot, report)
