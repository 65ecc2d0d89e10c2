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

    from nanochat_next.bench.harness import DEFAULT_OUT
    from nanochat_next.bench.profiles import PINNED_NANOCHAT, PROFILES

    p = sub.add_parser("bench", help="benchmark ours vs nanochat: a pass/fail scorecard as JSON + Markdown",
                       formatter_class=fmt,
                       description="Train nanochat (pinned ref) and ours on one dataset with one tokenizer, config, "
                                   "seed and device; measure tok/s, val bpb, time to a target bpb, peak memory, "
                                   "decode tok/s and reproducibility; write OUT/bench_<profile>_<UTC>.json/.md "
                                   "with a quality/speed/reproducibility scorecard. Without a nanochat checkout "
                                   "(and offline) ours runs alone and the scorecard says 'baseline: not run'. "
                                   "Profiles: " + "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values()))
    p.add_argument("--profile", required=True, choices=list(PROFILES), help="the config to run (see above)")
    p.add_argument("--nanochat", metavar="PATH", help="a local nanochat checkout to use as the baseline")
    p.add_argument("--nanochat-ref", metavar="SHA", default=PINNED_NANOCHAT,
                   help="without --nanochat: clone nanochat at this commit into the cache (needs internet once)")
    p.add_argument("--nanochat-python", metavar="PY",
                   help="the Python that runs nanochat (needs its dependencies; default: this one)")
    p.add_argument("--no-baseline", action="store_true", help="run ours alone (the scorecard says so)")
    p.add_argument("--device", choices=DEVICES,
                   help="override the profile's device (our dtype then follows our default rule)")
    p.add_argument("--steps", type=positive_int, help="override the profile's number of steps")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="where the .json and .md go (commit an artifact deliberately with --out results/)")
    p.add_argument("--keep-work", action="store_true", help="keep the temporary runs, logs and checkpoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)


def cmd_doctor(args: argparse.Namespace) -> int:
    from nanochat_next.runtime import format_profile, runtime_profile

    if not args.no_compile_check:
        print("checking torch.compile (the first compile on a machine can take ~30 s) ...", file=sys.stderr)
    profile = runtime_profile(args.device, check_compile=not args.no_compile_check, measure=args.measure)
    print(json.dumps(profile, indent=2) if args.json else format_profile(profile))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from nanochat_next.bench.harness import BenchOptions, run_bench
    from nanochat_next.bench.scorecard import scorecard_table

    if args.nanochat and args.no_baseline:
        raise UserError("--nanochat and --no-baseline contradict each other; pass one")
    result = run_bench(BenchOptions(profile=args.profile, nanochat=args.nanochat,
                                    nanochat_ref=None if args.no_baseline or args.nanochat else args.nanochat_ref,
                                    nanochat_python=args.nanochat_python, device=args.device, out=args.out,
                                    steps=args.steps, keep_work=args.keep_work, progress=not args.no_progress))
    print(scorecard_table(result["scorecard"]))
    base = result["baseline"]
    if base["status"] != "run":
        print(f"baseline {base['status']}: {base['reason']}")
    print(f"wrote {result['artifacts']['json']} and {result['artifacts']['md']}")
    return 0
