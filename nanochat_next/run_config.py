"""Run configs on disk and on the command line, for every kind of run (scalar, tensor).

A run config is a frozen dataclass (``scalar.config.ScalarRun``, ``train.config.TensorRun``) whose fields are
the run's settings with their defaults. Here: the flag of a field, writing the resolved config a run leaves
in ``OUT/config.json``, and reading one back so ``train --config FILE`` reproduces the run.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields, replace
from pathlib import Path

from nanochat_next.errors import UserError

FORMAT = "nanochat-next/run-config"


def flag(name: str) -> str:
    """The CLI flag of a config field."""
    return "--" + name.replace("_", "-")


def field_names(cls) -> list[str]:
    return [f.name for f in fields(cls)]


def write_config(path: str | Path, mode: str, config, overrides: dict | None = None,
                 based_on: str | None = None) -> Path:
    """OUT/config.json: the resolved config (every field), the mode, and what was overridden on top of a file."""
    from nanochat_next.atomic import write_text

    record = {"format": FORMAT, "version": 1, "mode": mode, "config": asdict(config)}
    if based_on is not None:
        record["based_on"] = based_on
    if overrides:
        record["overrides"] = overrides
    try:
        return write_text(path, json.dumps(record, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"could not write {path} ({exc.strerror or exc})") from None


def read_config(path: str | Path) -> tuple[str, dict]:
    """(mode, fields) from a config.json written by a run (OUT/config.json), or a plain {field: value} JSON."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise UserError(f"config {path} is not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise UserError(f"config {path} must hold a JSON object")
    if record.get("format") == FORMAT:
        return record.get("mode", "tensor"), dict(record["config"])
    return record.pop("mode", "tensor"), record


def from_fields(cls, values: dict, source: str):
    """An instance of the config class ``cls`` from a dict, with one clear line for an unknown field."""
    unknown = sorted(set(values) - set(field_names(cls)))
    if unknown:
        raise UserError(f"{source}: unknown setting(s) {', '.join(unknown)} for {cls.__name__}")
    try:
        return replace(cls(), **values)
    except TypeError as exc:
        raise UserError(f"{source}: {exc}") from None
