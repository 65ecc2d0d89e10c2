"""The bigram language model on scalars: P(next token | current token), two ways.

1. **Counting.** Count every (current, next) pair in the training documents (each framed by <|bos|> on
   both sides), add ``smoothing`` to every count, normalise each row. This is the maximum-likelihood
   answer (with add-alpha smoothing).
2. **Gradient descent.** A table of logits ``W[i][j]`` (one ``Value`` each), softmax over each row, and
   the loss = mean negative log-likelihood of the same (smoothed) counts. Its minimum is exactly the
   counting answer, so training it reaches the same NLL: the first neural network is a bigram table.

The loss uses one fused ``cross_entropy`` node per row with the row's counts as target weights, so a
full-batch step over 200,000 pairs costs 27 nodes, not 200,000.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from nanochat_next.errors import UserError
from nanochat_next.scalar.value import Value, cross_entropy, softmax_data, vsum


def bigram_counts(token_docs: Sequence[Sequence[int]], vocab_size: int) -> list[list[int]]:
    """counts[i][j] = how often token j follows token i across the documents."""
    counts = [[0] * vocab_size for _ in range(vocab_size)]
    for tokens in token_docs:
        for a, b in zip(tokens, tokens[1:]):
            counts[a][b] += 1
    return counts


def count_probs(counts: Sequence[Sequence[int]], smoothing: float = 1.0) -> list[list[float]]:
    """Row-normalised (counts + smoothing); a row with no counts and no smoothing is uniform."""
    if smoothing < 0:
        raise UserError(f"smoothing must be >= 0, got {smoothing}")
    probs = []
    for row in counts:
        total = sum(row) + smoothing * len(row)
        probs.append([(c + smoothing) / total for c in row] if total else [1.0 / len(row)] * len(row))
    return probs


def nll(probs: Sequence[Sequence[float]], counts: Sequence[Sequence[int]]) -> float:
    """Mean negative log-likelihood (nats per token) of the counted pairs under probs."""
    total = sum(sum(row) for row in counts)
    if not total:
        raise UserError("no bigrams to evaluate (the documents are empty)")
    loss = 0.0
    for prow, crow in zip(probs, counts):
        for p, c in zip(prow, crow):
            if c:
                if p <= 0.0:
                    return math.inf
                loss -= c * math.log(p)
    return loss / total


class ScalarBigram:
    """A vocab x vocab table of logits; row i is the distribution of the token after token i."""

    def __init__(self, vocab_size: int, logits: Sequence[Sequence[float]] | None = None):
        if vocab_size < 1:
            raise UserError(f"vocab size must be at least 1, got {vocab_size}")
        self.vocab_size = vocab_size
        rows = logits if logits is not None else [[0.0] * vocab_size for _ in range(vocab_size)]
        if len(rows) != vocab_size or any(len(r) != vocab_size for r in rows):
            raise UserError(f"bigram logits must be {vocab_size}x{vocab_size}")
        self.weights = [[Value(float(x)) for x in row] for row in rows]
        self.params = [p for row in self.weights for p in row]

    def loss(self, counts: Sequence[Sequence[int]], smoothing: float = 0.0) -> Value:
        """Mean NLL of (counts + smoothing) under softmax(rows): one fused node per row."""
        targets = [[c + smoothing for c in row] for row in counts]
        total = sum(sum(row) for row in targets)
        rows = [cross_entropy(w, t) for w, t in zip(self.weights, targets) if any(t)]
        return vsum(rows) * (1.0 / total)

    def probs(self) -> list[list[float]]:
        return [softmax_data([p.data for p in row]) for row in self.weights]

    def next_logits(self, tokens: list[int]) -> list[float]:
        return [p.data for p in self.weights[tokens[-1]]]

    def to_dict(self) -> dict:
        return {"config": {"vocab_size": self.vocab_size}, "weights": {"logits": [[p.data for p in row]
                                                                                for row in self.weights]}}

    @classmethod
    def from_dict(cls, data: dict) -> ScalarBigram:
        try:
            return cls(int(data["config"]["vocab_size"]), data["weights"]["logits"])
        except (KeyError, TypeError) as exc:
            raise UserError(f"checkpoint is not a scalar bigram: missing {exc}") from None
