"""One dataset and one tokenizer for both sides, in nanochat's layout.

``prepare_data`` writes ``base/base_data/shard_*.parquet`` (the last shard validates); ``tokenizer_texts``
yields exactly the documents nanochat's tok_train reads, so our tokenizer can be trained on the same text
and compared with nanochat's by a digest of the ranks (they must be identical, or nothing is compared).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from nanochat_next.bench.profiles import Profile

DOC_CAP = 10_000  # nanochat's tok_train default: characters per document used for the tokenizer


def prepare_data(profile: Profile, base: Path) -> dict:
    """``base/base_data/shard_*.parquet`` in nanochat's layout (the last shard validates); returns a summary."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from nanochat_next.atomic import sha256_file
    from nanochat_next.corpus import fineweb_shards, load_split

    data = base / "base_data"
    data.mkdir(parents=True, exist_ok=True)
    if profile.corpus.startswith("fineweb-edu:"):
        for src in fineweb_shards(int(profile.corpus.split(":", 1)[1])):
            (data / src.name).symlink_to(src)
    else:
        train_docs, val_docs = load_split(profile.corpus)  # the split `train` makes of the corpus (train.data)
        for i, part in enumerate([train_docs, val_docs]):
            pq.write_table(pa.table({"text": part}), data / f"shard_{i:05d}.parquet", row_group_size=1024)
    shards = sorted(data.glob("*.parquet"))
    rows = [pq.ParquetFile(s).metadata.num_rows for s in shards]
    return {"corpus": profile.corpus, "directory_layout": "nanochat base_data (last shard = validation)",
            "train_documents": sum(rows[:-1]), "val_documents": rows[-1],
            "shards": {s.name: sha256_file(s) for s in shards}}


def tokenizer_texts(data: Path, max_chars: int, doc_cap: int = DOC_CAP):
    """The documents nanochat's tok_train sees: train shards in order, each cut to doc_cap characters, up to
    and including the document that passes max_chars."""
    import pyarrow.parquet as pq

    seen = 0
    for path in sorted(data.glob("*.parquet"))[:-1]:
        pf = pq.ParquetFile(path)
        for rg in range(pf.num_row_groups):
            for doc in pf.read_row_group(rg, columns=["text"]).column("text").to_pylist():
                doc = doc[:doc_cap]
                seen += len(doc)
                yield doc
                if seen > max_chars:
                    return


def ranks_digest(token_bytes: list[bytes]) -> str:
    return hashlib.sha256(repr(list(enumerate(token_bytes))).encode()).hexdigest()


def first_validation_text(data: Path) -> str:
    """The decode prompt's source: the first document of the validation shard (text neither side trained on)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(sorted(data.glob("*.parquet"))[-1])
    return pf.read_row_group(0, columns=["text"]).column("text")[0].as_py()


