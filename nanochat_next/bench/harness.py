"""The benchmark harness: ours vs karpathy/nanochat at a pinned ref, on one dataset, one tokenizer, one config.

``nanochat-next bench --profile NAME`` (and notebook 06) call :func:`run_bench`, which

1. prepares ONE dataset in nanochat's layout and ONE tokenizer: nanochat trains it with its own
   ``scripts.tok_train``; ours trains on the same text and must come out identical (``data``);
2. trains nanochat (its ``scripts.base_train``, in a private ``NANOCHAT_BASE_DIR``) at the pinned ref and at
   its newest commit we pin (the second baseline; its own tokenizer training must also give our tokens), and
   ours (``nanochat-next train --config``, the profile's run config) on the same device, each in its own process;
3. trains ours (the profile's recipe, default ``next``) on every seed of the profile, once more on the first
   seed (the losses must be identical), and, when our recipe is not nanochat's, our nanochat recipe and our
   nanochat-92d63d4 recipe on the same seeds: the paired t-tests against them are what a claim of "better"
   than each baseline needs (p < 0.01);
4. measures greedy decode tok/s on the same trained weights (``decode_runner``), at batch 1 and 8: our engine
   as ``--compile`` gives it (the compiled one-token step), our eager engine, and nanochat's Engine;
5. measures this machine's peaks (matmul FLOP/s in each dtype that ran, copy bandwidth), so that every run's
   MFU and every decode's MBU are numbers against what the machine can do, not against a data sheet;
6. writes ``OUT/bench_<profile>_<UTC>.json`` and ``.md`` with the scorecard (``scorecard``).

nanochat's ``base_train`` has no seed flag; its seed is 42, so the first seed of every profile is 42 (the
same seed gives ours nanochat's initial weights bit for bit, see docs/parity.md).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from nanochat_next.bench import decode_runner
from nanochat_next.bench.baseline import (
    NANOCHAT_RANKS,
    Baseline,
    nanochat_train_command,
    parse_nanochat_log,
    resolve_baseline,
    run_process,
)
from nanochat_next.bench.data import DOC_CAP, first_validation_text, prepare_data, ranks_digest, tokenizer_texts
from nanochat_next.bench.profiles import NEWEST_NANOCHAT, PINNED_NANOCHAT, SPEED_THRESHOLD, Profile, resolve_profile
from nanochat_next.bench.scorecard import (
    missing_metadata,
    our_seed_keys,
    parse_our_metrics,
    report,
    run_dtype,
    scorecard,
    smooth,
    speed_by_dtype,
    summarize,
)
from nanochat_next.errors import UserError
from nanochat_next.train.config import NANOCHAT_NEWEST, recipe_values

DEFAULT_OUT = "out/bench"  # committing an artifact is a deliberate --out results/


@dataclass
class BenchOptions:
    profile: str
    nanochat: str | None = None
    nanochat_ref: str | None = PINNED_NANOCHAT
    nanochat_python: str | None = None
    newest: str | None = None  # a checkout of nanochat's newest commit (else a clone of newest_ref)
    newest_ref: str | None = NEWEST_NANOCHAT  # None: the second baseline is not run
    device: str | None = None
    recipe: str | None = None  # our side's recipe (default: the profile's, next)
    out: str = DEFAULT_OUT
    steps: int | None = None
    seeds: tuple[int, ...] | None = None  # None: the profile's
    keep_work: bool = False
    progress: bool = True


class Phases:
    """One line per phase with the elapsed time, and a bar over the phases (and the steps of a training run)."""

    def __init__(self, names: list[str], profile: Profile, progress: bool, log):
        self.log, self.t0, self.bar = log, time.perf_counter(), None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(names), desc=f"bench {profile.name}", unit="phase")

    def start(self, name: str) -> None:
        if self.bar:
            self.bar.set_postfix_str(name)
        (self.bar.write if self.bar else self.log)(f"[{time.perf_counter() - self.t0:6.1f}s] {name}")

    def step_progress(self, name: str, metrics: Path, total: int):
        """A callback for run_process: shows how many steps a training run has logged so far."""
        def poll() -> None:
            if self.bar and metrics.exists():
                done = sum(1 for line in metrics.read_text().splitlines() if '"loss"' in line)
                self.bar.set_postfix_str(f"{name}: step {done}/{total}")
        return poll

    def done(self) -> None:
        if self.bar:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def our_train_command(config: Path, seed: int, out: Path) -> list[str]:
    """Our side is the ordinary train command on the profile's run config (written to ``config``)."""
    return [sys.executable, "-m", "nanochat_next", "train", "--config", str(config), "--seed", str(seed), "--out",
            str(out), "--no-progress"]


def decode_speed(python: str, side: str, weights: Path, config: Path, cwd: Path, log_path: Path) -> dict:
    """Run the decode runner for one side in its own process: {batch: {prefill_tok_s, decode_tok_s, tokens}} and
    the process's peak RSS (MB) under ``"peak_rss_mb"``."""
    proc = run_process([python, decode_runner.__file__, side, str(weights), str(config)], cwd, dict(os.environ),
                       log_path)
    result = json.loads(log_path.read_text().split("RESULT", 1)[1])
    return {"by_batch": {int(k): v for k, v in result.items()}, "peak_rss_mb": proc["peak_rss_mb"]}


# Each baseline's private NANOCHAT_BASE_DIR under the work dir and its logs' prefix: the pinned ref's, then the
# newest commit's (its own tokenizer and token_bytes files, the same parquet shards, linked)
BASE_DIRS = {"nanochat": "ncbase", "nanochat_newest": "ncbase_newest"}


def prepare(profile: Profile, baselines: dict[str, Baseline], work: Path) -> tuple[Path, bool | None]:
    """The dataset and our tokenizer; each baseline's tokenizer too when it runs (they must all be identical).
    The second value: True when every baseline that ran its tokenizer training got our tokens, None if none did."""
    from nanochat_next.tokenizer.bpe import BPETokenizer

    base = work / BASE_DIRS["nanochat"]
    data_info = prepare_data(profile, base)
    tok_dir = work / "tokenizer"
    ours = BPETokenizer.train(list(tokenizer_texts(base / "base_data", profile.tokenizer_max_chars)),
                              profile.run.vocab_size)
    ours.save(tok_dir)
    same = None
    for key, baseline in baselines.items():
        if baseline.status != "ready":
            continue
        own = work / BASE_DIRS[key]
        if own != base:
            own.mkdir(parents=True, exist_ok=True)
            (own / "base_data").symlink_to(base / "base_data", target_is_directory=True)
        try:
            run_process([baseline.python, "-m", "scripts.tok_train", "--vocab-size", str(profile.run.vocab_size),
                         "--max-chars", str(profile.tokenizer_max_chars), "--doc-cap", str(DOC_CAP)],
                        baseline.checkout, nanochat_env(work, key), work / f"{key}_tok.log")
            theirs = subprocess.run([baseline.python, "-c", NANOCHAT_RANKS, str(own / "tokenizer" / "tokenizer.pkl")],
                                    capture_output=True, text=True, check=True).stdout.strip()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            baseline.status, baseline.reason = "failed", f"nanochat's tokenizer training failed: {exc}"
            continue
        if ranks_digest(ours.token_bytes) != theirs:
            raise UserError(f"our tokenizer and nanochat {baseline.commit[:7]}'s differ on the same text; refusing to "
                            f"compare training runs on different tokens (work dir {work})")
        same = True
    return data_info, same


def nanochat_env(work: Path, key: str = "nanochat") -> dict:
    return {**os.environ, "NANOCHAT_BASE_DIR": str(work / BASE_DIRS[key])}


def train_nanochat(profile: Profile, baseline: Baseline, work: Path, target: float | None,
                   key: str = "nanochat") -> dict | None:
    """A baseline's training run (``key``: which one), summarized; None (and the baseline marked failed) if it
    fails."""
    log_path = work / f"{key}_train.log"
    try:
        proc = run_process(nanochat_train_command(profile, baseline.python), baseline.checkout,
                           nanochat_env(work, key), log_path)
        raw = parse_nanochat_log(log_path.read_text())
    except (RuntimeError, ValueError) as exc:
        baseline.status, baseline.reason = "failed", f"nanochat's training failed: {exc}"
        return None
    baseline.status = "run"
    cuda = profile.run.device == "cuda"
    if raw["evals"]:  # time to target = to nanochat's own final bpb
        target = raw["evals"][-1]["val_bpb"]
    dtype = "bfloat16 autocast" if cuda else "float32"
    if key == "nanochat_newest" and cuda:  # 92d63d4: an explicit COMPUTE_DTYPE, bf16 from SM 8.0, no autocast
        dtype = "bfloat16 (SM >= 8.0) else float32, no autocast"
    if raw["compute_dtype"]:  # 92d63d4 prints the dtype it computes in
        dtype = raw["compute_dtype"]
    return {**summarize(raw, profile.warmup_steps, target), "smooth_losses": raw["smooth_losses"],
            "dtype": dtype, "compile": True, "commit": baseline.commit, "flops_per_token": raw["flops_per_token"],
            "peak_memory_mb": raw["reported_peak_memory_mb"] if cuda else proc["peak_rss_mb"],
            "wall_seconds": proc["wall_seconds"], "target": target}


def train_ours(profile: Profile, key: str, seed: int, work: Path, target: float | None, phases: Phases,
               config_name: str = "run_config.json") -> dict:
    out = work / key
    config = work / config_name
    proc = run_process(our_train_command(config, seed, out), Path.cwd(), dict(os.environ), work / f"{key}.log",
                       poll=phases.step_progress(key, out / "metrics.jsonl", profile.run.steps))
    raw = parse_our_metrics((out / "metrics.jsonl").read_text())
    summary = json.loads((out / "model" / "config.json").read_text())["summary"]
    cuda = profile.run.device == "cuda"
    return {**summarize(raw, profile.warmup_steps, target), "seed": seed, "losses": raw["losses"],
            "smooth_losses": smooth(raw["losses"]), "dtype": summary["dtype"], "compile": profile.run.compile,
            "peak_memory_mb": summary.get("peak_memory_mb") if cuda else proc["peak_rss_mb"],
            "wall_seconds": proc["wall_seconds"], "num_params": summary["num_params"],
            "flops_per_token": summary.get("flops_per_token")}


DECODE_BATCHES = (1, 8)
# the decode engines: (row key, side of decode_runner); the first is what a user gets with --compile
DECODE_ENGINES = (("ours", "ours-compiled"), ("ours_eager", "ours"))


def measure_decode(profile: Profile, baseline: Baseline, work: Path, runs: dict) -> dict:
    """Greedy decode on the same weights, our first seed's: of the nanochat-recipe run when there is one
    (nanochat's model cannot hold the `next` recipe's features), else of ours. Our compiled engine, our eager one
    and nanochat's Engine (if it ran), at batch 1 and 8; the compiled engine's batch-1 speed goes into
    ``runs["ours"]["decode_tok_s"]``, nanochat's into its run."""
    import torch
    from safetensors.torch import load_file

    from nanochat_next.tokenizer.bpe import BPETokenizer

    model_dir = work / ("nanochat_recipe_seed1" if (work / "nanochat_recipe_seed1").is_dir() else "ours") / "model"
    weights = work / "decode_weights.pt"
    state = load_file(str(model_dir / "model.safetensors"))
    torch.save(state, weights)
    tokenizer = BPETokenizer.load(work / "tokenizer")
    prompt = tokenizer.encode(first_validation_text(work / "ncbase" / "base_data"), prepend_bos=True)
    model_config = json.loads((model_dir / "config.json").read_text())["model_config"]
    decode_cfg = work / "decode.json"
    decode_cfg.write_text(json.dumps({
        "model_config": model_config, "prompt": prompt[:profile.decode_prompt_tokens],
        "new_tokens": profile.decode_new_tokens, "repeats": profile.decode_repeats, "device": profile.run.device,
        "dtype": profile.run.dtype, "nanochat": baseline.checkout, "batches": list(DECODE_BATCHES),
        "autotune": profile.decode_autotune}))
    decode = {key: decode_speed(sys.executable, side, weights, decode_cfg, Path.cwd(), work / f"decode_{key}.log")
              for key, side in DECODE_ENGINES}
    if runs["nanochat"] is not None:
        try:
            decode["nanochat"] = decode_speed(baseline.python, "nanochat", weights, decode_cfg,
                                              Path(baseline.checkout), work / "decode_nanochat.log")
        except RuntimeError as exc:
            decode["nanochat"] = {"error": str(exc)}
    for side in ("ours", "nanochat"):
        result = decode.get(side, {})
        if side in runs and runs[side] is not None:
            runs[side]["decode_tok_s"] = result["by_batch"][1]["decode_tok_s"] if "by_batch" in result else None
            if "error" in result:
                runs[side]["decode_error"] = result["error"]
    # what one decode step must read (MBU's numerator): the blocks' and the head's weights once, and each row's
    # keys and values of every position so far (on average, the prompt plus half the new tokens)
    c = model_config
    head_dim = c["n_embd"] // c["n_head"]
    decode["bytes"] = {
        "weights": 4 * sum(t.numel() for k, t in state.items() if k.startswith(("transformer.h.", "lm_head."))),
        "kv_per_position": 4 * 2 * c["n_layer"] * c["n_kv_head"] * head_dim,
        "mean_positions": min(len(prompt), profile.decode_prompt_tokens) + profile.decode_new_tokens / 2}
    return decode


def without_tokens(decode: dict) -> dict:
    """The decode results as the artifact keeps them: speeds and MBU, not the decoded token ids."""
    return {key: result if "by_batch" not in result else
            {**result, "by_batch": {b: {f: x for f, x in r.items() if f != "tokens"}
                                    for b, r in result["by_batch"].items()}}
            for key, result in decode.items()}


def measure_peaks(device: str, dtypes: set[str]) -> dict:
    """This machine's matmul FLOP/s in each dtype the runs used and its copy bandwidth (bytes/s), measured now
    (after the runs, on the machine the runs had)."""
    import torch

    from nanochat_next.runtime import measure_matmul_flops, measure_memory_bandwidth

    return {"matmul_flops": {d: measure_matmul_flops(device, getattr(torch, d)) for d in sorted(dtypes)},
            "memory_bandwidth_bytes_s": measure_memory_bandwidth(device)}


def add_utilisation(runs: dict, decode: dict, peaks: dict) -> None:
    """Each training run's MFU (nanochat's FLOPs per token x median tok/s / the measured peak in its dtype) and
    each decode's MBU (bytes a step reads x steps per second / the measured bandwidth), in place."""
    for run in runs.values():
        if run and run.get("flops_per_token"):
            run["mfu"] = run["flops_per_token"] * run["tok_per_s"]["median"] / peaks["matmul_flops"][run_dtype(run)]
    sizes = decode.get("bytes")
    for key, result in decode.items():
        if key == "bytes" or "by_batch" not in result:
            continue
        for batch, r in result["by_batch"].items():
            step_bytes = sizes["weights"] + batch * sizes["mean_positions"] * sizes["kv_per_position"]
            r["mbu"] = step_bytes * r["decode_tok_s"] / batch / peaks["memory_bandwidth_bytes_s"]


# Our runs of each baseline's recipe: (run key prefix, config file, recipe name), for the paired tests
REFERENCE_RECIPES = {"nanochat": ("nanochat_recipe", "nanochat_recipe.json", "nanochat"),
                     "nanochat_newest": ("newest_recipe", "newest_recipe.json", NANOCHAT_NEWEST)}


FP32_CONFIG = "fp32_config.json"  # our run config with the model in float32 (Profile.fp32_speed_row)


def our_runs(profile: Profile, newest: bool = False) -> list[tuple[str, int, str]]:
    """(key, seed, config file) of every training run of ours: the recipe on each seed (``ours`` = the first,
    ``ours_seed<k>`` the k-th), the first seed again, the first seed in float32 (``ours_fp32``, when the profile
    asks for the fp32 speed row and ours computes in another dtype), then the nanochat recipe on each seed (if ours
    differs) and, with ``newest`` (the second baseline runs), the nanochat-92d63d4 recipe on each seed."""
    seeds = profile.seeds
    runs = [("ours", seeds[0], "run_config.json"), ("ours_rerun", seeds[0], "run_config.json")]
    runs += [(f"ours_seed{i + 1}", s, "run_config.json") for i, s in enumerate(seeds) if i]
    if profile.fp32_speed_row and profile.run.dtype != "float32":  # where ours already runs fp32, "ours" is it
        runs.append(("ours_fp32", seeds[0], FP32_CONFIG))
    for key in ("nanochat", "nanochat_newest")[:1 + newest]:
        prefix, config, recipe = REFERENCE_RECIPES[key]
        if profile.run.recipe != recipe:
            runs += [(f"{prefix}_seed{i + 1}", s, config) for i, s in enumerate(seeds)]
    return runs


def by_seed(profile: Profile, runs: dict, prefix: str) -> dict[str, float]:
    """Final val bpb per seed of our recipe (``prefix="ours"``) or of our runs of a baseline's recipe
    (``prefix`` = "nanochat_recipe" or "newest_recipe")."""
    keys = our_seed_keys(profile) if prefix == "ours" else \
        [f"{prefix}_seed{i + 1}" for i in range(len(profile.seeds))]
    return {str(s): runs[k]["final_val_bpb"] for s, k in zip(profile.seeds, keys) if runs.get(k)}


def reproducibility(profile: Profile, runs: dict, metadata: dict, baseline: Baseline) -> dict:
    a, b = runs["ours"]["losses"], runs["ours_rerun"]["losses"]
    diffs = [abs(x - y) for x, y in zip(a, b)]
    same_length = len(a) == len(b)
    finals = by_seed(profile, runs, "ours")
    return {
        "identical_rerun": same_length and max(diffs, default=0.0) <= profile.repro_tolerance,
        "max_abs_loss_diff": max(diffs, default=0.0) if same_length else None,
        "seed_spread_bpb": max(finals.values()) - min(finals.values()),
        "final_val_bpb_by_seed": finals,
        "missing_metadata": missing_metadata(metadata, baseline),
        "our_tree_clean": metadata["git"]["dirty"] is False,
    }


def quality_test(profile: Profile, runs: dict) -> dict:
    """Our recipe's final bpb over the seeds against our runs of each baseline's recipe on the same seeds
    (paired): ``paired_vs_nanochat_recipe`` and, when the newest recipe ran, ``paired_vs_newest_recipe``."""
    from nanochat_next.bench import stats

    ours = by_seed(profile, runs, "ours")
    result = {"ours_by_seed": ours, "ours_mean": stats.describe(list(ours.values())), "accept_p": stats.ACCEPT_P}
    for prefix in ("nanochat_recipe", "newest_recipe"):
        ref = by_seed(profile, runs, prefix)
        if prefix == "newest_recipe" and not ref:
            continue
        test = stats.compare(list(ours.values()), list(ref.values()), paired=True) \
            if len(ref) == len(ours) > 1 else None
        result |= {f"{prefix}_by_seed": ref, f"paired_vs_{prefix}": test}
    return result


def run_description(profile: Profile, baseline: Baseline, newest: Baseline | None = None) -> dict:
    """What ran where (the artifact's metadata["run"])."""
    import torch

    from nanochat_next.runtime import device_description

    device = profile.run.device
    return {"device": device, "device_name": device_description(torch.device(device)), "dtype": profile.run.dtype,
            "compile": profile.run.compile, "seeds": list(profile.seeds), "profile": profile.name,
            "recipe": profile.run.recipe, "nanochat_pinned_ref": PINNED_NANOCHAT,
            "nanochat": {k: getattr(baseline, k) for k in ("ref", "commit", "dirty", "checkout", "python")},
            "nanochat_newest": None if newest is None else
            {k: getattr(newest, k) for k in ("ref", "commit", "dirty", "checkout", "python")}}


def same_greedy_tokens(decode: dict) -> bool | None:
    """Whether every engine of ours decoded nanochat's tokens at every batch size (None if nanochat's did not run)."""
    if "by_batch" not in decode.get("nanochat", {}):
        return None
    return all(decode[key]["by_batch"][b]["tokens"] == decode["nanochat"]["by_batch"][b]["tokens"]
               for key, _ in DECODE_ENGINES for b in DECODE_BATCHES)


def thresholds(profile: Profile) -> dict:
    return {"quality_margin_bpb": profile.quality_margin, "speed_ratio": SPEED_THRESHOLD,
            "time_ratio_target": profile.time_ratio_target, "repro_tolerance": profile.repro_tolerance,
            "warmup_steps": profile.warmup_steps}


def resolve_baselines(options: BenchOptions) -> tuple[Baseline, Baseline | None]:
    """nanochat at the pinned ref, and at its newest commit unless that was not asked for (None)."""
    baseline = resolve_baseline(options.nanochat, options.nanochat_ref, options.nanochat_python)
    if options.newest is None and options.newest_ref is None:
        return baseline, None
    return baseline, resolve_baseline(options.newest, options.newest_ref, options.nanochat_python,
                                      flag="--nanochat-newest")


def keep_or_remove(work: Path, keep: bool, log) -> None:
    """Keep the work directory (and say where), or delete it."""
    if keep:
        log(f"runs and logs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


def run_bench(options: BenchOptions, log=print) -> dict:
    """Run the benchmark; write OUT/bench_<profile>_<UTC>.json and .md; return the JSON data (with the paths
    under ``"artifacts"``)."""

    from nanochat_next.atomic import writable_dir
    from nanochat_next.provenance import run_metadata, write_results
    from nanochat_next.run_config import write_config

    # --- setup: profile, output directory (checked before hours of work), baseline, metadata
    profile = resolve_profile(options.profile, options.steps, options.device, options.recipe, options.seeds)
    writable_dir(options.out, create=False)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    baseline, newest = resolve_baselines(options)
    baselines = {"nanochat": baseline, **({"nanochat_newest": newest} if newest else {})}
    metadata = run_metadata()  # now: the git state of the code that runs, even if the tree changes meanwhile
    work = Path(tempfile.mkdtemp(prefix=f"bench-{profile.name}-"))
    ours = our_runs(profile, newest=newest is not None and newest.status == "ready")
    names = ["data + tokenizer", *[f"{key} train" for key, b in baselines.items() if b.status == "ready"],
             *[f"{key} (seed {seed})" for key, seed, _ in ours], "decode"]
    phases = Phases(names, profile, options.progress, log)
    runs: dict[str, dict | None] = {key: None for key in baselines}
    target = profile.target_bpb  # None: nanochat's final bpb + the quality tolerance, once it has run
    try:
        # --- one dataset and one tokenizer for both sides
        phases.start(names[0])
        data_info, same_tokenizer = prepare(profile, baselines, work)
        run = replace(profile.run, data=str(work / "ncbase" / "base_data"), tokenizer=str(work / "tokenizer"))
        write_config(work / "run_config.json", "tensor", run)
        if any(config == FP32_CONFIG for _, _, config in ours):
            write_config(work / FP32_CONFIG, "tensor", replace(run, dtype="float32"))
        for _, cfg, recipe in REFERENCE_RECIPES.values():
            # Muon in our measured dtype, not 2f09686's fixed bf16 (13x slower where emulated; results/muon_dtype.md)
            write_config(work / cfg, "tensor", replace(run, **recipe_values(recipe) | {"muon_dtype": run.muon_dtype}))
        phases.done()
        # --- nanochat (each baseline), then ours on every seed
        for key, base in baselines.items():
            if base.status == "ready":
                phases.start(f"{key} train")
                runs[key] = train_nanochat(profile, base, work, target if key == "nanochat" else None, key)
                if runs[key]:
                    own_target = runs[key].pop("target")
                    target = own_target if key == "nanochat" else target
                phases.done()
        for key, seed, config_name in ours:
            phases.start(f"{key} (seed {seed})")
            runs[key] = train_ours(profile, key, seed, work, target, phases, config_name)
            phases.done()
        # --- decode speed on the same weights, then the machine's peaks
        phases.start("decode")
        decode = measure_decode(profile, baseline, work, runs)
        peaks = measure_peaks(profile.run.device, {run_dtype(r) for r in runs.values() if r})
        add_utilisation(runs, decode, peaks)
        phases.done()
    except BaseException:
        phases.close()
        log(f"benchmark stopped; its logs are kept in {work}")
        raise
    phases.close()
    # --- the verdict and the artifacts
    metadata["run"] = run_description(profile, baseline, newest)
    repro = reproducibility(profile, runs, metadata, baseline)
    quality = quality_test(profile, runs)
    data = {
        "benchmark": "bench", "profile": profile.name,
        "config": {**profile.flat(), "our_dtype": profile.run.dtype}, "seeds": list(profile.seeds),
        "target_bpb": target,
        "baseline": asdict(baseline), "baseline_newest": asdict(newest) if newest else None,
        "same_tokenizer": same_tokenizer, "same_greedy_tokens": same_greedy_tokens(decode),
        "data": data_info, "recipe": profile.run.recipe, "thresholds": thresholds(profile),
        "quality": quality, "scorecard": scorecard(profile, runs, baseline, repro, quality, newest),
        "speed_by_dtype": speed_by_dtype(runs, profile.run.muon_dtype),
        "decode": without_tokens(decode), "peaks": peaks, "reproducibility": repro, "runs": runs,
        "wall_seconds": time.perf_counter() - phases.t0,
    }
    json_path, md_path = write_results(options.out, f"bench_{profile.name}_{stamp}", data, report(data, metadata),
                                       metadata)
    keep = options.keep_work or "failed" in (baseline.status, newest and newest.status)  # its logs say why
    keep_or_remove(work, keep, log)
    return {**data, "metadata": metadata, "artifacts": {"json": str(json_path), "md": str(md_path),
                                                        "work": str(work) if keep else None}}
