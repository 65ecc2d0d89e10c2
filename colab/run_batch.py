"""Run several benchmark profiles and notebooks in a row with papermill (on Colab, or anywhere).

    python colab/run_batch.py --out DIR [--profiles t4 smoke] [--notebooks 01_tokenizer 05_sampling]
                              [--nanochat PATH] [-p name=value ...]

Each profile runs notebooks/06_benchmark.ipynb with ``profile=NAME`` (and ``nanochat_path``, ``out_dir=DIR``);
each named notebook runs with the ``-p`` parameters it declares in its ``parameters`` cell (others are left
out). Executed notebooks go to DIR/<notebook>[_<profile>].ipynb; a failed job does not stop the batch.
DIR/batch_summary.json lists every job with its status, seconds and error. Exit status 1 if any job failed.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters``."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.metadata.get("tags", []):
            return {t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
    return set()


def parse_value(text: str):
    """``-p steps=50`` gives an int, ``-p device=cuda`` a string: Python literals where they parse."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def plan(profiles: list[str], notebooks: list[str], params: dict, out: Path, nanochat: str | None) -> list[dict]:
    jobs = []
    bench = NOTEBOOKS / "06_benchmark.ipynb"
    for profile in profiles:
        jobs.append({"notebook": bench, "output": out / f"06_benchmark_{profile}.ipynb",
                     "parameters": {**{k: v for k, v in params.items() if k in declared_parameters(bench)},
                                    "profile": profile, "out_dir": str(out),
                                    **({"nanochat_path": nanochat} if nanochat else {})}})
    for name in notebooks:
        path = NOTEBOOKS / f"{name.removesuffix('.ipynb')}.ipynb"
        if not path.is_file():
            have = ", ".join(p.stem for p in sorted(NOTEBOOKS.glob("*.ipynb")))
            raise SystemExit(f"error: no notebook {path} (have: {have})")
        declared = declared_parameters(path)
        jobs.append({"notebook": path, "output": out / path.name,
                     "parameters": {k: v for k, v in params.items() if k in declared}})
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="where executed notebooks and results go")
    parser.add_argument("--profiles", nargs="*", default=[], help="benchmark profiles to run (06_benchmark)")
    parser.add_argument("--notebooks", nargs="*", default=[], help="other notebooks by name, e.g. 05_sampling")
    parser.add_argument("--nanochat", help="a nanochat checkout for the benchmark profiles")
    parser.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUE",
                        help="a parameter for every notebook that declares it")
    args = parser.parse_args(argv)
    import papermill as pm

    if not args.profiles and not args.notebooks:
        parser.error("nothing to run: give --profiles and/or --notebooks")
    bad = [p for p in args.params if "=" not in p]
    if bad:
        parser.error(f"-p wants NAME=VALUE, got {bad[0]!r}")
    params = {k: parse_value(v) for k, v in (p.split("=", 1) for p in args.params)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = []
    for job in plan(args.profiles, args.notebooks, params, out, args.nanochat):
        print(f"running {job['notebook'].name} {job['parameters']} -> {job['output']}", flush=True)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(str(job["notebook"]), str(job["output"]), parameters=job["parameters"],
                                kernel_name="python3", cwd=str(NOTEBOOKS.parent), progress_bar=False)
            status, error = "ok", None
        except Exception as exc:  # noqa: BLE001 - one failed job must not stop the batch
            status = "failed"  # papermill's error names the notebook's own exception
            error = (f"{exc.ename}: {exc.evalue}" if hasattr(exc, "ename") else f"{type(exc).__name__}: {exc}")
        summary.append({"notebook": job["notebook"].name, "parameters": job["parameters"], "output": str(job["output"]),
                        "status": status, "seconds": round(time.perf_counter() - t0, 1), "error": error})
        print(f"  {status} in {summary[-1]['seconds']} s" + (f": {error}" if error else ""), flush=True)
    (out / "batch_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    failed = [s for s in summary if s["status"] != "ok"]
    print(f"{len(summary) - len(failed)} of {len(summary)} jobs ok; summary in {out / 'batch_summary.json'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
