"""BOS-aligned best-fit packing of documents into training rows (nanochat's loader), resumable exactly.

Each row holds ``seq_len + 1`` tokens (inputs are the first ``seq_len``, targets the last ``seq_len``):

1. every document is tokenized with ``<|bos|>`` in front, so every row starts with BOS;
2. from a buffer of about ``buffer_size`` documents, put the *largest* one that still fits; repeat;
3. when none fits, take the *shortest* document, crop it to fill the row exactly, drop the rest.

No padding, every position trains; the price is the cropped tails (nanochat measures ~35% at T=2048).
Documents enter the buffer in corpus order, in batches of ``tokenizer_batch_size`` taken from row groups
(of a parquet file, or of ``row_group_size`` documents for in-memory text), exactly as nanochat reads
its parquet shards, so both see the same rows from the same documents.

Multi-process (DDP): every rank builds the same global stream of micro-batches and takes every
``world_size``-th one, starting at its rank. The data a run sees therefore does not depend on how many
processes share it (nanochat instead gives each rank its own row groups).

``state_dict()`` captures the position (epoch, row group, offset) *and the buffer's document ids*, so
``PackingLoader(..., state=...)`` continues with exactly the rows the uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from nanochat_next.errors import UserError


@dataclass
class DocumentSource:
    """Documents in corpus order, grouped into row groups (the unit nanochat reads at a time)."""

    docs: list[str]
    row_groups: list[range]

    @classmethod
    def from_docs(cls, docs: Sequence[str], row_group_size: int = 1024) -> DocumentSource:
        docs = list(docs)
        if not docs:
            raise UserError("no documents to train on")
        # in-memory text gets the row groups nanochat's parquet shards have (1,024 documents): the same reading
        # order, so both loaders build the same rows from the same documents
        return cls(docs, [range(i, min(i + row_group_size, len(docs))) for i in range(0, len(docs), row_group_size)])

    @classmethod
    def from_parquet(cls, paths: Sequence[str | Path]) -> DocumentSource:
        """Read the ``text`` column of parquet files (nanochat's shard layout), keeping their row groups."""
        import pyarrow.parquet as pq

        docs: list[str] = []
        groups: list[range] = []
        for path in paths:
            try:
                pf = pq.ParquetFile(path)
                for rg in range(pf.num_row_groups):  # a row group is the unit nanochat's loader reads at once
                    texts = pf.read_row_group(rg, columns=["text"]).column("text").to_pylist()
                    groups.append(range(len(docs), len(docs) + len(texts)))
                    docs.extend(texts)
            except (OSError, KeyError, ValueError) as exc:
                raise UserError(f"cannot read parquet shard {path}: {exc} (expected a 'text' column)") from None
        if not docs:
            raise UserError(f"the parquet shards {[str(p) for p in paths]} hold no documents")
        return cls(docs, groups)


def parquet_shards(directory: str | Path) -> tuple[list[Path], list[Path]]:
    """nanochat's layout: sorted *.parquet files; the last one is the validation split."""
    files = sorted(Path(directory).glob("*.parquet"))
    if len(files) < 2:
        raise UserError(f"{directory} needs at least 2 .parquet shards (the last one is validation), "
                        f"found {len(files)}")
    return files[:-1], files[-1:]


class MicroBatchStream:
    """One global stream of micro-batches shared by all ranks: every rank builds every micro-batch (so the stream
    is identical everywhere) and yields those whose index is its rank modulo the world size. A subclass builds
    one micro-batch in ``_micro_batch`` and counts them in ``micro_batch``."""

    micro_batch: int
    rank: int
    world_size: int

    def _micro_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """Everything needed to continue the stream exactly (see ``__init__``'s ``state``)."""
        raise NotImplementedError

    def advance_to(self, micro_batch: int) -> None:
        """Build (and drop) micro-batches up to a global index, e.g. the end of a training step: then this
        loader's state is the state every rank has reached there (used when rank 0 saves for all)."""
        while self.micro_batch < micro_batch:  # rank 0 built only its own share; catch up with the others'
            self._micro_batch()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self

    def __next__(self) -> tuple[torch.Tensor, torch.Tensor]:
        # skip the other ranks' micro-batches: they are built (to keep the stream identical) but not used
        while self.micro_batch % self.world_size != self.rank:
            self._micro_batch()
        return self._micro_batch()


class PackingLoader(MicroBatchStream):
    """Yields (inputs, targets) int64 tensors of shape (batch_size, seq_len), forever (epochs wrap)."""

    # nanochat's loader parameters, plus the resume state: splitting them would only rename the same settings
    def __init__(self, source: DocumentSource, tokenizer, batch_size: int, seq_len: int,  # noqa: PLR0913
                 rank: int = 0, world_size: int = 1, buffer_size: int = 1000, tokenizer_batch_size: int = 128,
                 state: dict | None = None):
        if batch_size < 1 or seq_len < 1:
            raise UserError(f"batch size and sequence length must be positive, got {batch_size} and {seq_len}")
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is outside a world of {world_size}")
        self.source, self.tokenizer = source, tokenizer
        self.batch_size, self.seq_len = batch_size, seq_len
        self.rank, self.world_size = rank, world_size
        self.buffer_size, self.tokenizer_batch_size = buffer_size, tokenizer_batch_size
        state = state or {"epoch": 1, "row_group": 0, "offset": 0, "buffer": [], "micro_batch": 0}
        # where reading stands: which pass over the data, which row group, how far into it
        self.epoch, self.row_group, self.offset = state["epoch"], state["row_group"], state["offset"]
        self.micro_batch = state["micro_batch"]  # global micro-batches built so far
        # the buffered documents are saved as ids and re-tokenized: a resume sees the very same candidates, which
        # nanochat's resume (it skips to the next row group) does not
        ids = list(state["buffer"])
        self.buffer: list[tuple[int, list[int]]] = list(zip(ids, self._encode(ids))) if ids else []

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "row_group": self.row_group, "offset": self.offset,
                "buffer": [doc_id for doc_id, _ in self.buffer], "micro_batch": self.micro_batch}

    def _encode(self, doc_ids: list[int]) -> list[list[int]]:
        # <|bos|> in front of every document: a row then always starts at a document boundary, and the model
        # learns where documents begin
        return self.tokenizer.encode_batch([self.source.docs[i] for i in doc_ids], prepend_bos=True)

    def _refill(self) -> None:
        """Add the next batch of documents (within the current row group) to the buffer."""
        group = self.source.row_groups[self.row_group]
        ids = list(group[self.offset: self.offset + self.tokenizer_batch_size])  # the next tokenizer batch
        self.offset += len(ids)
        if self.offset >= len(group):  # this row group is used up: the next one
            self.row_group, self.offset = self.row_group + 1, 0
            if self.row_group >= len(self.source.row_groups):  # the data is used up: another epoch, same order
                self.row_group, self.epoch = 0, self.epoch + 1
        self.buffer.extend(zip(ids, self._encode(ids)))

    def _row(self) -> list[int]:
        """One row of seq_len + 1 tokens, filled with whole documents (each starts with <|bos|>)."""
        capacity = self.seq_len + 1  # +1: the inputs are row[:-1], the targets row[1:]
        row: list[int] = []
        while len(row) < capacity:
            while len(self.buffer) < self.buffer_size:  # keep a pool of documents to choose from
                self._refill()
            remaining = capacity - len(row)
            # best fit: the longest buffered document that still fits whole in what is left of the row
            best, best_len = -1, 0
            for i, (_, tokens) in enumerate(self.buffer):
                if best_len < len(tokens) <= remaining:
                    best, best_len = i, len(tokens)
            if best >= 0:
                row.extend(self.buffer.pop(best)[1])
            else:  # none fits: fill the rest with the start of the shortest document (its tail is dropped)
                shortest = min(range(len(self.buffer)), key=lambda i: len(self.buffer[i][1]))
                row.extend(self.buffer.pop(shortest)[1][:remaining])
        return row

    def _micro_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        rows = torch.tensor([self._row() for _ in range(self.batch_size)], dtype=torch.long)  # (B, T + 1)
        self.micro_batch += 1
        # next-token prediction: position t of the input predicts position t of the target (= t + 1 of the row)
        return rows[:, :-1].contiguous(), rows[:, 1:].contiguous()
