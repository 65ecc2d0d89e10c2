"""Record a smoke benchmark against nanochat at the pinned ref, for tests that run where nanochat is absent (CI).

    python tools/make_bench_fixture.py --nanochat PATH --nanochat-python PY

Runs ``nanochat-next bench --profile smoke`` against the checkout and writes
tests/fixtures/nanochat_smoke_train.log (nanochat's base_train output, as printed) and
tests/fixtures/bench_smoke_with_nanochat.json (the artifact). Refuses a checkout at another commit.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nanochat_next.bench.harness import BenchOptions, run_bench
from nanochat_next.bench.profiles import PINNED_NANOCHAT

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True)
    parser.add_argument("--nanochat-python", required=True)
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", args.nanochat, "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.stdout.strip() != PINNED_NANOCHAT:
        sys.exit(f"{args.nanochat} is not at the pinned ref {PINNED_NANOCHAT}")
    out = Path(tempfile.mkdtemp(prefix="bench-fixture-"))
    result = run_bench(BenchOptions("smoke", nanochat=args.nanochat, nanochat_python=args.nanochat_python,
                                    out=str(out), keep_work=True, progress=False))
    if result["baseline"]["status"] != "run":
        sys.exit(f"nanochat did not run: {result['baseline']['reason']}")
    work = Path(result["artifacts"]["work"])
    shutil.copyfile(work / "nanochat_train.log", FIXTURES / "nanochat_smoke_train.log")
    shutil.copyfile(result["artifacts"]["json"], FIXTURES / "bench_smoke_with_nanochat.json")
    shutil.rmtree(work)
    shutil.rmtree(out)
    print(f"wrote {FIXTURES / 'nanochat_smoke_train.log'} and {FIXTURES / 'bench_smoke_with_nanochat.json'}")


if __name__ == "__main__":
    main()
