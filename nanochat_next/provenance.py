"""Where a result came from: machine, versions, git commit, command line. Every results/*.json carries it."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import urllib.parse
from importlib import metadata
from pathlib import Path

PACKAGES = ("nanochat-next", "torch", "numpy", "tiktoken", "rustbpe", "regex", "matplotlib", "pyarrow", "safetensors")


def git_state(repo: str | os.PathLike = ".") -> dict:
    """Commit hash and whether the work tree has uncommitted changes (None where git is unavailable)."""
    def git(*args: str) -> str | None:
        try:
            return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10,
                                  check=True).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def state_from_direct_url(info: dict | None) -> dict:
    """The git state pip recorded when it installed this package (PEP 610 direct_url.json): a VCS install
    names its commit (and is clean by construction); a directory install names a path that may be a checkout."""
    unknown = {"commit": None, "dirty": None}
    if not info:
        return unknown
    vcs = info.get("vcs_info") or {}
    if vcs.get("vcs") == "git" and vcs.get("commit_id"):
        return {"commit": vcs["commit_id"], "dirty": False}
    url = info.get("url", "")
    if "dir_info" in info and url.startswith("file://"):
        return source_checkout_state(Path(urllib.parse.unquote(url[len("file://"):])))
    return unknown


def source_checkout_state(root: Path) -> dict:
    """git_state(root) if root is the top of a git work tree (not merely inside some other repository)."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if not top or Path(top).resolve() != root.resolve():
        return {"commit": None, "dirty": None}
    return git_state(root)


def package_source_state() -> dict:
    """The commit of the nanochat-next code that is running: its checkout's, else what pip recorded."""
    state = source_checkout_state(Path(__file__).resolve().parents[1])
    if state["commit"] is not None:
        return state
    try:
        text = metadata.distribution("nanochat-next").read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        text = None
    return state_from_direct_url(json.loads(text) if text else None)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def run_metadata() -> dict:
    """Machine, versions, git state, time and command line of this run."""
    import torch

    from nanochat_next.dtype_choice import cpu_model_name

    return {
        "timestamp_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "git": package_source_state(),
        "machine": {
            "cpu": cpu_model_name(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        },
        "versions": package_versions(),
    }


def write_results(directory: str | os.PathLike, name: str, data: dict, markdown: str,
                  metadata: dict | None = None) -> tuple[Path, Path]:
    """Write results/<name>.json (data + metadata) and results/<name>.md atomically; return both paths.
    ``metadata`` defaults to :func:`run_metadata` now."""
    from nanochat_next.atomic import write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{name}.json", directory / f"{name}.md"
    write_text(json_path, json.dumps({**data, "metadata": metadata or run_metadata()}, indent=2) + "\n")
    write_text(md_path, markdown.rstrip() + "\n")
    return json_path, md_path


def notebook_output_dir(out_dir: str, name: str, save_to_drive: bool = True) -> Path:
    """Where a notebook writes its artifacts: ``out_dir`` when given; on Colab with ``save_to_drive``, a folder of
    Google Drive (mounted here: the runtime's own disk is wiped when it ends), as the Colab launcher does; else a
    fresh temporary directory."""
    import tempfile

    if out_dir:
        return Path(out_dir)
    if save_to_drive and "google.colab" in sys.modules:
        from google.colab import drive  # noqa: PLC0415 - only on Colab

        drive.mount("/content/drive")
        path = Path("/content/drive/MyDrive/nanochat-next") / name
        path.mkdir(parents=True, exist_ok=True)
        return path
    return Path(tempfile.mkdtemp(prefix=f"{name}-"))


def repository_url() -> str:
    """This project's repository address: pyproject's ``[project.urls] Repository`` (as the installed package's
    metadata carries it), the one place it is written."""
    for entry in metadata.metadata("nanochat-next").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip()
    raise RuntimeError("the installed nanochat-next has no Repository URL in its metadata")


def committed_results(here: Path | None = None) -> Path | None:
    """The repository's ``results/`` folder: beside this checkout or the current directory; else (a pip-installed
    package, e.g. on Colab) fetched once from the repository with a shallow sparse git clone; None when neither
    works (no git, no network)."""
    import tempfile

    here = here or Path.cwd()
    for candidate in (Path(__file__).resolve().parents[1] / "results", here / "results", here.parent / "results"):
        if candidate.is_dir() and any(candidate.glob("*.json")):
            return candidate
    target = Path(tempfile.gettempdir()) / "nanochat-next-results"
    if not (target / "results").is_dir():
        try:
            subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--filter=blob:none", "--sparse",
                            repository_url(), str(target)], check=True, capture_output=True, timeout=120)
            subprocess.run(["git", "-C", str(target), "sparse-checkout", "set", "results"], check=True,
                           capture_output=True, timeout=120)
        except (OSError, subprocess.SubprocessError, RuntimeError):
            return None
    return target / "results" if (target / "results").is_dir() else None
