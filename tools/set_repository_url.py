"""Point every Colab badge, install cell and launcher at a new repository address, from pyproject's one.

    python tools/set_repository_url.py https://github.com/OWNER/NAME

Rewrites ``[project.urls] Repository`` in pyproject.toml and every occurrence of the old ``OWNER/NAME`` (in
GitHub, Colab and raw URLs and ``git+https`` install lines) in the notebooks (both files of each pair), the
Colab launcher, README and docs. Then re-run the tests: tests/test_notebooks.py checks that everything agrees.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FILES = ["pyproject.toml", "README.md", "notebooks/*.py", "notebooks/*.ipynb", "colab/*.py", "colab/*.ipynb",
         "colab/README.md", "docs/*.md", "benchmarks/*.py"]


def current_slug() -> str:
    match = re.search(r'^Repository = "https://github.com/([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    if not match:
        sys.exit("pyproject.toml has no [project.urls] Repository = \"https://github.com/OWNER/NAME\"")
    return match.group(1)


def main() -> None:
    if len(sys.argv) != 2 or not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", sys.argv[1]):
        sys.exit("usage: python tools/set_repository_url.py https://github.com/OWNER/NAME")
    old, new = current_slug(), sys.argv[1].removeprefix("https://github.com/")
    changed = 0
    for pattern in FILES:
        for path in sorted(REPO.glob(pattern)):
            text = path.read_text(encoding="utf-8")
            if old in text:
                path.write_text(text.replace(old, new), encoding="utf-8")
                changed += 1
    print(f"{old} -> {new} in {changed} files")


if __name__ == "__main__":
    main()
