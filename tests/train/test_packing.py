"""The BOS best-fit packing loader: nanochat's rows from nanochat's loader (fixture), exact resume, DDP split."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from nanochat_next.errors import UserError
from nanochat_next.tokenizer.bpe import BPETokenizer
from nanochat_next.train.packing import DocumentSource, PackingLoader, parquet_shards

FIXTURE = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "loader_parity.json").read_text())
BYTES = BPETokenizer([bytes([i]) for i in range(256)])  # no merges: tokens are bytes, <|bos|> is 256


def make_loader(state=None, rank=0, world_size=1, source=None):
    f = FIXTURE
    source = source or DocumentSource.from_docs(f["train_docs"], f["row_group_size"])
    return PackingLoader(source, BYTES, f["B"], f["T"], rank=rank, world_size=world_size,
                         buffer_size=f["buffer_size"], tokenizer_batch_size=f["tokenizer_batch_size"], state=state)


def test_rows_equal_nanochats_loader():
    assert BYTES.bos_id == FIXTURE["bos"]
    loader = make_loader()
    for k, (x, y) in enumerate(FIXTURE["batches"]):
        ours_x, ours_y = next(loader)
        assert ours_x.tolist() == x, f"batch {k} inputs differ"
        assert ours_y.tolist() == y, f"batch {k} targets differ"
    assert all(row[0] == BYTES.bos_id for x, _ in FIXTURE["batches"] for row in x), "every row starts with BOS"


def test_parquet_source_gives_the_same_rows(tmp_path):
    docs = FIXTURE["train_docs"]
    for i, part in enumerate([docs, ["validation doc"] * 3]):
        pq.write_table(pa.table({"text": part}), tmp_path / f"shard_{i:05d}.parquet",
                       row_group_size=FIXTURE["row_group_size"])
    train, val = parquet_shards(tmp_path)
    assert [p.name for p in val] == ["shard_00001.parquet"]
    loader = make_loader(source=DocumentSource.from_parquet(train))
    assert [next(loader)[0].tolist() for _ in range(4)] == [b[0] for b in FIXTURE["batches"][:4]]


def test_resume_continues_exactly():
    straight = make_loader()
    expected = [next(straight) for _ in range(60)]  # runs past one epoch of these documents
    first = make_loader()
    for _ in range(7):
        next(first)
    state = json.loads(json.dumps(first.state_dict()))  # survives JSON (it goes into checkpoints)
    resumed = make_loader(state=state)
    for x, y in expected[7:]:
        rx, ry = next(resumed)
        assert torch.equal(rx, x) and torch.equal(ry, y)
    assert straight.epoch > 1


def test_ranks_split_the_global_stream():
    single = make_loader()
    stream = [next(single)[0] for _ in range(6)]
    r0, r1 = make_loader(rank=0, world_size=2), make_loader(rank=1, world_size=2)
    assert [next(r0)[0].tolist() for _ in range(3)] == [s.tolist() for s in stream[0::2]]
    assert [next(r1)[0].tolist() for _ in range(3)] == [s.tolist() for s in stream[1::2]]


def test_bad_inputs(tmp_path):
    with pytest.raises(UserError, match="no documents"):
        DocumentSource.from_docs([])
    with pytest.raises(UserError, match="at least 2 .parquet shards"):
        parquet_shards(tmp_path)
    with pytest.raises(UserError, match="rank 2 is outside"):
        make_loader(rank=2, world_size=2)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(UserError, match="cannot read parquet shard"):
        DocumentSource.from_parquet([tmp_path / "bad.parquet"])
