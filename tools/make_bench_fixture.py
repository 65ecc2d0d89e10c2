"""Record a smoke benchmark against nanochat at the pinned ref and at its newest commit we pin, for tests that run
where nanochat is absent (CI).

    python tools/make_bench_fixture.py --nanochat PATH --nanochat-newest PATH --nanochat-python PY

Runs ``nanochat-next bench --profile smoke`` against both checkouts and writes
tests/fixtures/nanochat_smoke_train.log and nanochat_newest_smoke_train.log (each one's base_train output, as
printed) and tests/fixtures/bench_smoke_with_nanochat.json (the artifact). Refuses checkouts at other commits.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nanochat_next.bench.harness import BenchOptions, run_bench
from nanochat_next.bench.profiles import NEWEST_NANOCHAT, PINNED_NANOCHAT

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True)
    parser.add_argument("--nanochat-newest", required=True)
    parser.add_argument("--nanochat-python", required=True)
    args = parser.parse_args()
    for checkout, ref in ((args.nanochat, PINNED_NANOCHAT), (args.nanochat_newest, NEWEST_NANOCHAT)):
        head = subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True, text=True)
        if head.stdout.strip() != ref:
            sys.exit(f"{checkout} is not at {ref}")
    out = Path(tempfile.mkdtemp(prefix="bench-fixture-"))
    result = run_bench(BenchOptions("smoke", nanochat=args.nanochat, newest=args.nanochat_newest, newest_ref=None,
                                    nanochat_python=args.nanochat_python, out=str(out), keep_work=True,
                                    progress=False))
    for key in ("baseline", "baseline_newest"):
        if result[key]["status"] != "run":
            sys.exit(f"nanochat did not run: {result[key]['reason']}")
    work = Path(result["artifacts"]["work"])
    shutil.copyfile(work / "nanochat_train.log", FIXTURES / "nanochat_smoke_train.log")
    shutil.copyfile(work / "nanochat_newest_train.log", FIXTURES / "nanochat_newest_smoke_train.log")
    shutil.copyfile(result["artifacts"]["json"], FIXTURES / "bench_smoke_with_nanochat.json")
    shutil.rmtree(work)
    shutil.rmtree(out)
    print(f"wrote {FIXTURES / 'nanochat_smoke_train.log'} and {FIXTURES / 'bench_smoke_with_nanochat.json'}")


if __name__ == "__main__":
    main()
