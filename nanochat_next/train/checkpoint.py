"""Training checkpoints that survive crashes: atomic, verified, pickle-free, exactly resumable.

Layout (one directory per step, under ``OUT/checkpoints/``)::

    step_000050/
        model.safetensors        model weights
        optimizer.safetensors    every tensor of the optimizer state ("<param index>.<name>")
        state.json               optimizer hyperparameters and counters, loader position, RNG states,
                                 step, history, run config
        manifest.json            size and sha256 of every other file; written last
    latest                       the name of the newest complete checkpoint

A checkpoint is written into a temporary sibling directory, every file fsynced, the manifest last, then
the directory is renamed into place (atomic on POSIX) and ``latest`` replaced through a temp file. A crash
at any moment leaves either the previous state or the new one, never a half checkpoint under a final
name. Loading verifies the manifest (sizes and checksums) and falls back to the newest good checkpoint,
saying in one line why each newer one was skipped. Nothing is unpickled: tensors are safetensors,
everything else JSON.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError

from nanochat_next.atomic import fsync_path, replace, sha256_file, write_text
from nanochat_next.errors import UserError
from nanochat_next.faults import pause_between_files
from nanochat_next.model.gpt import head_is_tied

FORMAT = "nanochat-next/checkpoint"
PREFIX = "step_"
TEMP = re.compile(r"\.step_\d+\.tmp-(\d+)")  # a save in progress: .step_000050.tmp-<pid>


def rng_state() -> dict:
    import numpy as np

    # every generator a run may draw from (dropout-free here, but packing ties and user code may), as JSON lists:
    # restoring them is what makes a resumed run draw the same numbers as an uninterrupted one
    np_state = np.random.get_state()
    state = {"python": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
             "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
             "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np.random.set_state((state["numpy"][0], np.array(state["numpy"][1], dtype=np.uint32), *state["numpy"][2:]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _split_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    # torch's state_dict mixes tensors and Python numbers; safetensors holds only tensors, so the numbers (step
    # counts) and the groups' hyperparameters go to JSON, each tensor under "<param index>.<name>"
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, entries in sd["state"].items():
        for name, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    # the inverse of _split_optimizer: torch's state_dict layout again, keyed by parameter index
    state: dict[int, dict] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(root: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
         state: dict, keep_last: int = 0) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically; keep only the newest ``keep_last`` (0 = all)."""
    from safetensors.torch import save_file

    root = Path(root)
    name = f"{PREFIX}{step:06d}"
    final = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"  # the pid tells a later run whether this save's process still lives
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()  # everything is written here first: no final name ever points at half a checkpoint
        # safetensors wants contiguous CPU tensors; a shared (tied) matrix is stored once
        weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if head_is_tied(model):
            weights.pop("lm_head.weight", None)  # tied to the token embedding
        opt_tensors, opt_meta = _split_optimizer(optimizer)
        save_file(weights, tmp / "model.safetensors")
        pause_between_files()  # a no-op except in the crash tests, which kill the process here
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        pause_between_files()
        (tmp / "state.json").write_text(json.dumps({**state, "optimizer": opt_meta, "step": step}))
        pause_between_files()
        files = {}
        for f in sorted(tmp.iterdir()):
            fsync_path(f)  # on disk, not in the page cache: a power cut after the rename cannot lose it
            files[f.name] = {"size": f.stat().st_size, "sha256": sha256_file(f)}
        # the manifest is written last: its presence means every file before it is complete
        manifest = {"format": FORMAT, "version": 1, "step": step, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
        fsync_path(tmp / "manifest.json")
        fsync_path(tmp)  # the directory's entries too
        if final.exists():  # re-saving a step (e.g. after a resume): replace it whole
            shutil.rmtree(final)
        replace(tmp, final)  # one rename: the checkpoint appears whole or not at all
        write_text(root / "latest", name + "\n")  # itself written through a temp file and a rename
    except (OSError, SafetensorError) as exc:  # safetensors reports a full disk as its own error type
        shutil.rmtree(tmp, ignore_errors=True)  # the half-written directory goes; the older checkpoints stay
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"could not write checkpoint {final} ({why}); the previous checkpoints are untouched") from None
    if keep_last > 0:  # only after the new one is safely in place
        for old in sorted(p for p in root.glob(f"{PREFIX}*") if p.is_dir())[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def remove_orphans(root: str | Path) -> list[tuple[Path, int]]:
    """Delete the temporary directories of saves whose process is gone (killed mid-save); return them with
    their sizes in bytes. A save still running in a live process is left alone."""
    removed = []
    for path in Path(root).glob(".step_*.tmp-*"):
        match = TEMP.fullmatch(path.name)
        if not match or not path.is_dir() or _alive(int(match.group(1))):
            continue
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path, ignore_errors=True)
        removed.append((path, size))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from before a restart with the same pid: not a live save
    try:
        os.kill(pid, 0)  # signal 0 sends nothing: it only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def verify(directory: Path) -> str | None:
    """None if the checkpoint directory is complete and intact, else why not (one line)."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        return "no manifest.json (the save never finished)"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"manifest.json is unreadable ({exc})"
    for name, meta in files.items():  # the size first (cheap, catches truncation), then the checksum
        f = directory / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != meta["size"]:
            return f"{name} is {f.stat().st_size} bytes, the manifest says {meta['size']} (truncated?)"
        if sha256_file(f) != meta["sha256"]:
            return f"{name} does not match its sha256 in the manifest (corrupted)"
    for required in ("model.safetensors", "optimizer.safetensors", "state.json"):
        if required not in files:
            return f"the manifest does not list {required}"
    return None


@dataclass
class Loaded:
    path: Path
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict
    state: dict


def find(root: str | Path, which: str = "latest", warn=print) -> Path:
    """The checkpoint to resume from: ``latest`` = the newest intact one, or a step number."""
    root = Path(root)
    # step_XXXXXX names sort by step; temporary directories (".step_...") never match the prefix
    candidates = sorted((p for p in root.glob(f"{PREFIX}*") if p.is_dir()), reverse=True)
    if which != "latest":
        try:
            step = int(which)
        except ValueError:
            raise UserError(f"--resume takes 'latest' or a step number, got {which!r}") from None
        candidates = [p for p in candidates if p.name == f"{PREFIX}{step:06d}"]
        if not candidates:
            raise UserError(f"no checkpoint for step {step} in {root}")
    for path in candidates:  # newest first: a damaged newest one falls back to the one before, said in one line
        problem = verify(path)
        if problem is None:
            return path
        warn(f"skipping checkpoint {path.name}: {problem}")
    if not candidates:
        raise UserError(f"no checkpoint in {root} yet, nothing to resume: run without --resume to start")
    raise UserError(f"no intact checkpoint in {root} (all were skipped, see above); run without --resume to "
                    "start over")


def load(path: Path) -> Loaded:
    from safetensors.torch import load_file

    problem = verify(path)  # again at load: the files may have changed since find() looked
    if problem is not None:
        raise UserError(f"checkpoint {path} is not usable: {problem}")
    state = json.loads((path / "state.json").read_text())
    optimizer = _join_optimizer(load_file(path / "optimizer.safetensors"), state.pop("optimizer"))
    return Loaded(path, state["step"], load_file(path / "model.safetensors"), optimizer, state)
