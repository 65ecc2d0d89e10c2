"""``doctor`` (what this machine can run, and why) and ``bench`` (ours vs nanochat, with a scorecard)."""

from __future__ import annotations

import argparse
import json
import sys

from nanochat_next.cli.args import DEVICES, positive_int
from nanochat_next.errors import UserError


def register(sub, fmt) -> None:
    p = sub.add_parser("doctor", help="print the runtime profile: versions, devices, dtypes, compile support",
                       formatter_class=fmt,
                       description="Print python/torch versions, available devices, the default dtype of each "
                                   "device and why, whether torch.compile works, and threads. With --device, check "
                                   "that one device only; an absent device is an error (exit code 2).")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="device to check; auto reports every available device")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.add_argument("--no-compile-check", action="store_true", help="skip the torch.compile test (it takes seconds)")
    p.add_argument("--measure", action="store_true", help="also measure matmul GFLOP/s per dtype (about 2 s)")
    p.set_defaults(func=cmd_doctor)
    register_bench(sub, fmt)
    register_ablate(sub, fmt)
    register_ladder(sub, fmt)


def register_bench(sub, fmt) -> None:
    from nanochat_next.bench.harness import DEFAULT_OUT
    from nanochat_next.bench.profiles import NEWEST_NANOCHAT, PINNED_NANOCHAT, PROFILES
    from nanochat_next.train.config import RECIPES

    p = sub.add_parser("bench", help="benchmark ours vs nanochat: a pass/fail scorecard as JSON + Markdown",
                       formatter_class=fmt,
                       description="Train nanochat (at the pinned ref and at its newest commit we pin, each from its "
                                   "own code) and ours on one dataset with one tokenizer, config, "
                                   "seed and device; measure tok/s, val bpb, time to a target bpb, peak memory, "
                                   "decode tok/s and reproducibility; write OUT/bench_<profile>_<UTC>.json/.md "
                                   "with a quality/speed/reproducibility scorecard. Without a nanochat checkout "
                                   "(and offline) ours runs alone and the scorecard says 'baseline: not run'. "
                                   "Profiles: " + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()))
    p.add_argument("--profile", required=True, choices=list(PROFILES), help="the config to run (see above)")
    p.add_argument("--nanochat", metavar="PATH", help="a local nanochat checkout to use as the baseline")
    p.add_argument("--nanochat-ref", metavar="SHA", default=PINNED_NANOCHAT,
                   help="without --nanochat: clone nanochat at this commit into the cache (needs internet once)")
    p.add_argument("--nanochat-newest", metavar="PATH",
                   help="a local checkout of nanochat's newest commit, the second baseline (any commit: its hash is "
                        "recorded)")
    p.add_argument("--nanochat-newest-ref", metavar="SHA", default=NEWEST_NANOCHAT,
                   help="without --nanochat-newest: clone nanochat at this commit into the cache for the second "
                        "baseline (needs internet once)")
    p.add_argument("--no-newest", action="store_true", help="run only the pinned ref as the baseline")
    p.add_argument("--nanochat-python", metavar="PY",
                   help="the Python that runs nanochat (needs its dependencies; default: this one)")
    p.add_argument("--no-baseline", action="store_true", help="run ours alone (the scorecard says so)")
    p.add_argument("--device", choices=DEVICES,
                   help="override the profile's device (our dtype then follows our default rule)")
    p.add_argument("--steps", type=positive_int, help="override the profile's number of steps")
    p.add_argument("--seeds", metavar="S1,S2,...",
                   help="our seeds, e.g. 101,102,103,104,105 (default: the profile's, 42,43,44): more seeds for a "
                        "firmer p-value, or seeds no tuning step used; nanochat's own runs always use its seed 42")
    p.add_argument("--recipe", choices=list(RECIPES), default=None,
                   help="our side's recipe (default: the profile's, next); with next, our nanochat recipe also runs "
                        "on the same seeds for the significance test")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="where the .json and .md go (commit an artifact deliberately with --out results/)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary runs, logs and checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)


def register_ablate(sub, fmt) -> None:
    from nanochat_next.bench.ablate import PRESETS
    from nanochat_next.bench.profiles import PROFILES

    p = sub.add_parser("ablate", help="a grid over train flags, several seeds each: means, CIs, p-values, a plot",
                       formatter_class=fmt,
                       description="Train every combination of the --grid values (the first values are the "
                                   "baseline) with every seed, each run an ordinary `train --config` process; "
                                   "report the final metric per variant (mean, std, 95% CI), tok/s, time to a "
                                   "target bpb, and against the baseline the difference with paired and Welch "
                                   "t-test p-values; an improvement needs p < 0.01. An interrupted sweep, run "
                                   "again with the same arguments, skips the finished runs.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--grid", help="e.g. 'depth=2,4 matrix_lr=0.02,0.03' (train flags, values by comma)")
    what.add_argument("--preset", choices=list(PRESETS),
                      help="a named grid: seed (tied lm_head x input RMSNorm), hparams and features (the screens "
                           "behind the next recipe, one change at a time), more (candidates not yet measured), "
                           "recipe (nanochat vs next)")
    base = p.add_mutually_exclusive_group()
    base.add_argument("--base-config", metavar="FILE", help="the run config the grid varies (a run's config.json)")
    base.add_argument("--profile", choices=list(PROFILES), help="start from a bench profile's run config")
    p.add_argument("--each", action="store_true",
                   help="one change at a time: the baseline, then each other value of each key alone (a screen)")
    p.add_argument("--seeds", default="42,43,44", help="comma-separated seeds (at least 2 for any p-value)")
    p.add_argument("--steps", type=positive_int, help="override the base config's steps")
    p.add_argument("--target-bpb", type=float, help="time-to-target threshold (tensor runs)")
    p.add_argument("--name", help="the sweep's name in its artifact names (default: the grid's keys)")
    p.add_argument("--out", default=None, help="the sweep directory (default: out/ablate/NAME)")
    p.set_defaults(func=cmd_ablate)


def register_ladder(sub, fmt) -> None:
    from nanochat_next.bench.ladder import PRESETS as LADDERS
    from nanochat_next.train.config import RECIPES

    p = sub.add_parser("ladder", help="recipes compared across depths and token budgets by compute multiplier",
                       formatter_class=fmt,
                       description="Train every recipe (ours first, then the baselines) at every depth and number "
                                   "of steps with the same seeds, tokenizer and data; per rung report the final and "
                                   "best val bpb, epochs, paired p-values and nanochat's compute multiplier against "
                                   "every baseline; write OUT/ladder_<preset>_<UTC>.json/.md/.png. Resumable: run "
                                   "it again with the same arguments to continue (finished runs are kept). "
                                   "Presets: " + "; ".join(f"{k}: {v.description}" for k, v in LADDERS.items()))
    p.add_argument("--preset", choices=list(LADDERS), default="cpu", help="sizes, budgets, data and seeds")
    p.add_argument("--depths", help="comma-separated depths (default: the preset's)")
    p.add_argument("--steps", help="comma-separated token budgets in steps (default: the preset's)")
    p.add_argument("--recipes", help=f"comma-separated, ours first (default: the preset's; known: "
                                     f"{', '.join(RECIPES)})")
    p.add_argument("--seeds", help="comma-separated, at least two (default: the preset's)")
    p.add_argument("--out", default=None, help="the ladder's directory, artifacts included (default: "
                                               "out/ladder/PRESET)")
    p.add_argument("--report", action="store_true", help="train nothing: write the artifacts of what has "
                                                         "finished so far (a rung is compared with each baseline "
                                                         "that finished it; the rest listed as partial or pending)")
    p.set_defaults(func=cmd_ladder)


def cmd_doctor(args: argparse.Namespace) -> int:
    from nanochat_next.dtype_choice import cache_key, measured
    from nanochat_next.runtime import format_profile, runtime_profile
    from nanochat_next.train.muon import orthogonalize_items
    from nanochat_next.train.recipe import default_muon_shapes

    def say(text: str) -> None:
        print(text, file=sys.stderr)

    shapes = default_muon_shapes()

    def muon_measure():
        return measured(cache_key("muon", shapes), lambda: orthogonalize_items(shapes), say=say,
                        what="Muon's orthogonalisation")

    if not args.no_compile_check:
        print("checking torch.compile (the first compile on a machine can take ~30 s) ...", file=sys.stderr)
    profile = runtime_profile(args.device, check_compile=not args.no_compile_check, measure=args.measure,
                              muon_measure=muon_measure)
    print(json.dumps(profile, indent=2) if args.json else format_profile(profile))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from nanochat_next.bench.harness import BenchOptions, run_bench
    from nanochat_next.bench.scorecard import scorecard_table

    if args.nanochat and args.no_baseline:
        raise UserError("--nanochat and --no-baseline contradict each other; pass one")
    if args.nanochat_newest and (args.no_baseline or args.no_newest):
        raise UserError("--nanochat-newest and --no-baseline/--no-newest contradict each other; pass one")
    no_newest = args.no_baseline or args.no_newest
    result = run_bench(BenchOptions(profile=args.profile, nanochat=args.nanochat,
                                    nanochat_ref=None if args.no_baseline or args.nanochat else args.nanochat_ref,
                                    newest=args.nanochat_newest,
                                    newest_ref=None if no_newest or args.nanochat_newest else args.nanochat_newest_ref,
                                    nanochat_python=args.nanochat_python, device=args.device, out=args.out,
                                    steps=args.steps, seeds=comma_list(args.seeds, "--seeds"),
                                    recipe=args.recipe, keep_work=args.keep_work,
                                    progress=not args.no_progress))
    print(scorecard_table(result["scorecard"]))
    for name, base in (("baseline", result["baseline"]), ("second baseline", result["baseline_newest"])):
        if base and base["status"] != "run":
            print(f"{name} {base['status']}: {base['reason']}")
    print(f"wrote {result['artifacts']['json']} and {result['artifacts']['md']}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace
    from pathlib import Path

    from nanochat_next.atomic import writable_dir
    from nanochat_next.bench.ablate import PRESETS, Sweep, parse_grid, run_sweep, write
    from nanochat_next.bench.profiles import PROFILES
    from nanochat_next.run_config import from_fields, read_config
    from nanochat_next.scalar.config import ScalarRun
    from nanochat_next.train.config import TensorRun, with_recipe_fields

    if args.base_config:
        mode, base = read_config(args.base_config)
        base = with_recipe_fields(base) if mode == "tensor" else base
    else:
        mode, base = "tensor", asdict(PROFILES[args.profile].run if args.profile else TensorRun())
    config = from_fields({"scalar": ScalarRun, "tensor": TensorRun}[mode], base, args.base_config or "the base")
    if args.steps:
        config = replace(config, steps=args.steps)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds: expected distinct seeds, got {args.seeds!r}")
    grid, each = PRESETS[args.preset] if args.preset else (args.grid, args.each)
    variants = parse_grid(grid, mode, each=each or args.each)
    name = args.name or args.preset or "-".join(dict.fromkeys(k for v in variants for k in v[1]))
    out = writable_dir(args.out or Path("out") / "ablate" / name)
    sweep = Sweep(name, mode, asdict(config), variants, seeds, out, args.target_bpb)
    print(f"ablation {name}: {len(variants)} variants x {len(seeds)} seeds = {len(variants) * len(seeds)} runs "
          f"in {out}/ (baseline {variants[0][0]})")
    data = run_sweep(sweep)
    json_path, md_path, png = write(data, out)
    for variant, row in data["variants"].items():
        m = row["metric"]
        print(f"{variant:40s} {m['mean']:.4f} +- {m['std']:.4f}  {row.get('verdict', '(baseline)')}"
              + (f"  p={row['paired']['p_value']:.3g}" if row.get("paired", {}).get("p_value") is not None else ""))
    print(f"wrote {json_path}, {md_path} and {png}")
    return 0


def comma_list(text: str | None, flag: str, kind=int) -> tuple | None:
    """'2,4,6' -> (2, 4, 6); None stays None (the preset's); anything else is one clear error."""
    if text is None:
        return None
    try:
        values = tuple(kind(v.strip()) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag}: expected comma-separated {kind.__name__}s, got {text!r}") from None
    if not values:
        raise UserError(f"{flag} is empty")
    return values


def cmd_ladder(args: argparse.Namespace) -> int:
    from pathlib import Path

    from nanochat_next.atomic import writable_dir
    from nanochat_next.bench.ladder import Ladder, report_ladder, run_ladder, write

    out = writable_dir(args.out or Path("out") / "ladder" / args.preset)
    ladder = Ladder.from_preset(args.preset, out, depths=comma_list(args.depths, "--depths"),
                                steps=comma_list(args.steps, "--steps"),
                                recipes=comma_list(args.recipes, "--recipes", str),
                                seeds=comma_list(args.seeds, "--seeds"))
    runs = len(ladder.rungs()) * len(ladder.recipes) * len(ladder.seeds)
    print(f"ladder {args.preset}: depths {list(ladder.depths)} x steps {list(ladder.steps)} x recipes "
          f"{', '.join(ladder.recipes)} x seeds {list(ladder.seeds)} = {runs} runs in {out}/")
    data = report_ladder(ladder) if args.report else run_ladder(ladder)
    json_path, md_path, png = write(data, out)
    if data["pending"]:
        print(f"pending (not every run finished): {', '.join(data['pending'])}")
    for rung, missing in data.get("partial", {}).items():
        print(f"partly run: {rung} without {', '.join(missing)} (its runs unfinished)")
    ours = data["ours"]
    for base, s in data["summary"].items():
        cms = f"{s['cm_min']:.2f} to {s['cm_max']:.2f}" if s["cm_min"] is not None else "undefined"
        print(f"{ours} vs {base}: CM {cms} over {s['rungs']} rungs"
              + (f"; significantly worse at {', '.join(s['significantly_worse'])}" if s["significantly_worse"]
                 else ""))
    print(f"wrote {json_path}, {md_path} and {png}")
    return 0
