"""A GPT on scalars, in the spirit of karpathy's microgpt.py: every weight is a ``Value``.

Architecture (microgpt's, GPT-2 with small changes): token + learned position embeddings, RMSNorm
(parameter-free) after the embedding and before each block, multi-head causal self-attention, an MLP
with ReLU², residual connections, no biases, an untied output head. Attention keeps per-layer lists of
past keys and values (a KV cache), so the model processes one token at a time, for training and
generation alike. Weights are initialised from N(0, 0.02), with the attention output and the second MLP
matrix at zero, drawn in microgpt's order from a ``random.Random(seed)``.

The float64 torch twin in ``torch_mini_gpt`` computes the same function on whole sequences; the tests
check losses and gradients agree to 1e-9.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from nanochat_next.errors import UserError
from nanochat_next.scalar.value import Value, cross_entropy, dot, linear, rmsnorm, softmax, vsum


@dataclass(frozen=True)
class MiniGPTConfig:
    vocab_size: int
    n_embd: int = 16
    n_head: int = 4
    n_layer: int = 1
    block_size: int = 16
    init_std: float = 0.02

    def __post_init__(self) -> None:
        for name in ("vocab_size", "n_embd", "n_head", "n_layer", "block_size"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise UserError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


def matrix_names(config: MiniGPTConfig) -> list[tuple[str, int, int, float]]:
    """(name, rows, cols, init std) of every weight matrix, in initialisation order (microgpt's)."""
    c, std = config, config.init_std
    names = [("wte", c.vocab_size, c.n_embd, std), ("wpe", c.block_size, c.n_embd, std),
             ("lm_head", c.vocab_size, c.n_embd, std)]
    for i in range(c.n_layer):
        names += [(f"layer{i}.attn_wq", c.n_embd, c.n_embd, std), (f"layer{i}.attn_wk", c.n_embd, c.n_embd, std),
                  (f"layer{i}.attn_wv", c.n_embd, c.n_embd, std), (f"layer{i}.attn_wo", c.n_embd, c.n_embd, 0.0),
                  (f"layer{i}.mlp_fc1", 4 * c.n_embd, c.n_embd, std),
                  (f"layer{i}.mlp_fc2", c.n_embd, 4 * c.n_embd, 0.0)]
    return names


class ScalarMiniGPT:
    def __init__(self, config: MiniGPTConfig, seed: int = 42, rng: random.Random | None = None):
        self.config = config
        rng = rng if rng is not None else random.Random(seed)
        self.weights: dict[str, list[list[Value]]] = {
            name: [[Value(rng.gauss(0, std)) for _ in range(cols)] for _ in range(rows)]
            for name, rows, cols, std in matrix_names(config)
        }
        self.params = [p for mat in self.weights.values() for row in mat for p in row]

    def num_params(self) -> int:
        return len(self.params)

    # ------------------------------------------------------------------ forward
    def forward_token(self, token_id: int, pos_id: int, keys: list[list], values: list[list]) -> list[Value]:
        """Logits for the next token after ``token_id`` at ``pos_id``; appends this position's k, v."""
        c, w = self.config, self.weights
        if pos_id >= c.block_size:
            raise UserError(f"position {pos_id} is past the block size {c.block_size} (the learned positions end)")
        x = [t + p for t, p in zip(w["wte"][token_id], w["wpe"][pos_id])]
        x = rmsnorm(x)
        hd, scale = c.head_dim, 1.0 / math.sqrt(c.head_dim)
        for li in range(c.n_layer):
            residual = x
            x = rmsnorm(x)
            q = linear(x, w[f"layer{li}.attn_wq"])
            keys[li].append(linear(x, w[f"layer{li}.attn_wk"]))
            values[li].append(linear(x, w[f"layer{li}.attn_wv"]))
            attended: list[Value] = []
            for h in range(c.n_head):
                s = slice(h * hd, (h + 1) * hd)
                q_h = q[s]
                weights = softmax([dot(q_h, k[s]) * scale for k in keys[li]])
                v_h = [v[s] for v in values[li]]
                attended += [dot(weights, [v[j] for v in v_h]) for j in range(hd)]
            x = [a + b for a, b in zip(linear(attended, w[f"layer{li}.attn_wo"]), residual)]
            residual = x
            hidden = [h.relu() ** 2 for h in linear(rmsnorm(x), w[f"layer{li}.mlp_fc1"])]
            x = [a + b for a, b in zip(linear(hidden, w[f"layer{li}.mlp_fc2"]), residual)]
        return linear(x, w["lm_head"])

    def new_cache(self) -> tuple[list[list], list[list]]:
        return [[] for _ in range(self.config.n_layer)], [[] for _ in range(self.config.n_layer)]

    def loss(self, tokens: list[int]) -> Value:
        """Mean next-token cross-entropy over the first min(block_size, len - 1) positions of a document."""
        n = min(self.config.block_size, len(tokens) - 1)
        if n < 1:
            raise UserError("a training sequence needs at least 2 tokens (BOS + one more)")
        keys, values = self.new_cache()
        losses = [cross_entropy(self.forward_token(tokens[i], i, keys, values), tokens[i + 1]) for i in range(n)]
        return vsum(losses) * (1.0 / n)

    def next_logits(self, tokens: list[int]) -> list[float]:
        """Logits (floats) after the whole token list, which must fit in the block."""
        keys, values = self.new_cache()
        for pos, tok in enumerate(tokens):
            logits = self.forward_token(tok, pos, keys, values)
        return [v.data for v in logits]

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict:
        return {"config": asdict(self.config),
                "weights": {name: [[p.data for p in row] for row in mat] for name, mat in self.weights.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> ScalarMiniGPT:
        model = cls(MiniGPTConfig(**data["config"]), rng=random.Random(0))
        for name, rows, cols, _ in matrix_names(model.config):
            stored = data["weights"].get(name)
            if stored is None or len(stored) != rows or any(len(r) != cols for r in stored):
                raise UserError(f"checkpoint weight {name!r} is missing or not {rows}x{cols}")
            for row, stored_row in zip(model.weights[name], stored):
                for p, value in zip(row, stored_row):
                    p.data = float(value)
        return model
