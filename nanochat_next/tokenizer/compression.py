"""Compression of a tokenizer on held-out documents: bytes per token and tokens per document.

More bytes per token means the model sees more text for the same sequence length and compute; it is
the number that tells whether a bigger vocabulary is worth its larger embedding table.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nanochat_next.tokenizer.bpe import BPETokenizer


def compression(tokenizer: BPETokenizer, docs: Sequence[str]) -> dict:
    """Bytes, tokens, bytes/token and mean tokens/document of docs (no BOS counted)."""
    encoded = tokenizer.encode_batch(list(docs))
    n_bytes = sum(len(d.encode("utf-8")) for d in docs)
    n_tokens = sum(len(ids) for ids in encoded)
    return {
        "vocab_size": tokenizer.vocab_size,
        "documents": len(docs),
        "bytes": n_bytes,
        "tokens": n_tokens,
        "bytes_per_token": n_bytes / n_tokens if n_tokens else 0.0,
        "tokens_per_document": n_tokens / len(docs) if docs else 0.0,
    }


def sweep_vocab_sizes(train_docs: Sequence[str], val_docs: Sequence[str], vocab_sizes: Sequence[int],
                      trainer: str = "rustbpe") -> list[dict]:
    """Train one tokenizer per vocab size on train_docs and measure compression on val_docs."""
    rows = []
    for vocab_size in vocab_sizes:
        tokenizer = BPETokenizer.train(train_docs, vocab_size, trainer=trainer)
        rows.append(compression(tokenizer, val_docs))
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A Markdown table of compression rows."""
    lines = ["| vocab size | bytes/token | tokens/document | tokens | bytes |", "|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['vocab_size']:,} | {r['bytes_per_token']:.3f} | {r['tokens_per_document']:.1f} "
                     f"| {r['tokens']:,} | {r['bytes']:,} |")
    return "\n".join(lines)


def plot_compression(rows: Sequence[dict], path: str | Path | None = None, title: str = ""):
    """Bytes/token and tokens/document against vocab size (log x). Saves a PNG if path is given."""
    import matplotlib.pyplot as plt

    sizes = [r["vocab_size"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax1.plot(sizes, [r["bytes_per_token"] for r in rows], "o-")
    ax1.set(xscale="log", xlabel="vocab size", ylabel="bytes per token (higher is better)")
    ax2.plot(sizes, [r["tokens_per_document"] for r in rows], "o-", color="tab:orange")
    ax2.set(xscale="log", xlabel="vocab size", ylabel="tokens per document")
    for ax in (ax1, ax2):
        ax.set_xticks(sizes, [str(s) for s in sizes])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return fig
