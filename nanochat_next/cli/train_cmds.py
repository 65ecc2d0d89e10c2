"""``train``: the command line onto the run configs (``train.config.TensorRun``, ``scalar.config.ScalarRun``).

Every run flag's name is a config field's name and has no default of its own: the run starts from the
config's defaults (or from ``--config FILE``), then the flags given on the command line replace fields.
The resolved config is written to ``OUT/config.json`` (with the overrides, when there was a file), so
``train --config OUT/config.json`` runs the same thing again.
"""

from __future__ import annotations

import argparse
from dataclasses import fields

from nanochat_next.cli.args import (
    DEVICES,
    add_config_flags,
    add_no_download_flag,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_interval,
)
from nanochat_next.errors import UserError
from nanochat_next.run_config import flag, from_fields, read_config, write_config
from nanochat_next.runtime import ATTENTION_DTYPE_CHOICES, DTYPE_CHOICES, MUON_DTYPE_CHOICES
from nanochat_next.scalar.config import ScalarRun
from nanochat_next.train.config import MUON_LRS, RECIPES, TensorRun, recipe_values, with_recipe_fields

CONFIGS = {"scalar": ScalarRun, "tensor": TensorRun}
# (flags, type/choices/action, help) of every run flag; dest = the config field; defaults come from the configs
COMMON_FLAGS = [
    (("--data", "--corpus"), {}, "known corpus (names, tinyshakespeare), a path to .txt file(s), or (tensor mode) "
                                 "a directory of parquet shards in nanochat's layout"),
    (("--documents",), {"choices": ["auto", "paragraphs", "lines"]},
     "document rule: auto = the corpus's own (names: lines), paragraphs for paths"),
    (("--val-fraction",), {"type": unit_interval}, "fraction of the documents held out for validation"),
    (("--model-kind",), {"choices": ["gpt", "bigram", "mini-gpt"]},
     "which model: tensor gpt (mini-gpt is its old name) or bigram; scalar mini-gpt or bigram"),
    (("--steps", "--num-iterations"), {"type": positive_int}, "optimizer steps"),
    (("--optimizer",), {"choices": ["adamw", "sgd", "muon"]},
     "tensor: muon (nanochat's MuonAdamW), adamw, sgd; scalar: adamw or sgd"),
    (("--lr",), {"type": positive_float}, "peak learning rate of adamw/sgd (scalar default: 0.01 mini-gpt/adamw, "
                                          "0.1 mini-gpt/sgd, 0.5 bigram/adamw, 50 bigram/sgd); muon takes the "
                                          "four group LRs below instead"),
    (("--lr-schedule",), {"choices": ["linear", "sqrt", "cosine", "constant"]},
     "warmdown shape: linear, sqrt (1-sqrt), cosine, or constant (no warmdown)"),
    (("--warmup-ratio",), {"type": unit_interval}, "fraction of steps of linear warmup"),
    (("--warmdown-ratio",), {"type": unit_interval}, "fraction of steps of warmdown"),
    (("--final-lr-fraction",), {"type": unit_interval}, "LR at the end, as a fraction of peak"),
    (("--weight-decay",), {"type": non_negative_float}, "weight decay (tensor: Muon's, scaled like nanochat)"),
    (("--seed",), {"type": int}, "seeds the data order and the weight init"),
    (("--out", "--checkpoint-dir"), {}, "output directory: model, tokenizer, checkpoints, metrics.jsonl, "
                                        "config.json"),
]
SCALAR_FLAGS = [
    (("--smoothing",), {"type": non_negative_float}, "bigram: pseudo-count added to every pair"),
    (("--n-embd",), {"type": positive_int}, "mini-gpt: embedding width"),
    (("--n-head",), {"type": positive_int}, "mini-gpt: attention heads (must divide n-embd)"),
    (("--n-layer",), {"type": positive_int}, "mini-gpt: transformer blocks"),
    (("--block-size",), {"type": positive_int}, "mini-gpt: context length in tokens"),
    (("--eval-docs",), {"type": positive_int}, "mini-gpt: held-out documents for the final validation loss"),
]
TENSOR_FLAGS = [
    (("--style",), {"choices": ["modern", "classic"]}, "modern = nanochat's GPT at 2f09686; classic = GPT-2"),
    (("--depth",), {"type": positive_int}, "layers; width = depth x aspect ratio"),
    (("--aspect-ratio",), {"type": positive_int}, "model width per layer of depth"),
    (("--head-dim",), {"type": positive_int}, "attention head width"),
    (("--max-seq-len",), {"type": positive_int}, "context length in tokens"),
    (("--window-pattern",), {}, "sliding windows per layer, e.g. SSSL (L = full context; modern style)"),
    (("--device-batch-size",), {"type": positive_int}, "sequences per micro-batch"),
    (("--total-batch-size",), {"type": positive_int},
     "tokens per optimizer step (gradient accumulation makes up the rest)"),
    (("--matrix-lr",), {"type": positive_float}, "muon: LR of the block matrices (Muon)"),
    (("--embedding-lr",), {"type": positive_float}, "muon: LR of the token embedding (AdamW)"),
    (("--unembedding-lr",), {"type": positive_float}, "muon: LR of the lm_head (AdamW)"),
    (("--scalar-lr",), {"type": positive_float}, "muon: LR of the per-layer scalars (AdamW)"),
    (("--adam-beta1",), {"type": unit_interval}, "muon: AdamW beta1 of the embeddings and lm_head"),
    (("--adam-beta2",), {"type": unit_interval}, "muon: AdamW beta2 of the embeddings and lm_head"),
    (("--eval-every",), {"type": int}, "validation bpb every N steps (<= 0: only at the end)"),
    (("--eval-tokens",), {"type": positive_int}, "validation tokens per evaluation"),
    (("--device",), {"choices": DEVICES}, "an absent device is an error, never a silent fallback"),
    (("--dtype",), {"choices": DTYPE_CHOICES},
     "compute dtype (auto: see `nanochat-next doctor`); weights stay float32"),
    (("--muon-dtype",), {"choices": list(MUON_DTYPE_CHOICES)},
     "Muon's orthogonalisation: auto = bfloat16 where measured faster (see `nanochat-next doctor`), else float32; "
     "compute = the model's compute dtype (nanochat 92d63d4's rule); the nanochat recipe uses bfloat16 as nanochat "
     "2f09686 does"),
    (("--attention-dtype",), {"choices": list(ATTENTION_DTYPE_CHOICES)},
     "the attention's dtype under a CPU's bf16 autocast: auto = float32 unless bfloat16 is measured >= 1.10x faster "
     "(a CPU's bf16 flash attention was slower on both fast-bf16 CPUs measured); compute = autocast's bfloat16; "
     "elsewhere the compute dtype"),
    (("--compile",), {"action": argparse.BooleanOptionalAction}, "torch.compile the model and the optimizer"),
    (("--deterministic",), {"action": argparse.BooleanOptionalAction},
     "torch deterministic algorithms: one seed gives identical runs"),
    (("--tokenizer",), {}, "a tokenizer directory (tok-train); default: train one on the training split"),
    (("--vocab-size",), {"type": positive_int}, "vocab of the tokenizer trained when no --tokenizer is given"),
    (("--peak-flops",), {"type": positive_float}, "peak FLOP/s for MFU (default: a matmul measured at start)"),
    (("--save-every",), {"type": non_negative_int},
     "checkpoint every N steps into OUT/checkpoints (0: only at the end); written before eval"),
    (("--keep-last",), {"type": non_negative_int}, "keep only the newest N checkpoints (0: all)"),
    (("--keep-best",), {"action": argparse.BooleanOptionalAction},
     "also save OUT/best/ (a model directory like OUT/model/): the weights at the lowest val bpb so far"),
    (("--early-stop",), {"type": non_negative_int, "metavar": "N"},
     "end the run after N evals without a new lowest val bpb (0: never); the model saved is the last one (with "
     "--keep-best, OUT/best/ holds the best)"),
]
RECIPE_FLAGS = [
    (("--recipe",), {"choices": list(RECIPES)}, "next (ours, measured better: docs/recipe.md), nanochat (exactly "
                                                 "2f09686's model and update) or nanochat-92d63d4 (nanochat's "
                                                 "newest commit's); sets every recipe flag below, which may then be "
                                                 "changed one by one"),
    (("--smear",), {"action": argparse.BooleanOptionalAction}, "mix the previous token's embedding in through a gate"),
    (("--backout",), {"action": argparse.BooleanOptionalAction},
     "subtract a learned fraction of the mid-depth residual before the head"),
    (("--qk-scale",), {"type": positive_float}, "q and k multiplied by this after QK-norm"),
    (("--rope-base",), {"type": positive_float}, "rotary embedding base (theta)"),
    (("--ve-gate-range",), {"type": positive_float}, "value-embedding gate range (0, R)"),
    (("--ve-gate-channels",), {"type": positive_int}, "channels the value-embedding gate reads"),
    (("--init",), {"choices": ["nanochat", "next"]}, "weight init: nanochat 2f09686's or its later one"),
    (("--tie-embeddings",), {"action": argparse.BooleanOptionalAction}, "lm_head shares the embedding matrix"),
    (("--embed-norm",), {"action": argparse.BooleanOptionalAction}, "RMSNorm on the token embedding"),
    (("--adam-groups",), {"choices": ["nanochat", "next"]}, "per-group AdamW betas/weight decays (later nanochat)"),
    (("--muon-beta2",), {"type": unit_interval}, "NorMuon's second-moment decay"),
    (("--muon-eq",), {"action": argparse.BooleanOptionalAction}, "MuonEq row equilibration + Muon+ renormalisation"),
    (("--muon-momentum",), {"choices": ["nanochat", "next"]},
     "Muon momentum: 0.85->0.95 over 300 steps, or ->0.97 over 400 and down to 0.90 in the warmdown"),
    (("--wd-schedule",), {"choices": ["linear", "cosine"]}, "Muon weight decay to 0 over the run: linear or cosine"),
    (("--muon-norm",), {"type": positive_float},
     "Muon divides the update by its Frobenius norm x this before orthogonalising (2f09686's margin; 92d63d4: 1.01)"),
    (("--short-window",), {"choices": ["half", "quarter128"]},
     "the S window: half the context, or a quarter rounded up to a multiple of 128 (92d63d4)"),
    (("--rotary-dtype",), {"choices": ["bfloat16", "float32"]},
     "rotary tables rounded to bfloat16 (2f09686) or kept in float32 (92d63d4 on a CPU)"),
    (("--lr-warmup-steps",), {"type": non_negative_int},
     "LR warmup in steps whatever the run's length (nanochat 92d63d4's --warmup-steps 40); instead of a warmup ratio"),
]
RUN_FIELDS = {names[0][2:].replace("-", "_") for names, _, _ in COMMON_FLAGS + SCALAR_FLAGS + TENSOR_FLAGS
              + RECIPE_FLAGS}


def defaults_text(name: str) -> str:
    values = {mode: {f.name: f.default for f in fields(cls)}.get(name, "-") for mode, cls in CONFIGS.items()}
    if values["scalar"] == values["tensor"]:
        return str(values["tensor"])
    return ", ".join(f"{v} {mode}" for mode, v in values.items() if v != "-")


def add_run_flags(group, specs) -> None:
    add_config_flags(group, specs, *CONFIGS.values(), describe=defaults_text)


def register(sub, fmt) -> None:
    p = sub.add_parser("train", help="train a model (default: nanochat's GPT on tinyshakespeare; --mode scalar "
                                     "for the teaching path) and save it",
                       description="Train a model and save it with its tokenizer, metrics and resolved config. "
                                   "--mode tensor (default) trains torch models with nanochat's recipe; --mode "
                                   "scalar trains on Python scalars (the teaching path): a bigram table or a "
                                   "microgpt-style mini-GPT on a character tokenizer.",
                       formatter_class=fmt)
    p.add_argument("--mode", choices=list(CONFIGS), default=None,
                   help="tensor: torch models, nanochat's recipe; scalar: Python Value autograd (default: tensor, or "
                        "the mode recorded in --config)")
    p.add_argument("--config", metavar="FILE",
                   help="start from a run's config.json (OUT/config.json or OUT itself); flags given here override "
                        "its fields, and the overrides are recorded")
    add_run_flags(p, COMMON_FLAGS)
    add_no_download_flag(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_run_flags(p.add_argument_group("scalar mode (--mode scalar)"), SCALAR_FLAGS)
    t = p.add_argument_group("tensor mode (--mode tensor)")
    add_run_flags(t, TENSOR_FLAGS)
    add_run_flags(p.add_argument_group("tensor recipe (docs/recipe.md)"), RECIPE_FLAGS)
    t.add_argument("--resume", default=None, metavar="latest|STEP",
                   help="continue exactly from the newest intact checkpoint in OUT/checkpoints, or from a step")
    p.set_defaults(func=cmd_train)


def resolve_run(args: argparse.Namespace):
    """(mode, config, overrides) from --config (if any) with the command line's flags on top."""
    given = {k: v for k, v in vars(args).items() if k in RUN_FIELDS}
    mode, base = args.mode or "tensor", {}
    if args.config:
        mode, base = read_config(args.config)
        if args.mode and args.mode != mode:
            raise UserError(f"--config {args.config} is a {mode} run; drop --mode {args.mode}")
        if mode not in CONFIGS:
            raise UserError(f"--config {args.config}: unknown mode {mode!r}")
        if mode == "tensor":
            base = with_recipe_fields(base)
    if mode == "tensor" and "recipe" in given:  # a recipe is a bundle of settings: it replaces the file's
        base = {**base, **recipe_values(given["recipe"])}
    cls = CONFIGS[mode]
    wrong = sorted(k for k in given if k not in {f.name for f in fields(cls)})
    if wrong:
        raise UserError(f"{', '.join(flag(k) for k in wrong)} does not apply to --mode {mode}")
    config = from_fields(cls, {**base, **given}, args.config or "the command line")
    if mode == "tensor":
        check_learning_rate_flags(config, given)
    if args.resume and mode == "scalar":
        raise UserError("--resume is for --mode tensor; a scalar run restarts from scratch")
    return mode, config, given if args.config else {}


def check_learning_rate_flags(config: TensorRun, given: dict) -> None:
    """Refuse an LR flag that the chosen optimizer would ignore."""
    if config.optimizer == "muon" and "lr" in given:
        raise UserError("--lr sets adamw/sgd's learning rate; muon (the default optimizer) has four: "
                        "--matrix-lr, --embedding-lr, --unembedding-lr, --scalar-lr")
    ignored = [flag(k) for k in MUON_LRS if k in given]
    if ignored and config.optimizer != "muon":
        raise UserError(f"{', '.join(ignored)} set Muon's group LRs; --optimizer {config.optimizer} takes --lr")


def cmd_train(args: argparse.Namespace) -> int:
    from nanochat_next.atomic import writable_dir

    mode, config, overrides = resolve_run(args)
    out = writable_dir(config.out)  # before any work: a bad --out must not cost a training run
    if mode == "scalar":
        write_config(out / "config.json", mode, config, overrides, args.config)
        return train_scalar(config, args)
    return train_tensor(config, args, overrides)


def train_scalar(run: ScalarRun, args: argparse.Namespace) -> int:
    import sys

    from nanochat_next.corpus import load_corpus, split_documents
    from nanochat_next.scalar.train import train

    text, rule = load_corpus(run.data, allow_download=not args.no_download)
    docs = split_documents(text, rule if run.documents == "auto" else run.documents)
    print(f"scalar {run.model_kind}: {len(docs):,} documents from {run.data}, {run.steps} steps of {run.optimizer} "
          f"(lr {run.learning_rate:g}, {run.lr_schedule} schedule), seed {run.seed}")
    result = train(docs, run, checkpoint_dir=run.out, progress=not args.no_progress, data_name=run.data)
    losses = result["losses"]
    print(f"{result['num_params']:,} parameters, vocab {result['vocab_size']}, "
          f"{result['steps_per_s']:.1f} steps/s over {result['steps_done']} steps")
    if losses:
        first = sum(losses[:10]) / len(losses[:10])
        last = sum(losses[-10:]) / len(losses[-10:])
        print(f"train loss {first:.4f} (first 10 steps) -> {last:.4f} (last 10); "
              f"val loss {result['val_loss']:.4f} on {result['val_documents_evaluated']:,} held-out documents")
    print(f"saved {result['checkpoint']}")
    if result["interrupted"]:
        print(f"interrupted after {result['steps_done']} steps; the checkpoint holds the model at that point",
              file=sys.stderr)
        return 130
    return 0


def train_tensor(run: TensorRun, args: argparse.Namespace, overrides: dict) -> int:
    from pathlib import Path

    from nanochat_next.train.data import run_data
    from nanochat_next.train.loop import train
    from nanochat_next.train.processes import distributed_info

    master = distributed_info()[0] == 0
    log = print if master else (lambda *a, **k: None)
    if master:
        write_config(Path(run.out) / "config.json", "tensor", run, overrides, args.config)
    data = run_data(run, args.resume, allow_download=not args.no_download, log=log, save_tokenizer=master)
    result = train(run, data, progress=not args.no_progress and master, log=log, resume=args.resume)
    if result["stopped_by"]:
        return 130  # the run was asked to stop, and saved (it said where)
    log(f"done: {result['steps']} steps, final loss {result['final_loss']:.4f}, val bpb "
        f"{result['final_val_bpb']:.4f}, median {result['tok_per_s_median']:,.0f} tok/s; saved {run.out}/")
    return 0
