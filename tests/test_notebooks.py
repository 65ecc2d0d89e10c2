"""Notebook hygiene: every notebook is a Jupytext pair in sync, has a Colab badge for its own path, a
python3 kernelspec (papermill needs it), a guarded Colab install cell, stored outputs (nbval checks them)
and a `parameters` cell; what the install cell installs covers every import. nbval itself runs the .ipynb
files (see pyproject's addopts); papermill runs the benchmark notebook and the Colab batch script here."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import jupytext
import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.py"))
COLAB = REPO / "colab" / "benchmark_colab.py"

def repository_slug() -> str:
    """OWNER/NAME from pyproject's [project.urls] Repository: the one place the address is written."""
    import tomllib

    url = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert url.startswith("https://github.com/"), url
    return url.removeprefix("https://github.com/")


GITHUB_REPO = repository_slug()  # where the Colab badges, install cells and the launcher point


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no .py notebooks"


@pytest.mark.parametrize("script", [*NOTEBOOKS, COLAB], ids=lambda p: p.stem)
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
    assert 'find_spec("nanochat_next") is None' in install and "pip install -e ." in install, \
        "a local clone that was never installed must be told, in one line, to pip install -e ."
    code_cells = [c for c in nb.cells if c.cell_type == "code" and "solution" not in c.metadata.get("tags", [])]
    assert all(c.execution_count is not None for c in code_cells), "commit the notebook executed top to bottom"
    assert [c.execution_count for c in code_cells] == list(range(1, len(code_cells) + 1))
    assert not any(o.get("output_type") == "error" for c in code_cells for o in c.outputs)


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_test_plumbing_stays_out_of_the_learners_code(script):
    """nbval's instructions are cell tags, never markers in the code a learner reads (and no stray `pass`)."""
    nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        assert "NBVAL" not in cell.source, f"{script.stem}: tag the cell nbval-ignore-output instead:\n{cell.source}"
        assert "    pass\n" not in cell.source + "\n", f"{script.stem}: a stray `pass` in:\n{cell.source}"
    ignored = [c for c in nb.cells if "nbval-ignore-output" in c.metadata.get("tags", [])
               and "solution" not in c.metadata.get("tags", [])]  # a solution's output is cleared, not machine-bound
    if ignored:  # machine-dependent output is explained once, in the introduction
        assert "About the outputs" in nb.cells[0].source, f"{script.stem}: say once why some outputs differ"


def numbered_exercises(nb) -> list[str]:
    header = [c for c in nb.cells if c.cell_type == "markdown" and "## Exercises" in c.source][-1]
    return re.findall(r"^(\d+)\. \*\*", header.source.split("## Exercises", 1)[1], re.M)


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_checks_the_learners_attempt(script):
    """One stub cell per exercise calls the checker on the learner's function; the solutions assert that the
    checker accepts the solution and rejects the untouched stub (so the checker is seen to fail)."""
    nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    exercises = numbered_exercises(nb)
    attempts = [c for c in nb.cells if c.cell_type == "code" and "# Your attempt (exercise" in c.source]
    numbers = [re.search(r"# Your attempt \(exercise (\d+)\)", c.source).group(1) for c in attempts]
    assert numbers == exercises, f"{script.stem}: attempt cells for exercises {numbers}, exercises {exercises}"
    assert all("check(" in c.source and "TODO" in c.source for c in attempts)
    assert all("solution" not in c.metadata.get("tags", []) for c in attempts), "the attempt cell stays visible"
    solutions = "\n".join(c.source for c in nb.cells if "solution" in c.metadata.get("tags", []))
    assert solutions.count("assert check(") >= len(exercises) and solutions.count("assert not check(") >= len(exercises)
    outputs = "".join(o.get("text", "") for c in attempts for o in c.outputs)
    assert outputs.count("not yet:") == len(exercises), "each stored stub run shows the checker failing it"


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_exercises_with_hidden_tested_solutions(script):
    """Every notebook ends with 2-4 numbered exercises, each with one solution cell after the list: collapsed on
    Colab (cellView form + a title) and in JupyterLab (source_hidden), executed like every cell (nbval replays it)
    and checking itself with an assert (docs/notebooks.md)."""
    nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    headers = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and "## Exercises" in c.source]
    assert headers, f"{script.stem} has no ## Exercises section"
    exercises = numbered_exercises(nb)
    solutions = [c for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    assert 2 <= len(exercises) <= 4, f"{script.stem}: {len(exercises)} exercises (2-4)"
    assert exercises == [str(i) for i in range(1, len(exercises) + 1)]
    assert len(solutions) == len(exercises), f"{script.stem}: one solution cell per exercise"
    assert all(nb.cells.index(c) > headers[-1] for c in solutions), "solutions come after the exercise list"
    for number, cell in enumerate(solutions, start=1):
        # the answer stays hidden until opened: no stored output under the collapsed code (docs/notebooks.md's
        # command clears it after executing); nbval still runs the cell and its asserts, ignoring its output
        assert cell.cell_type == "code" and not cell.outputs and cell.execution_count is None, \
            f"{script.stem} solution {number} stores its output: clear it (docs/notebooks.md)"
        assert "nbval-ignore-output" in cell.metadata.get("tags", [])
        assert cell.metadata.get("cellView") == "form" and cell.metadata.get("jupyter", {}).get("source_hidden")
        assert cell.source.startswith(f"# @title Solution {number}"), cell.source[:60]
        assert re.search(r"^assert ", cell.source, re.M), f"{script.stem} solution {number} checks nothing"


@pytest.mark.parametrize("name", ["04b_training", "05_sampling", "07_ablation", "08_chat", "09_inside_the_model",
                                  "10_rl"])
def test_training_notebooks_pick_a_gpu_preset(name):
    """Notebooks that train a model worth scaling take preset="auto": the CPU config, a larger one on CUDA."""
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert params.source.startswith('preset = "auto"'), params.source[:80]
    assert any('preset == "auto"' in c.source and "torch.cuda.is_available()" in c.source for c in nb.cells)


def declared_distributions() -> set[str]:
    """The distributions a clean install of this package brings: pyproject's [project] dependencies."""
    text = (REPO / "pyproject.toml").read_text()
    block = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    return {re.split(r"[<>=!~ \[]", line.strip().strip('",'))[0].lower()
            for line in block.splitlines() if line.strip().startswith('"')}


def top_level_imports(script: Path) -> set[str]:
    code = "\n".join(line for line in script.read_text().splitlines() if not line.lstrip().startswith(("%", "!")))
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("script", [*NOTEBOOKS, COLAB], ids=lambda p: p.stem)
def test_install_cell_brings_every_import(script):
    """From a clean environment (Colab: Python + Jupyter + what the install cell adds), every import resolves:
    each is the standard library, this package, Jupyter's own, or a declared dependency of this package."""
    declared = declared_distributions()
    provided = {"nanochat_next", "IPython", "google"}  # this package; Jupyter/Colab's own modules
    if script == COLAB:
        provided |= {"papermill"}  # its install cell installs papermill explicitly
    owners = metadata.packages_distributions()
    for module in top_level_imports(script) - provided - set(sys.stdlib_module_names):
        dists = {d.lower() for d in owners.get(module, [])}
        assert dists & declared, f"{script.name} imports {module} (from {dists or 'nowhere'}), which the install " \
                                 f"cell does not bring: add it to pyproject's dependencies"


def test_colab_launcher_badges_and_profiles():
    from nanochat_next.bench.profiles import PINNED_NANOCHAT, PROFILES

    nb = nbformat.read(COLAB.with_suffix(".ipynb"), as_version=4)
    badge = f"https://colab.research.google.com/github/{GITHUB_REPO}/blob/main/colab/benchmark_colab.ipynb"
    assert badge in nb.cells[0].source
    assert badge in (REPO / "README.md").read_text(), "the README links the one-click Colab benchmark"
    for script in NOTEBOOKS:
        assert f"blob/main/notebooks/{script.stem}.ipynb" in (REPO / "README.md").read_text()
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    assert f'nanochat_ref = "{PINNED_NANOCHAT}"' in params.source
    source = COLAB.read_text()
    assert "notebooks/06_benchmark.ipynb" in source.replace('" / "', "/") and (REPO / "notebooks" /
                                                                                "06_benchmark.ipynb").is_file()
    for name in re.findall(r"-> `(\w+)`", nb.cells[0].source):
        assert name in PROFILES, f"the launcher names profile {name!r}, which bench.PROFILES lacks"


@pytest.mark.slow
def test_papermill_runs_the_benchmark_notebook(tmp_path, monkeypatch):
    """`papermill notebooks/06_benchmark.ipynb out.ipynb -p profile smoke -p steps 5` (offline here: ours alone;
    nbval runs the notebook's own 30 steps)."""
    monkeypatch.setenv("NANOCHAT_NEXT_NANOCHAT_URL", str(tmp_path / "no-network"))
    out = tmp_path / "out.ipynb"
    proc = subprocess.run([sys.executable, "-m", "papermill", "-k", "python3",
                           str(REPO / "notebooks" / "06_benchmark.ipynb"), str(out), "-p", "profile", "smoke",
                           "-p", "out_dir", str(tmp_path), "-p", "steps", "5"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-6000:]
    [artifact] = tmp_path.glob("bench_smoke_*.json")
    data = json.loads(artifact.read_text())
    assert data["baseline"]["status"] == "not run"
    executed = nbformat.read(out, as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    assert any(o.get("output_type") == "display_data" and "image/png" in o.get("data", {})
               for c in executed.cells if c.cell_type == "code" for o in c.outputs), "the plots are drawn"


@pytest.mark.slow
def test_batch_script_runs_jobs_and_survives_a_failure(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "colab" / "run_batch.py"), "--out", str(tmp_path),
                           "--notebooks", "01_tokenizer", "--profiles", "no-such-profile", "-p", "steps=5"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "batch_summary.json").read_text())
    by_name = {s["notebook"]: s for s in summary}
    assert by_name["06_benchmark.ipynb"]["status"] == "failed"
    assert by_name["06_benchmark.ipynb"]["error"] == "KeyError: 'no-such-profile'"
    assert by_name["01_tokenizer.ipynb"]["status"] == "ok"
    assert "steps" not in by_name["01_tokenizer.ipynb"]["parameters"], "only parameters a notebook declares"
    assert (tmp_path / "01_tokenizer.ipynb").is_file()


def test_the_repository_address_is_written_once():
    """Every GitHub/Colab address of this repository in the notebooks, the launcher, README and docs is pyproject's
    (tools/set_repository_url.py rewrites them all if the repository moves)."""
    import re

    texts = [*(REPO / "notebooks").glob("*.py"), *(REPO / "notebooks").glob("*.ipynb"), COLAB,
             COLAB.with_suffix(".ipynb"), REPO / "README.md", *(REPO / "docs").glob("*.md"),
             REPO / "colab" / "README.md"]
    owners = set()
    for path in texts:
        owners |= set(re.findall(r"(?:github\.com|colab/github)/([\w.-]+/nanochat-next)\b", path.read_text()))
    assert owners == {GITHUB_REPO}, f"addresses other than pyproject's {GITHUB_REPO}: {owners - {GITHUB_REPO}}"


@pytest.mark.parametrize("script", NOTEBOOKS, ids=lambda p: p.stem)
def test_a_gpu_preset_opens_on_a_colab_gpu_and_says_which_runtime(script):
    """A badge opens Colab's CPU runtime unless the notebook asks for a GPU: every notebook with a GPU preset carries
    Colab's accelerator metadata and prints, first, which runtime it is on (on Colab's CPU: how to switch)."""
    nb = nbformat.read(script.with_suffix(".ipynb"), as_version=4)
    if 'preset = "auto"' not in script.read_text():
        return
    assert nb.metadata.get("accelerator") == "GPU" and nb.metadata.get("colab", {}).get("gpuType") == "T4"
    assert "runtime_banner(" in nb.cells[1].source, "the install cell says which runtime is active"


def test_the_runtime_banner_says_how_to_get_a_gpu():
    import torch

    from nanochat_next.runtime import runtime_banner

    if torch.cuda.is_available():
        pytest.skip("on a GPU the banner names it")
    assert "Change runtime type > T4 GPU" in runtime_banner(in_colab=True)
    assert runtime_banner().startswith("runtime: CPU")
