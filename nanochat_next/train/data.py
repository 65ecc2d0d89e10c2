"""A run's data and tokenizer: the one place a run gets them.

The CLI's ``train``, the notebooks, ``bench`` and the benchmarks all call ``run_data(run)``, so a run sees the
same documents and tokenizer whoever starts it:

- documents: a directory of parquet shards in nanochat's layout (sorted ``*.parquet``, the last shard validates),
  or a known corpus / ``.txt`` path split into documents by ``run.documents``, the last ``run.val_fraction`` of
  them validating (``corpus.load_split``);
- tokenizer: ``run.tokenizer`` when it names one; when resuming, the one the run saved beside its checkpoints;
  else trained now on the training documents (and saved first, so a resume uses the very same one).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from nanochat_next.corpus import load_split
from nanochat_next.tokenizer.bpe import BPETokenizer
from nanochat_next.train.config import TensorRun
from nanochat_next.train.packing import DocumentSource, parquet_shards


@dataclass
class RunData:
    """What a pretraining run reads: training and validation documents, and the tokenizer."""

    train: DocumentSource
    val: DocumentSource
    tokenizer: BPETokenizer

    @classmethod
    def from_docs(cls, train_docs: Sequence[str], val_docs: Sequence[str], tokenizer: BPETokenizer) -> RunData:
        """Documents already in hand (a notebook that split them itself) as a run's data."""
        return cls(DocumentSource.from_docs(train_docs), DocumentSource.from_docs(val_docs), tokenizer)


def documents(run: TensorRun, allow_download: bool = True) -> tuple[DocumentSource, DocumentSource]:
    """The run's (training, validation) documents: parquet shards or a corpus (module docstring)."""
    if Path(run.data).is_dir() and any(Path(run.data).glob("*.parquet")):  # nanochat's layout: shards, last = val
        train_files, val_files = parquet_shards(run.data)
        return DocumentSource.from_parquet(train_files), DocumentSource.from_parquet(val_files)
    train_docs, val_docs = load_split(run.data, run.documents, run.val_fraction, allow_download)
    return DocumentSource.from_docs(train_docs), DocumentSource.from_docs(val_docs)


def tokenizer_for(run: TensorRun, train_docs: Sequence[str], resume: str | None = None,
                  log: Callable[[str], None] = print, save: bool = True) -> BPETokenizer:
    """``run.tokenizer``, else the run's own (when resuming), else one trained now on ``train_docs`` (announced,
    and saved to OUT/tokenizer before training when ``save``: rank 0 only under DDP)."""
    saved = Path(run.out) / "tokenizer"
    if run.tokenizer:  # given: the same tokenizer for several runs (bench, ablations) makes their bpb comparable
        return BPETokenizer.load(run.tokenizer)
    if resume and (saved / "tokenizer.json").is_file():  # a resumed run must see the very same token ids
        return BPETokenizer.load(saved)
    log(f"training a {run.vocab_size:,}-token BPE tokenizer on {len(train_docs):,} training documents ...")
    t0 = time.perf_counter()
    tokenizer = BPETokenizer.train(train_docs, run.vocab_size)
    log(f"tokenizer trained in {time.perf_counter() - t0:.1f} s" + (f"; saved to {saved}/" if save else ""))
    if save:
        tokenizer.save(saved)  # saved first, so a resumed run uses the very same one
    return tokenizer


def run_data(run: TensorRun, resume: str | None = None, allow_download: bool = True,
             log: Callable[[str], None] = print, save_tokenizer: bool = True) -> RunData:
    """The run's documents and tokenizer (module docstring)."""
    train, val = documents(run, allow_download)
    return RunData(train, val, tokenizer_for(run, train.docs, resume, log, save_tokenizer))
