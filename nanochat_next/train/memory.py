"""How much memory a training run needs, estimated before anything is allocated, and how much there is.

The estimate counts, in bytes (float32 master weights on every device):

- parameters, gradients and optimizer state: 4 + 4 + 8 bytes per parameter (AdamW keeps two moments;
  Muon keeps one momentum plus a small second moment: 8 is the upper of the two);
- activations kept for the backward pass of one micro-batch of B x T tokens: per layer and token about
  ``ACTIVATION_FLOATS_PER_WIDTH`` x width floats (normed inputs, q, k, v, attention output, the 4x MLP
  hidden before and after ReLU², residuals) plus H x T attention probabilities when attention is not
  fused; then the logits, kept in float32 several times over (raw, soft-capped, the softmax gradient).

It is an estimate to refuse hopeless runs (``--depth 100`` on a laptop) with a number instead of the
kernel's OOM killer, not an allocator: the training run measures its real peak.
"""

from __future__ import annotations

import os
import sys

import torch

BYTES_PER_PARAM = 4 + 4 + 8  # weight, gradient, optimizer state (float32)
ACTIVATION_FLOATS_PER_WIDTH = 20  # saved activations per layer and token, in units of the model width
LOGIT_COPIES = 4  # float32 logits kept per token: raw, soft-capped, log-softmax, gradient


def estimate_training_bytes(num_params: int, n_layer: int, n_embd: int, n_head: int, vocab_size: int,
                            device_batch_size: int, seq_len: int) -> dict[str, int]:
    """{"state": weights + grads + optimizer, "activations": one micro-batch, "total": the sum} in bytes."""
    tokens = device_batch_size * seq_len
    # per layer and token: the saved inputs of its matmuls, norms and activations (~20 widths), plus one row of
    # attention probabilities per head when attention is materialised (seq_len floats)
    per_token_floats = n_layer * (ACTIVATION_FLOATS_PER_WIDTH * n_embd + n_head * seq_len)
    # the logits dominate a small model: a vocab-wide float32 row per token, several times over
    activations = 4 * tokens * (per_token_floats + LOGIT_COPIES * vocab_size)
    state = BYTES_PER_PARAM * num_params  # lives for the whole run; activations only during a micro-batch
    return {"state": state, "activations": activations, "total": state + activations}


def available_bytes(device: torch.device) -> tuple[int | None, str]:
    """(bytes this process can still use on ``device``, where the figure comes from); None when unknown."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free, "free CUDA memory"
    try:  # Linux: what can be allocated without swapping (free + reclaimable cache), not just "free"
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"
    except OSError:
        pass
    if sys.platform == "darwin" or hasattr(os, "sysconf"):  # macOS and other Unixes: physical memory, an upper bound
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory"
        except (ValueError, OSError):
            pass
    return None, "unknown"


def gigabytes(n: int) -> str:
    return f"{n / 2**30:.2f} GB" if n >= 2**27 else f"{n / 2**20:.0f} MB"
