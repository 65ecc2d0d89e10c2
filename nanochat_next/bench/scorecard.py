"""The verdict and the report: tok/s after warm-up, time to a target bpb, the three-row scorecard, the .md.

Steady tok/s leaves out the profile's first ``warmup_steps`` steps and any later step slower than
``OUTLIER_FACTOR`` x the median step time of the run's second half (a recompilation or a page-in, not the
speed of training): a compile that leaks into later steps cannot decide a comparison.
"""

from __future__ import annotations

import json
import math
import statistics

from nanochat_next.bench.baseline import Baseline
from nanochat_next.bench.profiles import PINNED_NANOCHAT, PROFILES, SPEED_THRESHOLD, Profile
from nanochat_next.bench.stats import ACCEPT_P

OUTLIER_FACTOR = 3.0


def steady_steps(step_seconds: list[float], warmup: int) -> list[int]:
    """Indices of the steps that measure steady speed (see the module docstring); all of them if none qualify."""
    if not step_seconds:
        return []
    reference = statistics.median(step_seconds[len(step_seconds) // 2:])
    steady = [i for i, d in enumerate(step_seconds) if i >= warmup and d <= OUTLIER_FACTOR * reference]
    return steady or list(range(len(step_seconds)))


def parse_our_metrics(text: str) -> dict:
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    train = [r for r in records if "loss" in r]
    return {"losses": [r["loss"] for r in train], "dt": [r["dt"] for r in train],
            "tok_per_s": [r["tok_per_s"] for r in train],
            "evals": [{"step": r["step"], "val_bpb": r["val_bpb"]} for r in records if "val_bpb" in r]}


def smooth(losses: list[float], beta: float = 0.9) -> list[float]:
    """nanochat's logged training loss: an EMA with bias correction (what its step lines print)."""
    out, ema = [], 0.0
    for i, loss in enumerate(losses):
        ema = beta * ema + (1 - beta) * loss
        out.append(ema / (1 - beta ** (i + 1)))
    return out


def summarize(raw: dict, warmup: int, target_bpb: float | None) -> dict:
    """tok/s statistics after warm-up, a training-time axis and the time to the target bpb.

    Training time excludes evals and counts each step that is not steady (warm-up, compilation) at the steady
    median step time, so a compile cache hit or miss does not decide the comparison."""
    dts = raw["dt"]
    steady = steady_steps(dts, warmup)
    tps = [raw["tok_per_s"][i] for i in steady]
    steady_dt = statistics.median(dts[i] for i in steady)
    kept = set(steady)
    clean = [d if i in kept else steady_dt for i, d in enumerate(dts)]
    elapsed = [0.0]
    for d in clean:
        elapsed.append(elapsed[-1] + d)
    evals = [{**e, "train_time_s": elapsed[min(e["step"], len(clean))]} for e in raw["evals"]]
    reached = [e for e in evals if target_bpb is not None and e["val_bpb"] <= target_bpb]
    return {"tok_per_s": {"median": statistics.median(tps), "min": min(tps), "max": max(tps)},
            "evals": evals, "final_val_bpb": evals[-1]["val_bpb"] if evals else None,
            "time_to_target_s": reached[0]["train_time_s"] if reached else None,
            "steps_to_target": reached[0]["step"] if reached else None,
            "step_seconds": raw["dt"], "train_time_s": elapsed[-1]}


# ------------------------------------------------------------------------------------------------ the verdict

def quality_rule(profile: Profile) -> str:
    n = len(profile.seeds)
    if profile.quality_margin <= 0:
        return f"mean final val bpb of our {n} seeds <= nanochat's + {-profile.quality_margin:g}"
    return (f"mean final val bpb of our {n} seeds <= nanochat's - {profile.quality_margin:g}, and p < "
            f"{ACCEPT_P} (paired t-test) against our nanochat-recipe runs on the same seeds")


def our_seed_keys(profile: Profile) -> list[str]:
    """The run keys of our recipe on each seed: ``ours`` (the first), then ``ours_seed<k>``."""
    return ["ours"] + [f"ours_seed{i + 1}" for i in range(1, len(profile.seeds))]


def our_time_to_target(profile: Profile, runs: dict) -> float | None:
    """The median over our seeds (a seed that never reached the target counts as never)."""
    keys = our_seed_keys(profile)
    times = [runs[k]["time_to_target_s"] if runs[k]["time_to_target_s"] is not None else math.inf
             for k in keys if runs.get(k)]
    t = statistics.median(times) if times else math.inf
    return None if math.isinf(t) else t


def judge_quality(profile: Profile, runs: dict, quality: dict | None) -> tuple[str, float, str]:
    """(status, our mean - nanochat's, detail)."""
    finals = [runs[k]["final_val_bpb"] for k in our_seed_keys(profile) if runs.get(k)]
    nc = runs["nanochat"]["final_val_bpb"]
    delta = statistics.fmean(finals) - nc
    test = (quality or {}).get("paired_vs_nanochat_recipe")
    p = test["p_value"] if test else None
    significant = p is not None and p < ACCEPT_P and test["difference"] < 0
    ok = -delta >= profile.quality_margin and (profile.quality_margin <= 0 or significant)
    detail = (f"mean val bpb {statistics.fmean(finals):.4f} over {len(finals)} seeds vs nanochat {nc:.4f} "
              f"({delta:+.4f}); spread {max(finals) - min(finals):.4f}")
    if test:
        detail += (f"; vs our nanochat recipe {test['difference']:+.4f}, p = "
                   + ("n/a" if p is None else f"{p:.2g}"))
    return ("pass" if ok else "fail"), delta, detail


def scorecard(profile: Profile, runs: dict, baseline: Baseline, reproducibility: dict,
              quality: dict | None = None) -> list[dict]:
    """Three rows: quality, speed, reproducibility; status "pass", "fail" or "baseline: not run|failed"."""
    ours, nc = runs["ours"], runs.get("nanochat")
    rule = quality_rule(profile)
    speed_rule = (f"our median tok/s / nanochat's >= {SPEED_THRESHOLD} and nanochat's time to its final val bpb / "
                  f"ours (median over seeds) >= {profile.time_ratio_target}")
    repro_rule = (f"two runs with seed {profile.seeds[0]}: max |loss difference| <= {profile.repro_tolerance:g}; "
                  "metadata complete; our work tree clean")
    if nc is None:
        missing = f"baseline: {baseline.status}"
        rows = [{"row": "quality", "status": missing, "value": None, "threshold": rule,
                 "detail": baseline.reason},
                {"row": "speed", "status": missing, "value": None, "threshold": speed_rule, "detail": baseline.reason}]
    else:
        status, delta, quality_detail = judge_quality(profile, runs, quality)
        tps_ratio = ours["tok_per_s"]["median"] / nc["tok_per_s"]["median"]
        ours_t, nc_t = our_time_to_target(profile, runs), nc["time_to_target_s"]
        if ours_t is None:
            ttt_ratio, ttt_ok, ttt_text = None, False, "ours never reached the target"
        elif nc_t is None:
            ttt_ratio, ttt_ok, ttt_text = None, True, "nanochat never reached the target, ours did"
        else:
            ttt_ratio = nc_t / ours_t
            ttt_ok = ttt_ratio >= profile.time_ratio_target
            ttt_text = f"time-to-target ratio {ttt_ratio:.2f}x ({nc_t:.1f} s vs {ours_t:.1f} s)"
        rerun = runs.get("ours_rerun")
        noise_text = ""
        if rerun:
            noise = abs(rerun["tok_per_s"]["median"] / ours["tok_per_s"]["median"] - 1)
            noise_text = f" (our two identical runs differ by {100 * noise:.1f}% in tok/s)"
        decode_text = ""
        if ours.get("decode_tok_s") and nc.get("decode_tok_s"):
            decode_text = f"; decode {ours['decode_tok_s'] / nc['decode_tok_s']:.2f}x (reported, not scored)"
        rows = [{"row": "quality", "status": status, "value": delta, "threshold": rule, "detail": quality_detail},
                {"row": "speed", "status": "pass" if tps_ratio >= SPEED_THRESHOLD and ttt_ok else "fail",
                 "value": {"tok_per_s_ratio": tps_ratio, "time_to_target_ratio": ttt_ratio}, "threshold": speed_rule,
                 "detail": f"tok/s ratio {tps_ratio:.2f}x (ours {ours.get('dtype')}, nanochat {nc.get('dtype')})"
                           f"{noise_text}; {ttt_text}" + decode_text}]
    ok = (reproducibility["identical_rerun"] and not reproducibility["missing_metadata"]
          and reproducibility["our_tree_clean"])
    diff = reproducibility["max_abs_loss_diff"]
    problems = ([] if reproducibility["identical_rerun"] else
                [f"reruns differ by up to {diff:.3g}" if diff is not None else "reruns logged different step counts"])
    problems += [f"missing metadata: {', '.join(reproducibility['missing_metadata'])}"] * bool(
        reproducibility["missing_metadata"])
    problems += [] if reproducibility["our_tree_clean"] else ["our work tree has uncommitted changes"]
    rows.append({"row": "reproducibility", "status": "pass" if ok else "fail",
                 "value": reproducibility["max_abs_loss_diff"], "threshold": repro_rule,
                 "detail": "; ".join(problems) or (f"identical losses over {profile.run.steps} steps; seed spread "
                                                   f"{reproducibility['seed_spread_bpb']:.4f} bpb")})
    return rows


def missing_metadata(metadata: dict, baseline: Baseline) -> list[str]:
    required = {"our commit": metadata["git"]["commit"], "our dirty flag": metadata["git"]["dirty"],
                "torch version": metadata["versions"].get("torch"),
                "python version": metadata["versions"].get("python"),
                "nanochat-next version": metadata["versions"].get("nanochat-next"),
                "CPU model": metadata["machine"].get("cpu"), "device name": metadata["run"].get("device_name"),
                "dtype": metadata["run"].get("dtype"), "command line": metadata.get("command")}
    if baseline.status == "run":
        required |= {"nanochat commit": baseline.commit, "nanochat dirty flag": baseline.dirty}
    return [name for name, value in required.items() if value is None or value == ""]


# ----------------------------------------------------------------------------------------------------- report

def _fmt(value, spec: str = ".4f", none: str = "-") -> str:
    return none if value is None else format(value, spec)


def scorecard_table(rows: list[dict]) -> str:
    lines = ["| row | status | measured | threshold |", "|---|---|---|---|"]
    for r in rows:
        status = {"pass": "**pass**", "fail": "**FAIL**"}.get(r["status"], r["status"])
        lines.append(f"| {r['row']} | {status} | {r['detail'] or '-'} | {r['threshold']} |")
    return "\n".join(lines)


def dtype_why(cfg: dict) -> str:
    return f" ({cfg['dtype_reason']})" if cfg.get("dtype_reason") else ""


def report(data: dict, metadata: dict) -> str:
    """The .md for people: scorecard first, then the runs, reproducibility and where it ran."""
    cfg, runs, base = data["config"], data["runs"], data["baseline"]
    nanochat_name = f"nanochat {base['commit'][:7]}" if base.get("commit") else "nanochat"
    lines = [
        f"# Benchmark `{data['profile']}`: ours vs nanochat",
        "",
        f"{PROFILES[data['profile']].description}. Device {metadata['run']['device_name']}; "
        f"ours {cfg['our_dtype']}{dtype_why(cfg)}, compile {cfg['compile']}. "
        f"Same data ({cfg['corpus']}, nanochat's parquet layout), "
        f"same tokenizer (vocab {cfg['vocab_size']}; identical: {data['same_tokenizer']}), same config (depth "
        f"{cfg['depth']}, seq {cfg['max_seq_len']}, batch {cfg['device_batch_size']} x {cfg['max_seq_len']}, "
        f"{cfg['total_batch_size']:,} tokens/step, window {cfg['window_pattern']}, {cfg['steps']} steps), seed "
        f"{data['seeds'][0]}.",
        "",
        "## Scorecard",
        "",
        scorecard_table(data["scorecard"]),
        "",
    ]
    if base["status"] != "run":
        lines += [f"Baseline {base['status']}: {base['reason']}. Quality and speed are not judged without it.", ""]
    evals = [e["step"] for e in runs["ours"]["evals"]]
    lines += ["## Runs", "",
              "| run | tok/s median (min-max) | " + " | ".join(f"bpb @{s}" for s in evals)
              + " | time to target (s) | peak memory (MB) | decode tok/s |",
              "|---|---:|" + "---:|" * len(evals) + "---:|---:|---:|"]
    recipe = data.get("recipe", "nanochat")
    seeds = data["seeds"]
    names = [("nanochat", nanochat_name), ("ours", f"ours ({recipe}) seed {seeds[0]}"),
             ("ours_rerun", f"ours ({recipe}) seed {seeds[0]} again")]
    names += [(f"ours_seed{i + 1}", f"ours ({recipe}) seed {s}") for i, s in enumerate(seeds) if i]
    names += [(f"nanochat_recipe_seed{i + 1}", f"ours (nanochat recipe) seed {s}") for i, s in enumerate(seeds)]
    for key, name in names:
        run = runs.get(key)
        if run is None:
            continue
        t = run["tok_per_s"]
        bpbs = " | ".join(_fmt(e["val_bpb"]) for e in run["evals"])
        lines.append(f"| {name} | {t['median']:,.0f} ({t['min']:,.0f}-{t['max']:,.0f}) | {bpbs} | "
                     f"{_fmt(run['time_to_target_s'], '.1f')} | {_fmt(run['peak_memory_mb'], ',.0f')} | "
                     f"{_fmt(run.get('decode_tok_s'), ',.0f')} |")
    memory = ("peak CUDA memory allocated" if cfg["device"] == "cuda"
              else "peak RSS of the training process (its own high-water mark, read by a small launcher)")
    repro = data["reproducibility"]
    lines += [
        "",
        f"tok/s leaves out the first {data['thresholds']['warmup_steps']} steps (compilation, warm-up). Time to "
        f"target = training time (evals excluded, warm-up steps counted at the steady step time) until the first "
        f"eval at val bpb <= {_fmt(data['target_bpb'])}. Memory: {memory}. Decode: greedy, batch 1, "
        f"{cfg['decode_new_tokens']} tokens after a {cfg['decode_prompt_tokens']}-token prompt, both engines on the "
        f"same weights (ours, {'nanochat recipe, ' if data.get('recipe', 'nanochat') != 'nanochat' else ''}seed "
        f"{data['seeds'][0]}); identical tokens: {data['same_greedy_tokens']}.",
        "",
        "## Reproducibility",
        "",
        f"- Seed {data['seeds'][0]} twice: max |loss difference| {_fmt(repro['max_abs_loss_diff'], '.3g')} over "
        f"{cfg['steps']} steps (identical: {repro['identical_rerun']}).",
        f"- Seeds {', '.join(repro['final_val_bpb_by_seed'])}: final val bpb "
        + ", ".join(f"{v:.4f}" for v in repro["final_val_bpb_by_seed"].values())
        + f", spread {repro['seed_spread_bpb']:.4f}: quality differences smaller than this are noise.",
        f"- Metadata missing: {', '.join(repro['missing_metadata']) or 'nothing'}; our tree clean: "
        f"{repro['our_tree_clean']}.",
        "",
        "## Where and what",
        "",
        f"- ours: nanochat-next {metadata['git']['commit']} (dirty: {metadata['git']['dirty']}); nanochat: "
        f"{base.get('commit') or 'not run'} (dirty: {base.get('dirty')}; pinned ref {PINNED_NANOCHAT[:12]}"
        + (f"; its Python {base['versions']['python']}, torch {base['versions']['torch']}"
           if base.get("versions") else "") + ").",
        f"- {metadata['machine']['cpu']}, {metadata['machine']['cpu_count']} CPUs, torch threads "
        f"{metadata['machine']['torch_threads']}; GPU {metadata['machine']['gpu']}; torch "
        f"{metadata['versions']['torch']}, CUDA {metadata['machine']['cuda']}, cuDNN {metadata['machine']['cudnn']}; "
        f"Python {metadata['versions']['python']}.",
        f"- Command: `{metadata['command']}` at {metadata['timestamp_utc']}; the whole benchmark took "
        f"{data['wall_seconds']:.0f} s.",
    ]
    return "\n".join(lines)
