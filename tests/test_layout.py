"""The package's shape: stages import only the stages before them (train and infer are siblings: neither imports
the other), the shared base's modules in their own order (no circles anywhere), nothing unpickles, generation
does not load the training code, modules and functions stay readable, docs/architecture.md names every module,
and a built wheel (as Colab installs) imports everything."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "nanochat_next"
# the order a learner meets them (docs/architecture.md); "" is the shared base. train and infer share a rank:
# siblings, neither may import the other (generation never loads training code)
STAGES = ["", "tokenizer", "scalar", "model", "train", "infer", "bench", "chat", "export", "serve", "cli"]
SIBLINGS = {"train": "infer", "infer": "train"}
# the shared base, each module importing only those before it (no circles inside the base either)
BASE = ["errors", "faults", "interrupt", "atomic", "schedule", "run_config", "corpus", "dtype_choice", "runtime",
        "provenance"]
MODULES = sorted(PACKAGE.rglob("*.py"))


def stage_of(module: str) -> float:
    """Rank of a dotted module name inside the package: a stage's index, or for a base module a fraction below 1
    in the base's own order (``nanochat_next`` itself: 0)."""
    if module == "nanochat_next.__main__":
        return STAGES.index("cli")  # `python -m nanochat_next` is the command line
    parts = module.split(".")
    if len(parts) > 2 and parts[1] in STAGES:
        stage = parts[1]
        return STAGES.index("train") if stage == "infer" else STAGES.index(stage)
    if len(parts) == 2 and parts[1] in STAGES:  # a stage package's __init__
        return STAGES.index(parts[1])
    return (BASE.index(parts[1]) + 1) / (len(BASE) + 1) if len(parts) == 2 and parts[1] in BASE else 0


def stage_name(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")


def imported_modules(tree: ast.AST) -> list[tuple[str, int]]:
    """(dotted module, line) of every import of our package, top-level or inside a function."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names if a.name.startswith("nanochat_next")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("nanochat_next"):
            # `from nanochat_next.train import checkpoint` imports nanochat_next.train.checkpoint
            found += [(f"{node.module}.{a.name}" if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/"))
                       .with_suffix(".py").exists() else node.module, node.lineno) for a in node.names]
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_a_stage_imports_only_the_stages_before_it(path):
    me = module_name(path)
    for other, line in imported_modules(ast.parse(path.read_text())):
        assert stage_of(other) <= stage_of(me), f"{me} (line {line}) imports {other}, a later stage"


def test_the_layer_rule_catches_a_backward_import():
    tree = ast.parse("from nanochat_next.model.gpt import GPT\nimport nanochat_next.cli.main\n")
    stages = [stage_of(m) for m, _ in imported_modules(tree)]
    assert stages == [STAGES.index("model"), STAGES.index("cli")]
    assert stage_of("nanochat_next.tokenizer.bpe") < stage_of("nanochat_next.model.gpt")
    assert stage_of("nanochat_next.runtime") > stage_of("nanochat_next.dtype_choice") > stage_of("nanochat_next.errors")
    assert stage_of("nanochat_next.infer.engine") == stage_of("nanochat_next.train.loop"), "siblings"
    assert SIBLINGS[stage_name("nanochat_next.infer.engine")] == stage_name("nanochat_next.train.loop")


def pickle_uses(source: str) -> list[str]:
    """Every pickle import, and every torch.load without weights_only=True, in a module's source."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("pickle", "dill") for a in node.names):
            problems.append(f"line {node.lineno}: imports pickle")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("pickle", "dill"):
            problems.append(f"line {node.lineno}: imports from pickle")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch":
            safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                       for k in node.keywords)
            if not safe:
                problems.append(f"line {node.lineno}: torch.load without weights_only=True")
    return problems


def test_nothing_in_the_package_unpickles():
    for path in MODULES:
        assert pickle_uses(path.read_text()) == [], path


def test_the_pickle_check_finds_what_it_looks_for():
    assert len(pickle_uses("import pickle\nfrom pickle import loads\nimport torch\ntorch.load(f)\n"
                           "torch.load(f, weights_only=False)\n")) == 4
    assert pickle_uses("import torch\ntorch.load(f, map_location='cpu', weights_only=True)\n") == []


def test_generation_and_export_do_not_load_the_training_code():
    code = ("import sys; import nanochat_next.cli.main; from nanochat_next.infer import engine; "
            "from nanochat_next.model import saving; from nanochat_next.tokenizer import chat_template; "
            "bad = [m for m in sys.modules if m in ('nanochat_next.train.loop', 'nanochat_next.train.recipe', "
            "'nanochat_next.train.muon', 'nanochat_next.train.checkpoint', 'nanochat_next.scalar.train')]; "
            "print(bad); raise SystemExit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_modules_and_functions_stay_readable(path):
    source = path.read_text()
    # a smoke alarm, not a carving rule: a module ends where its meaning ends (docs/architecture.md)
    assert len(source.splitlines()) <= 600, f"{path.name} has {len(source.splitlines())} lines (at most 600)"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            assert length <= 80, f"{module_name(path)}.{node.name} is {length} lines (at most 80)"


@pytest.mark.slow
def test_a_built_wheel_imports_every_module(tmp_path):
    """Colab installs a non-editable wheel: every subpackage must be in it."""
    wheel_dir, site = tmp_path / "wheel", tmp_path / "site"
    leftovers = [REPO / "build"] if not (REPO / "build").exists() else []  # setuptools builds in the tree
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                            str(wheel_dir), str(REPO)], capture_output=True, text=True)
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    assert build.returncode == 0, build.stderr
    [wheel] = wheel_dir.glob("nanochat_next-*.whl")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site),
                              str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    names = [module_name(p) for p in MODULES if p.name != "__main__.py"]
    code = ("import importlib, sys; sys.path.insert(0, sys.argv[1]); "
            "mods = [importlib.import_module(n) for n in sys.argv[2:]]; "
            "bad = [m.__name__ for m in mods if not m.__file__.startswith(sys.argv[1])]; print(bad); "
            "raise SystemExit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-I", "-c", code, str(site), *names], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def documented_modules() -> dict[str, set[str]]:
    """{part: module names} from docs/architecture.md's table (a row with an empty part continues the one above)."""
    found: dict[str, set[str]] = {}
    part = None
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) != 3 or cells[0] in ("part", "---"):
            continue
        if cells[0]:
            part = "" if cells[0] == "shared base" else cells[0].split("`")[1].rstrip("/")
        found.setdefault(part, set()).update(re.findall(r"`([a-z_]+)`", cells[1]))
    return found


def test_the_architecture_page_names_every_module():
    documented = documented_modules()
    for path in MODULES:
        if path.stem in ("__init__", "__main__"):
            continue
        part = "" if path.parent == PACKAGE else path.parent.name
        assert path.stem in documented.get(part, set()), f"docs/architecture.md does not name {module_name(path)}"
    for part, names in documented.items():
        folder = PACKAGE / part if part else PACKAGE
        missing = {n for n in names if not (folder / f"{n}.py").is_file()}
        assert not missing, f"docs/architecture.md names modules that {folder} does not have: {missing}"


def comment_lines(source: str) -> int:
    """Lines that carry a # comment (alone or after code)."""
    import io
    import tokenize

    return len({t.start[0] for t in tokenize.generate_tokens(io.StringIO(source).readline)
                if t.type == tokenize.COMMENT})


def test_the_math_and_the_decisions_are_commented_where_they_happen():
    """The model, training and inference modules carry the "why" on the line it explains, at about nanochat's and
    minbpe's density (17-30 comment lines per 100) or at least 12 per 100: docstrings far from the line do not count."""
    sources = [p.read_text() for stage in ("model", "train", "infer") for p in (PACKAGE / stage).glob("*.py")]
    density = 100 * sum(map(comment_lines, sources)) / sum(len(s.splitlines()) for s in sources)
    assert density >= 12, f"{density:.1f} comment lines per 100 in model/, train/, infer/"
    assert comment_lines("x = 1  # one\n# two\n\"\"\"# not a comment\"\"\"\n") == 2
