"""Notebook hygiene: every notebook is a Jupytext pair in sync, has a Colab badge for its own path, a
python3 kernelspec (papermill needs it), a guarded Colab install cell, stored outputs (nbval checks them)
and a `parameters` cell. nbval itself runs the .ipynb files (see pyproject's addopts)."""

from __future__ import annotations

from pathlib import Path

import jupytext
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
GITHUB_REPO = "ricardofrantz/nanochat-next"  # where the Colab badges point


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no .py notebooks"


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_is_in_sync(script):
    ipynb = script.with_suffix(".ipynb")
    assert ipynb.exists(), f"{script.name} has no paired {ipynb.name}: run jupytext --to ipynb {script}"
    from_script = jupytext.read(script)
    stored = nbformat.read(ipynb, as_version=4)
    sources = [(c.cell_type, c.source) for c in from_script.cells]
    assert sources == [(c.cell_type, c.source) for c in stored.cells], (
        f"{ipynb.name} differs from {script.name}: run `jupytext --to ipynb --update {script}` and re-execute it")
    tags = [c.metadata.get("tags", []) for c in stored.cells]
    assert ["parameters"] in tags, "one cell must be tagged `parameters` (papermill injects after it)"


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_badge_kernel_install_cell_and_outputs(script):
    nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    badge = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/notebooks/{script.stem}.ipynb"
    assert badge in nb.cells[0].source, f"first cell of {script.stem} needs the Colab badge {badge}"
    assert nb.metadata["kernelspec"]["name"] == "python3"
    install = nb.cells[1].source
    assert 'if "google.colab" in sys.modules' in install and f"git+https://github.com/{GITHUB_REPO}" in install
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells), "commit the notebook executed top to bottom"
    assert [c.execution_count for c in code_cells] == list(range(1, len(code_cells) + 1))
    assert not any(o.get("output_type") == "error" for c in code_cells for o in c.outputs)
