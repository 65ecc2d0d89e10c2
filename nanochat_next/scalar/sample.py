"""Sampling from the scalar models, one token at a time, reproducible from a seed."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from nanochat_next.errors import UserError
from nanochat_next.scalar.bigram import ScalarBigram
from nanochat_next.scalar.gpt import ScalarMiniGPT
from nanochat_next.scalar.value import softmax_data


def check_temperature(temperature: float) -> None:
    if not isinstance(temperature, (int, float)) or math.isnan(temperature) or temperature <= 0:
        raise UserError(f"temperature must be a number > 0, got {temperature}")


def draw(logits: Sequence[float], temperature: float, rng: random.Random) -> int:
    """One token id from softmax(logits / temperature), as microgpt draws it."""
    probs = softmax_data([x / temperature for x in logits])
    return rng.choices(range(len(probs)), weights=probs)[0]


def generate(model: ScalarBigram | ScalarMiniGPT, prompt: Sequence[int], max_new_tokens: int, temperature: float,
             rng: random.Random, stop_token: int | None = None) -> list[int]:
    """New token ids after ``prompt``, stopping at ``stop_token``, ``max_new_tokens`` or the model's block."""
    check_temperature(temperature)
    if not prompt:
        raise UserError("the prompt needs at least one token (the model starts from <|bos|>)")
    new: list[int] = []
    if isinstance(model, ScalarBigram):
        token = prompt[-1]
        for _ in range(max_new_tokens):
            token = draw(model.next_logits([token]), temperature, rng)
            if token == stop_token:
                break
            new.append(token)
        return new
    block = model.config.block_size
    if len(prompt) > block:
        raise UserError(f"the prompt is {len(prompt)} tokens (with <|bos|>) but the model's block size is {block}")
    keys, values = model.new_cache()
    for pos, token in enumerate(prompt[:-1]):
        model.forward_token(token, pos, keys, values)
    token, pos = prompt[-1], len(prompt) - 1
    while len(new) < max_new_tokens and pos < block:
        logits = model.forward_token(token, pos, keys, values)
        token = draw([v.data for v in logits], temperature, rng)
        if token == stop_token:
            break
        new.append(token)
        pos += 1
    return new
