"""The verdict and the report: tok/s after warm-up, time to a target bpb, the scorecard, the .md.

The scorecard has a quality and a speed row against nanochat at the pinned ref, the same two against its newest
commit when that baseline was asked for ("quality vs newest", "speed vs newest"), and a reproducibility row.

Steady tok/s leaves out the profile's first ``warmup_steps`` steps and any later step slower than
``OUTLIER_FACTOR`` x the median step time of the run's second half (a recompilation or a page-in, not the
speed of training): a compile that leaks into later steps cannot decide a comparison.
"""

from __future__ import annotations

import json
import math
import statistics

from nanochat_next.bench.baseline import Baseline
from nanochat_next.bench.profiles import NEWEST_NANOCHAT, PINNED_NANOCHAT, PROFILES, SPEED_THRESHOLD, Profile
from nanochat_next.bench.stats import ACCEPT_P

OUTLIER_FACTOR = 3.0
# #26's targets for our tok/s over nanochat's (pinned) on a CPU: where both compute in float32 (the speed of the step
# itself), and where our dtype choice runs bfloat16 because it was measured faster there
FP32_SPEED_TARGET = 1.3
BF16_SPEED_TARGET = 2.0


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

# The baselines a scorecard judges against: run key -> (row suffix, our runs of its recipe, its name in prose)
JUDGED = {"nanochat": ("", "nanochat_recipe", "nanochat", "nanochat-recipe"),
          "nanochat_newest": (" vs newest", "newest_recipe", f"nanochat {NEWEST_NANOCHAT[:7]}",
                              f"nanochat-{NEWEST_NANOCHAT[:7]}-recipe")}


def quality_rule(profile: Profile, key: str = "nanochat") -> str:
    n = len(profile.seeds)
    _, _, name, recipe = JUDGED[key]
    if profile.quality_margin <= 0:
        return f"mean final val bpb of our {n} seeds <= {name}'s + {-profile.quality_margin:g}"
    return (f"mean final val bpb of our {n} seeds <= {name}'s - {profile.quality_margin:g}, and p < "
            f"{ACCEPT_P} (paired t-test) against our {recipe} runs on the same seeds")


def our_seed_keys(profile: Profile) -> list[str]:
    """The run keys of our recipe on each seed: ``ours`` (the first), then ``ours_seed<k>``."""
    return ["ours"] + [f"ours_seed{i + 1}" for i in range(1, len(profile.seeds))]


def time_to(evals: list[dict], target: float) -> float | None:
    """Training time (s) at the first eval at or below ``target`` bpb; None if none got there."""
    return next((e["train_time_s"] for e in evals if e["val_bpb"] <= target), None)


def our_time_to_target(profile: Profile, runs: dict, target: float | None = None) -> float | None:
    """The median over our seeds (a seed that never reached the target counts as never); the run's own target
    (nanochat's final bpb) unless ``target`` is given (then read off each run's evals)."""
    keys = our_seed_keys(profile)
    reached = [runs[k]["time_to_target_s"] if target is None else time_to(runs[k]["evals"], target)
               for k in keys if runs.get(k)]
    times = [math.inf if t is None else t for t in reached]
    t = statistics.median(times) if times else math.inf
    return None if math.isinf(t) else t


def judge_quality(profile: Profile, runs: dict, quality: dict | None, key: str = "nanochat") -> tuple[str, float, str]:
    """(status, our mean - the baseline's, detail) against the baseline ``key``."""
    _, prefix, name, recipe = JUDGED[key]
    finals = [runs[k]["final_val_bpb"] for k in our_seed_keys(profile) if runs.get(k)]
    nc = runs[key]["final_val_bpb"]
    delta = statistics.fmean(finals) - nc
    test = (quality or {}).get(f"paired_vs_{prefix}")
    p = test["p_value"] if test else None
    significant = p is not None and p < ACCEPT_P and test["difference"] < 0
    ok = -delta >= profile.quality_margin and (profile.quality_margin <= 0 or significant)
    detail = (f"mean val bpb {statistics.fmean(finals):.4f} over {len(finals)} seeds vs {name} {nc:.4f} "
              f"({delta:+.4f}); spread {max(finals) - min(finals):.4f}")
    if test:
        detail += (f"; vs our {recipe} {test['difference']:+.4f}, p = "
                   + ("n/a" if p is None else f"{p:.2g}"))
    return ("pass" if ok else "fail"), delta, detail


def baseline_rows(profile: Profile, runs: dict, baseline: Baseline, quality: dict | None,
                  key: str = "nanochat") -> list[dict]:
    """The quality and speed rows against one baseline (``key``: "nanochat" or "nanochat_newest")."""
    suffix, _, name, _ = JUDGED[key]
    ours, nc = runs["ours"], runs.get(key)
    rule = quality_rule(profile, key)
    speed_rule = (f"our median tok/s / {name}'s >= {SPEED_THRESHOLD} and {name}'s time to its final val bpb / "
                  f"ours (median over seeds) >= {profile.time_ratio_target}")
    if nc is None:
        missing = f"baseline: {baseline.status}"
        return [{"row": "quality" + suffix, "status": missing, "value": None, "threshold": rule,
                 "detail": baseline.reason},
                {"row": "speed" + suffix, "status": missing, "value": None, "threshold": speed_rule,
                 "detail": baseline.reason}]
    status, delta, quality_detail = judge_quality(profile, runs, quality, key)
    tps_ratio = ours["tok_per_s"]["median"] / nc["tok_per_s"]["median"]
    # the pinned ref's final bpb is the target every run of ours was summarized with; another baseline's is read
    # off our evals
    target = None if key == "nanochat" else nc["final_val_bpb"]
    ours_t, nc_t = our_time_to_target(profile, runs, target), nc["time_to_target_s"]
    if ours_t is None:
        ttt_ratio, ttt_ok, ttt_text = None, False, "ours never reached the target"
    elif nc_t is None:
        ttt_ratio, ttt_ok, ttt_text = None, True, f"{name} never reached the target, ours did"
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
    return [{"row": "quality" + suffix, "status": status, "value": delta, "threshold": rule, "detail": quality_detail},
            {"row": "speed" + suffix, "status": "pass" if tps_ratio >= SPEED_THRESHOLD and ttt_ok else "fail",
             "value": {"tok_per_s_ratio": tps_ratio, "time_to_target_ratio": ttt_ratio}, "threshold": speed_rule,
             "detail": f"tok/s ratio {tps_ratio:.2f}x (ours {ours.get('dtype')}, {name} {nc.get('dtype')})"
                       f"{noise_text}; {ttt_text}" + decode_text}]


def scorecard(profile: Profile, runs: dict, baseline: Baseline, reproducibility: dict,
              quality: dict | None = None, newest: Baseline | None = None) -> list[dict]:
    """Rows quality, speed (against the pinned ref), quality vs newest, speed vs newest (when ``newest``, the
    second baseline, was asked for) and reproducibility; status "pass", "fail" or "baseline: not run|failed"."""
    repro_rule = (f"two runs with seed {profile.seeds[0]}: max |loss difference| <= {profile.repro_tolerance:g}; "
                  "metadata complete; our work tree clean")
    rows = baseline_rows(profile, runs, baseline, quality)
    if newest is not None:
        rows += baseline_rows(profile, runs, newest, quality, "nanochat_newest")
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


def run_dtype(run: dict) -> str:
    """The dtype a run's matmuls ran in, as a torch name."""
    return next((d for d in ("bfloat16", "float16") if run["dtype"].startswith(d)), "float32")


def speed_by_dtype(runs: dict, muon_dtype: str) -> list[dict] | None:
    """Our median tok/s over nanochat's (pinned ref, float32 on a CPU) twice: with our model forced to float32
    (``ours_fp32``, or ``ours`` where our dtype choice is float32 anyway) and in the dtype our choice made (the speed
    row's run). Reported beside the scorecard, not part of it. None without nanochat's run."""
    nc, ours = runs.get("nanochat"), runs.get("ours")
    if not nc or not ours:
        return None
    fp32_key = "ours_fp32" if runs.get("ours_fp32") else "ours" if run_dtype(ours) == "float32" else None
    keys = ([(fp32_key, True)] if fp32_key else []) + ([] if fp32_key == "ours" else [("ours", False)])
    rows = []
    for key, forced in keys:  # one row where our choice is float32 anyway
        run = runs[key]
        dtype = run_dtype(run)
        target = FP32_SPEED_TARGET if dtype == "float32" else BF16_SPEED_TARGET if dtype == "bfloat16" else None
        ratio = run["tok_per_s"]["median"] / nc["tok_per_s"]["median"]
        rows.append({"run": key, "ours_dtype": dtype, "forced": forced, "muon_dtype": muon_dtype,
                     "ours_tok_per_s": run["tok_per_s"]["median"], "nanochat_tok_per_s": nc["tok_per_s"]["median"],
                     "nanochat_dtype": nc.get("dtype"), "ratio": ratio, "target": target,
                     "met": None if target is None else ratio >= target})
    return rows


def speed_by_dtype_section(data: dict) -> list[str]:
    """The report's table of speed_by_dtype (nothing when it was not measured)."""
    rows = data.get("speed_by_dtype")
    if not rows:
        return []
    lines = ["## Speed by dtype", "",
             "| ours computes in | Muon orthogonalises in | ours tok/s | nanochat tok/s | ratio | target |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        how = "forced" if r["forced"] else "our dtype choice"
        target = "-" if r["target"] is None else f">= {r['target']:g}x: {'met' if r['met'] else 'MISSED'}"
        lines.append(f"| {r['ours_dtype']} ({how}) | {r['muon_dtype']} | {r['ours_tok_per_s']:,.0f} | "
                     f"{r['nanochat_tok_per_s']:,.0f} ({r['nanochat_dtype']}) | {r['ratio']:.2f}x | {target} |")
    lines += ["", "Median tok/s of each run after warm-up, our first seed, against nanochat's run at the pinned ref. "
              "The float32 row is the speed of our step itself (the model and its loss in fp32 on both sides; "
              "Muon in the dtype measured for this bench, where nanochat 2f09686 always orthogonalises in bf16); "
              "its target is #26's 1.3x, the other row's 2x where bfloat16 was measured faster. Single runs on a "
              "shared machine: read them with the tok/s spread of our two identical runs (the speed row).", ""]
    return lines


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


DECODE_NAMES = {"ours": "ours, compiled step (`--compile`)", "ours_eager": "ours, eager", "nanochat": "nanochat Engine"}


def decode_section(data: dict) -> list[str]:
    """The decode table (every engine at each batch size, with MBU and the ratio to nanochat) and the peaks MFU
    and MBU are measured against; nothing for an artifact from before they were measured."""
    decode, peaks = data.get("decode"), data.get("peaks")
    if not decode or not peaks:
        return []
    nc = decode.get("nanochat", {}).get("by_batch", {})
    lines = ["## Decode", "", "| engine | batch | decode tok/s | MBU | vs nanochat |", "|---|---:|---:|---:|---:|"]
    names = dict(DECODE_NAMES)
    if data.get("config", {}).get("decode_autotune") is False:  # a pipeline check (smoke), not the speed of --compile
        names["ours"] = "ours, compiled step (Inductor's defaults, not autotuned: this profile checks the pipeline)"
    for key, name in names.items():
        for batch, r in decode.get(key, {}).get("by_batch", {}).items():
            ref = nc.get(batch)
            ratio = f"{r['decode_tok_s'] / ref['decode_tok_s']:.2f}x" if ref and key != "nanochat" else "-"
            lines.append(f"| {name} | {batch} | {r['decode_tok_s']:,.0f} | {100 * r['mbu']:.1f}% | {ratio} |")
    flops = ", ".join(f"{d} {v / 1e9:,.0f} GFLOP/s" for d, v in peaks["matmul_flops"].items())
    lines += ["", f"Peaks measured on this machine after the runs: matmul {flops}; copy bandwidth "
              f"{peaks['memory_bandwidth_bytes_s'] / 1e9:.1f} GB/s. MFU = FLOPs per token (each side's own count, "
              "nanochat's estimate: 6 x matmul parameters + attention) x median tok/s / the matmul peak in the run's "
              "dtype. MBU = the bytes a decode step reads (the blocks' and head's weights once, each row's keys and "
              "values so far) x steps/s / the copy bandwidth.", ""]
    return lines


def runs_table(data: dict, nanochat_name: str, newest_name: str) -> list[str]:
    """The ## Runs section's table: every run's tok/s, val bpb at each eval, time to target, memory, MFU."""
    runs, lines = data["runs"], []
    evals = [e["step"] for e in runs["ours"]["evals"]]
    lines += ["## Runs", "",
              "| run | tok/s median (min-max) | " + " | ".join(f"bpb @{s}" for s in evals)
              + " | time to target (s) | peak memory (MB) | MFU | decode tok/s |",
              "|---|---:|" + "---:|" * len(evals) + "---:|---:|---:|---:|"]
    recipe = data.get("recipe", "nanochat")
    seeds = data["seeds"]
    names = [("nanochat", nanochat_name), ("nanochat_newest", newest_name),
             ("ours", f"ours ({recipe}) seed {seeds[0]}"),
             ("ours_rerun", f"ours ({recipe}) seed {seeds[0]} again")]
    names += [(f"ours_seed{i + 1}", f"ours ({recipe}) seed {s}") for i, s in enumerate(seeds) if i]
    names += [("ours_fp32", f"ours ({recipe}) seed {seeds[0]}, float32")]
    names += [(f"nanochat_recipe_seed{i + 1}", f"ours (nanochat recipe) seed {s}") for i, s in enumerate(seeds)]
    names += [(f"newest_recipe_seed{i + 1}", f"ours (nanochat-{NEWEST_NANOCHAT[:7]} recipe) seed {s}")
              for i, s in enumerate(seeds)]
    for key, name in names:
        run = runs.get(key)
        if run is None:
            continue
        t = run["tok_per_s"]
        bpbs = " | ".join(_fmt(e["val_bpb"]) for e in run["evals"])
        lines.append(f"| {name} | {t['median']:,.0f} ({t['min']:,.0f}-{t['max']:,.0f}) | {bpbs} | "
                     f"{_fmt(run['time_to_target_s'], '.1f')} | {_fmt(run['peak_memory_mb'], ',.0f')} | "
                     f"{_fmt(run.get('mfu') and 100 * run['mfu'], '.1f')}{'%' * bool(run.get('mfu'))} | "
                     f"{_fmt(run.get('decode_tok_s'), ',.0f')} |")
    return lines


def report(data: dict, metadata: dict) -> str:
    """The .md for people: scorecard first, then the runs, reproducibility and where it ran."""
    cfg, base = data["config"], data["baseline"]
    newest = data.get("baseline_newest")
    nanochat_name = f"nanochat {base['commit'][:7]}" if base.get("commit") else "nanochat"
    newest_name = f"nanochat {((newest or {}).get('commit') or NEWEST_NANOCHAT)[:7]}"
    lines = [
        f"# Benchmark `{data['profile']}`: ours vs nanochat"
        + (f" at its pinned ref and at {newest_name.split()[1]}" if newest else ""),
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
    if newest and newest["status"] != "run":
        lines += [f"Second baseline ({newest_name}) {newest['status']}: {newest['reason']}.", ""]
    lines += runs_table(data, nanochat_name, newest_name)
    memory = ("peak CUDA memory allocated" if cfg["device"] == "cuda"
              else "peak RSS of the training process (its own high-water mark, read by a small launcher)")
    repro = data["reproducibility"]
    lines += [
        "",
        f"tok/s leaves out the first {data['thresholds']['warmup_steps']} steps (compilation, warm-up). Time to "
        f"target = training time (evals excluded, warm-up steps counted at the steady step time) until the first "
        f"eval at val bpb <= {_fmt(data['target_bpb'])}. Memory: {memory}. Our copies of nanochat's recipes "
        f"orthogonalise Muon's update as ours does (`muon_dtype` {cfg.get('muon_dtype', 'auto')}), not in "
        f"2f09686's fixed bf16 (the two agree within 2.3e-4 bpb: results/muon_dtype.md). Decode (the decode "
        f"tok/s column): greedy, batch 1, our compiled step and nanochat's Engine (all engines and batch 8 under "
        f"Decode below), "
        f"{cfg['decode_new_tokens']} tokens after a {cfg['decode_prompt_tokens']}-token prompt, on the "
        f"same weights (ours, {'nanochat recipe, ' if data.get('recipe', 'nanochat') != 'nanochat' else ''}seed "
        f"{data['seeds'][0]}); identical tokens: {data['same_greedy_tokens']}."
        + (" The newest commit's decode is not measured: its model cannot load these weights (new keys and gate "
           "shapes). Its val bpb counts each token's raw bytes (its fix 2ce972a), ours and the pinned ref's the "
           "bytes of its decoded text: the two differ only for tokens that are not whole UTF-8 characters."
           if newest else ""),
        "",
        *speed_by_dtype_section(data),
        *decode_section(data),
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
           if base.get("versions") else "") + ")"
        + (f"; nanochat newest: {newest.get('commit') or 'not run'} (dirty: {newest.get('dirty')}; pinned "
           f"{NEWEST_NANOCHAT[:12]})" if newest else "") + ".",
        f"- {metadata['machine']['cpu']}, {metadata['machine']['cpu_count']} CPUs, torch threads "
        f"{metadata['machine']['torch_threads']}; GPU {metadata['machine']['gpu']}; torch "
        f"{metadata['versions']['torch']}, CUDA {metadata['machine']['cuda']}, cuDNN {metadata['machine']['cudnn']}; "
        f"Python {metadata['versions']['python']}.",
        f"- Command: `{metadata['command']}` at {metadata['timestamp_utc']}; the whole benchmark took "
        f"{data['wall_seconds']:.0f} s.",
    ]
    return "\n".join(lines)
