"""Argument types and the flags several commands share, each defined once."""

from __future__ import annotations

import argparse
import sys
from dataclasses import MISSING, fields

from nanochat_next.infer.engine import SEED_RANGE
from nanochat_next.runtime import DEVICE_CHOICES as DEVICES

MAX_SAMPLES = 100_000  # more is a typo, not a request (samples are generated in batches of BATCH_LIMIT)


class Parser(argparse.ArgumentParser):
    """argparse with bad input answered by ONE line, ``error: ...``, and exit code 2 (no usage dump)."""

    def error(self, message: str):
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's help ends with its default, unless the help already says what the default is (argparse's
    own formatter would add "(default: None)" after "(default: the preset's)")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.help and "(default" in action.help:
            return action.help
        return super()._get_help_string(action)


def checked(parse, ok, expected: str):
    """An argparse type: parse the text, then require ``ok(value)``; otherwise say what was expected."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):  # comparisons with nan are False, so nan is rejected too
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    convert.__name__ = expected
    return convert


positive_int = checked(int, lambda v: v > 0, "a positive integer")
non_negative_int = checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = checked(float, lambda v: v > 0, "a number > 0")
non_negative_float = checked(float, lambda v: v >= 0, "a number >= 0")
fraction = checked(float, lambda v: 0.0 < v < 1.0, "a number between 0 and 1 (exclusive)")
unit_interval = checked(float, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]")
sample_count = checked(int, lambda v: 0 < v <= MAX_SAMPLES, f"an integer from 1 to {MAX_SAMPLES:,}")
sampling_seed = checked(int, lambda v: SEED_RANGE[0] <= v <= SEED_RANGE[1],
                        f"an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]}")  # the engine's (torch.Generator's)


def field_defaults(*configs) -> dict[str, list]:
    """Every field name of the given dataclasses with its default(s), in the order of the classes."""
    found: dict[str, list] = {}
    for cls in configs:
        for f in fields(cls):
            if f.default is not MISSING:
                found.setdefault(f.name, []).append(f.default)
    return found


def add_config_flags(group, specs, *configs, describe=None) -> None:
    """Flags that set fields of run-config dataclasses: ``specs`` are (flag names, argparse kwargs, help) with the
    field named by the first flag; no flag has a default of its own (argparse.SUPPRESS: a field not given keeps
    the config's), and the help shows the dataclass's default (``describe(name)`` when the classes differ)."""
    defaults = field_defaults(*configs)
    for names, kwargs, text in specs:
        dest = names[0][2:].replace("-", "_")
        shown = describe(dest) if describe else ", ".join(str(d) for d in defaults.get(dest, ["-"]))
        if shown in ("None", ""):
            shown = "the base run's" if describe is None else shown
        described = text if "(default" in text else f"{text} (default: {shown})"  # a help that says its own default
        group.add_argument(*names, dest=dest, default=argparse.SUPPRESS, **kwargs, help=described)


def int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 512,1024, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive comma-separated integers, got {text!r}")
    return values


def add_threads_flag(p: argparse.ArgumentParser) -> None:
    """--threads on every command that computes on the CPU (main() applies it before the command runs)."""
    p.add_argument("--threads", type=positive_int, default=argparse.SUPPRESS,
                   help="CPU threads for this command and the processes it starts (default: torch's, one per core); "
                        "give each of two processes sharing the cores half")


def add_device_flag(p: argparse.ArgumentParser, what: str = "device") -> None:
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help=f"{what}; an absent device is an error, never a silent fallback")


def add_sampling_flags(p: argparse.ArgumentParser, temperature: float, top_k: int | None, scalar: bool = False) -> None:
    """Temperature, top-k, top-p and seed: the same meaning in sample and chat."""
    p.add_argument("--temperature", type=non_negative_float, default=temperature,
                   help="softmax temperature; 0 = greedy" + (" (tensor; the scalar path needs > 0)" if scalar else ""))
    p.add_argument("--top-k", type=positive_int, default=top_k, help="sample among the k most likely tokens")
    p.add_argument("--top-p", type=unit_interval, default=None, help="nucleus sampling mass in (0, 1]")
    p.add_argument("--seed", type=sampling_seed, default=0, help="sampling seed")


def add_corpus_flags(p: argparse.ArgumentParser) -> None:
    """The text a tokenizer command reads: a corpus, how it splits into documents, the held-out part."""
    p.add_argument("--corpus", default="tinyshakespeare",
                   help="a known corpus (tinyshakespeare, names), downloaded once into the cache, or a path to a "
                        "UTF-8 .txt file or a folder of .txt files")
    p.add_argument("--documents", choices=["auto", "paragraphs", "lines"], default="auto",
                   help="how to split the corpus into documents: paragraphs (blank-line separated), lines (one per "
                        "line), or auto = the known corpus's own rule, paragraphs for paths")
    p.add_argument("--val-fraction", type=fraction, default=0.1,
                   help="last fraction of the documents held out for evaluation")
    add_no_download_flag(p)


def add_no_download_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-download", action="store_true",
                   help="never download: use only the cache (error with instructions if the corpus is missing)")
