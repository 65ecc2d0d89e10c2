"""Shared test set-up.

Tests never download. Corpora come from ../shared/data (beside the repository, as in CI) or from an
existing cache. When NANOCHAT_NEXT_CACHE is unset and ../shared/data exists, the whole session (notebook
kernels included, they inherit the environment) uses a private cache filled from there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


MAX_WORKERS = 4  # beyond this, notebook kernels and training subprocesses compete for memory bandwidth


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto`` (pyproject's addopts): one worker per core, at most MAX_WORKERS."""
    return max(1, min(MAX_WORKERS, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                      else os.cpu_count() or 1))


def pytest_configure(config: pytest.Config) -> None:
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, int) and workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        # each worker (and every kernel or subprocess it starts: they inherit the environment) gets its share of
        # the cores: two workers of two torch threads each on two cores spin against each other, 5-50x slower
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        os.environ["OMP_NUM_THREADS"] = str(max(1, cores // workers))
    if os.environ.get("NANOCHAT_NEXT_CACHE") or not SHARED_DATA.is_dir():
        return
    cache = Path(tempfile.mkdtemp(prefix="nanochat-next-test-cache-"))
    (cache / "corpora").mkdir()
    for name in ("tinyshakespeare.txt", "names.txt"):
        if (SHARED_DATA / name).is_file():
            shutil.copyfile(SHARED_DATA / name, cache / "corpora" / name)
    os.environ["NANOCHAT_NEXT_CACHE"] = str(cache)
    config._nanochat_next_cache = cache  # type: ignore[attr-defined]


def pytest_unconfigure(config: pytest.Config) -> None:
    cache = getattr(config, "_nanochat_next_cache", None)
    if cache is not None:
        shutil.rmtree(cache, ignore_errors=True)


def corpus_file(filename: str) -> Path:
    """A corpus from the cache or ../shared/data; skip (with the reason) if neither has it."""
    from nanochat_next.corpus import cache_dir

    for candidate in (cache_dir() / "corpora" / filename, SHARED_DATA / filename):
        if candidate.is_file():
            return candidate
    pytest.skip(f"{filename} is in neither the cache nor {SHARED_DATA}")


@pytest.fixture(scope="session")
def load_script():
    """Import a script of the repository (benchmarks/, tools/: not a package) by its path relative to the root."""
    import importlib.util

    def load(relative: str):
        path = REPO / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def shakespeare_text() -> str:
    return corpus_file("tinyshakespeare.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def names_docs() -> list[str]:
    return [line.strip() for line in corpus_file("names.txt").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def shakespeare_docs(shakespeare_text: str) -> list[str]:
    from nanochat_next.corpus import split_documents

    return split_documents(shakespeare_text, "paragraphs")


CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
def chromium_page():
    """A page in headless Chromium: Debian's build (apt-get install chromium; .ci/run installs it) driven by
    playwright, no browser download. Skips, saying what is missing, without either."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("no chromium to run the page in (Debian: apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package drives the browser")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()
