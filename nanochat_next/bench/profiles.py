"""The benchmark configs: one row per profile, each holding the run config both sides train with.

A ``Profile`` is a ``TensorRun`` (the one run config, shared by both sides: model, batch, steps, eval,
device; our dtype and compile flag) plus what only the benchmark needs: the data, the tokenizer's
training text, the thresholds that decide the scorecard, the seeds and the decode measurement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from nanochat_next.errors import UserError
from nanochat_next.train.config import TensorRun, recipe_values, with_recipe_fields

PINNED_NANOCHAT = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"
# nanochat's newest commit we pin (master, 2026-07-03): the second baseline, and the source of the
# nanochat-92d63d4 recipe (train.config.NANOCHAT_NEWEST)
NEWEST_NANOCHAT = "92d63d4e8bb4df75c3b71618f31ddde2378b2bcd"
SPEED_THRESHOLD = 1.0  # ours / nanochat median tok/s, and nanochat / ours time to the target bpb


@dataclass(frozen=True)
class Profile:
    """One benchmark configuration. ``run`` is shared by both sides, except ``run.dtype`` and ``run.compile``
    (ours; nanochat: fp32 on CPU, bf16 autocast on CUDA, always compiled)."""

    name: str
    description: str
    run: TensorRun  # dtype "auto" everywhere: the runtime's policy picks it on the device that runs it
    corpus: str  # a known corpus (paragraph documents, last 10% = val shard) or "fineweb-edu:N" (N shards)
    target_bpb: float | None  # time to target without nanochat (with it: nanochat's own final bpb)
    # quality passes when our mean final val bpb (over the seeds) <= nanochat's - quality_margin; a positive
    # margin (a claim of "better") also needs p < 0.01 against our own nanochat-recipe runs on the same seeds
    quality_margin: float
    seeds: tuple[int, ...] = (42, 43)
    time_ratio_target: float = SPEED_THRESHOLD  # nanochat's time to its final bpb / ours must reach this
    warmup_steps: int = 10  # at least this many leading steps are left out of tok/s (see scorecard.steady_steps)
    repro_tolerance: float = 0.0  # max |loss difference| between two runs with one seed
    tokenizer_max_chars: int = 2_000_000_000  # nanochat's tok_train default
    decode_prompt_tokens: int = 32
    decode_new_tokens: int = 64
    decode_repeats: int = 3
    # the compiled decode step with its autotuned CPU kernels (what --compile gives); False: Inductor's defaults, for a
    # profile whose decode row checks the pipeline rather than measures a speed (smoke: 20-60 s less per batch size)
    decode_autotune: bool = True
    # also train our first seed with the model forced to float32 (Muon in the dtype measured for the bench): the
    # speed where both sides compute in fp32, the part of our speed that no dtype choice gives (harness.our_runs)
    fp32_speed_row: bool = False
    dtype_reason: str = ""  # why our side runs in its dtype (set when the profile is resolved on a machine)
    muon_dtype_reason: str = ""  # why its Muon orthogonalises in its dtype (set with dtype_reason)

    @classmethod
    def from_flat(cls, flat: dict) -> Profile:
        """The inverse of ``flat`` (an artifact's config back into a profile); unknown keys are ignored."""
        run_fields = {f.name for f in fields(TensorRun)}
        own = {f.name for f in fields(cls)} - {"run"}
        values = {k: tuple(v) if k == "seeds" else v for k, v in flat.items() if k in own}
        if "quality_tolerance" in flat and "quality_margin" not in flat:  # an artifact from before margins
            values["quality_margin"] = -flat["quality_tolerance"]
        run = with_recipe_fields({k: v for k, v in flat.items() if k in run_fields})
        return cls(run=TensorRun(**run), **values)

    def flat(self) -> dict:
        """The profile as one flat dict (the artifact's ``config``): profile fields and the run's fields."""
        fields = {k: v for k, v in asdict(self).items() if k != "run"}
        return {**fields, **asdict(self.run)}


def _run(**fields) -> TensorRun:
    return TensorRun(**{"eval_every": 50, "compile": True, **fields})


# The one table of benchmark configs. CPU targets were read off measured runs (results/bench_cpu_*.md);
# the GPU rows are configs, not measurements: no GPU number is claimed until a GPU run commits its artifact.
PROFILES: dict[str, Profile] = {p.name: p for p in (
    Profile("smoke", "the whole pipeline in under 2 minutes on a 2-core CPU (CI): depth 2, 30 steps",
            _run(device="cpu", dtype="auto", vocab_size=512, depth=2, max_seq_len=128, device_batch_size=4,
                 total_batch_size=512, steps=30, eval_every=10, eval_tokens=4096),
            corpus="tinyshakespeare", target_bpb=4.5, quality_margin=-0.02, warmup_steps=5,
            decode_prompt_tokens=16, decode_new_tokens=32, decode_autotune=False),
    Profile("cpu", "the CPU comparison: depth 4, seq 256, 2048-token steps, 200 steps on tinyshakespeare",
            _run(device="cpu", dtype="auto", vocab_size=4096, depth=4, max_seq_len=256, device_batch_size=8,
                 total_batch_size=2048, steps=200, eval_every=25, eval_tokens=16384),
            corpus="tinyshakespeare", target_bpb=2.5, quality_margin=0.02, seeds=(42, 43, 44),
            time_ratio_target=1.3, fp32_speed_row=True),
    Profile("t4", "Colab T4 (16 GB, no bf16): ours fp16 + GradScaler, depth 6, seq 512, 300 steps on FineWeb-EDU",
            _run(device="cuda", dtype="auto", vocab_size=8192, depth=6, max_seq_len=512, device_batch_size=32,
                 total_batch_size=32768, steps=300, eval_tokens=262144),
            corpus="fineweb-edu:3", target_bpb=None, quality_margin=-0.01, repro_tolerance=5e-3,
            tokenizer_max_chars=200_000_000, decode_prompt_tokens=64, decode_new_tokens=128),
    Profile("a100", "A100 (40/80 GB) bf16: depth 12 (nanochat's d12), seq 2048, 300 steps on FineWeb-EDU",
            _run(device="cuda", dtype="auto", vocab_size=32768, depth=12, max_seq_len=2048, device_batch_size=16,
                 total_batch_size=262144, steps=300, eval_tokens=1048576),
            corpus="fineweb-edu:4", target_bpb=None, quality_margin=-0.01, repro_tolerance=5e-3,
            tokenizer_max_chars=500_000_000, decode_prompt_tokens=64, decode_new_tokens=128),
    Profile("h100", "H100 (80 GB) bf16: depth 12 (nanochat's d12), seq 2048, 300 steps on FineWeb-EDU",
            _run(device="cuda", dtype="auto", vocab_size=32768, depth=12, max_seq_len=2048, device_batch_size=32,
                 total_batch_size=524288, steps=300, eval_tokens=2097152),
            corpus="fineweb-edu:5", target_bpb=None, quality_margin=-0.01, repro_tolerance=5e-3,
            tokenizer_max_chars=500_000_000, decode_prompt_tokens=64, decode_new_tokens=128),
)}


def profile_for_gpu(name: str | None, capability: tuple[int, int] | None) -> str:
    """The profile that fits a GPU (what the Colab launcher runs): no GPU -> smoke; before Ampere (T4, sm75:
    no native bf16) -> t4; an H100 -> h100; any other Ampere or newer -> a100."""
    if name is None or capability is None:
        return "smoke"
    if tuple(capability) < (8, 0):
        return "t4"
    return "h100" if "H100" in name.upper() else "a100"


def resolve_profile(name: str, steps: int | None = None, device: str | None = None,
                    recipe: str | None = None, seeds: tuple[int, ...] | None = None) -> Profile:
    """The profile with the command line's overrides; the device resolved (absent = an error). A device other
    than the profile's gets our default dtype for it. ``recipe``: our side's (default: the profile's, next).
    ``seeds``: ours and our runs of nanochat's recipes (nanochat's own base_train has no seed flag: always 42)."""
    from nanochat_next.runtime import choose_dtype, resolve_device
    from nanochat_next.train.config import run_shapes
    from nanochat_next.train.recipe import resolve_attention_dtype, resolve_muon_dtype

    if name not in PROFILES:
        raise UserError(f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
    profile = PROFILES[name]
    if seeds is not None:
        if len(set(seeds)) != len(seeds) or not seeds:
            raise UserError(f"--seeds: expected distinct seeds, got {','.join(map(str, seeds)) or 'none'}")
        profile = replace(profile, seeds=tuple(seeds))
    run = profile.run
    if steps is not None:
        run = replace(run, steps=steps)  # validated by TensorRun
    if recipe is not None:
        run = replace(run, **recipe_values(recipe))
    try:
        resolved = resolve_device(device or run.device)
    except UserError as exc:
        where = f"--device {device}" if device else f"profile {name!r} runs on {run.device}"
        raise UserError(f"{where}: {exc}. Pass --device cpu to run its config on the CPU, or pick a CPU profile "
                        "(smoke, cpu)") from None
    # our dtype: the profile's on its own device (auto on a CPU = measured there), our rule on another device
    requested = run.dtype if resolved.type == run.device else "auto"
    choice = choose_dtype(resolved, requested, run_shapes(run, run.vocab_size))
    run = replace(run, device=resolved.type, dtype=choice.name)
    # Muon's dtype decided once too (train.recipe.resolve_muon_dtype): every run of the bench orthogonalises alike
    muon = resolve_muon_dtype(run, resolved, run.vocab_size, compute=choice)
    if muon is not None:
        run = replace(run, muon_dtype=muon.name)
    attention = resolve_attention_dtype(run, resolved, run.vocab_size, choice)  # and the attention's dtype
    if attention is not None:
        run = replace(run, attention_dtype=attention.name)
    return replace(profile, run=run, dtype_reason=choice.reason, muon_dtype_reason=muon.reason if muon else "")
