"""Generate the packing-loader parity fixture from nanochat's own loader at the pinned ref.

    python tools/make_loader_fixture.py --nanochat /path/to/nanochat-checkout [--out tests/fixtures]

Writes synthetic documents (seeded random words, varied lengths) as two parquet shards in nanochat's
layout (row groups of 64 documents), runs nanochat's BOS best-fit loader over them with a byte-level
tokenizer (BOS = 256) for B=4, T=48 and records the first 12 batches and the loader's state after each.
Output: loader_parity.json (documents, settings, batches). No nanochat code is copied.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

PINNED = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"
B, T, N_BATCHES, ROW_GROUP, BOS = 4, 48, 12, 64, 256


class ByteTokenizer:
    """Just enough of nanochat's tokenizer interface: bytes are tokens, BOS is 256."""

    def get_bos_token_id(self) -> int:
        return BOS

    def encode(self, texts, prepend=None, num_threads=None):
        return [[prepend, *t.encode("utf-8")] for t in texts]


def synthetic_docs(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = ["the", "a", "king", "queen", "speaks", "of", "love", "and", "war", "night", "day", "to", "thee"]
    return [" ".join(rng.choice(words) for _ in range(rng.choice([1, 2, 3, 5, 8, 13, 21, 34]))) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", args.nanochat, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    if head.strip() != PINNED:
        sys.exit(f"{args.nanochat} is at {head.strip() or '?'}, expected the pinned ref {PINNED}")
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs = synthetic_docs(400)
    base = Path(tempfile.mkdtemp())
    os.environ["NANOCHAT_BASE_DIR"] = str(base)
    (base / "base_data").mkdir()
    for i, part in enumerate([docs[:300], docs[300:]]):
        path = base / "base_data" / f"shard_{i:05d}.parquet"
        pq.write_table(pa.table({"text": part}), path, row_group_size=ROW_GROUP)
    sys.path.insert(0, args.nanochat)
    from nanochat.dataloader import tokenizing_distributed_data_loader_with_state_bos_bestfit as loader

    batches, states = [], []
    it = loader(ByteTokenizer(), B, T, split="train", device="cpu", buffer_size=50, tokenizer_batch_size=16)
    for _ in range(N_BATCHES):
        x, y, state = next(it)
        batches.append([x.tolist(), y.tolist()])
        states.append(state)
    out = Path(args.out) / "loader_parity.json"
    out.write_text(json.dumps({"nanochat_ref": PINNED, "B": B, "T": T, "row_group_size": ROW_GROUP,
                               "buffer_size": 50, "tokenizer_batch_size": 16, "bos": BOS, "train_docs": docs[:300],
                               "batches": batches, "nanochat_states": states,
                               "generated_by": "tools/make_loader_fixture.py"}) + "\n")
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
