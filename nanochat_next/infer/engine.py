"""Inference: prefill the prompt once into a KV cache, then decode one token at a time for every sample.

- ``Engine.generate`` yields, each step, one new token per sample (``None`` for samples already stopped).
  Several samples of one prompt share its prefill: the batch-1 cache is expanded to ``num_samples`` rows.
- Sampling: ``temperature`` 0 is greedy (argmax); otherwise softmax(logits / temperature), restricted to
  the ``top_k`` most likely tokens and/or the smallest set whose probability reaches ``top_p``. A seeded
  ``torch.Generator`` makes samples reproducible.
- Stop tokens (default ``<|bos|>`` and ``<|assistant_end|>``) end a sample; they are not returned.
- Context: a generation never goes past the model's training context ``sequence_len``. A prompt longer
  than that is an error (say what to do); when prompt + new tokens reach it, generation stops and
  ``stop_reason`` says ``"context"``: never a silent truncation or an out-of-range position.
- ``stream_text`` turns the token stream into text pieces that never split a UTF-8 character.
"""

from __future__ import annotations

import codecs
import math
from collections.abc import Iterator, Sequence

import torch

from nanochat_next.errors import UserError
from nanochat_next.infer.decode_step import compiled_step, previous_embedding, weights_version, write
from nanochat_next.infer.kv_cache import KVCache

SEED_RANGE = (0, 2**63 - 1)  # what torch.Generator.manual_seed takes without overflowing


def check_sampling(temperature: float, top_k: int | None, top_p: float | None, seed: int = 0) -> None:
    """The sampling settings every caller (CLI, server, notebooks) must pass: one error line each, before any work."""
    if not isinstance(temperature, (int, float)) or math.isnan(temperature) or temperature < 0:
        raise UserError(f"temperature must be a number >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise UserError(f"top-k must be at least 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise UserError(f"top-p must be in (0, 1], got {top_p}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not SEED_RANGE[0] <= seed <= SEED_RANGE[1]:
        raise UserError(f"the seed must be an integer from {SEED_RANGE[0]} to {SEED_RANGE[1]}, got {seed!r:.40}")


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of (B, vocab) logits, as a (B,) tensor."""
    if temperature == 0:  # greedy: the most likely token, no randomness
        return logits.argmax(-1)
    # temperature < 1 sharpens the distribution (more likely tokens win more often), > 1 flattens it. The largest
    # logit is subtracted first (softmax does not change): then a tiny temperature gives 0 / T = 0 for the best
    # token and -inf for the rest, never inf - inf = NaN (1e-300 crashed the sampler before). In float64: in float32 a
    # temperature of 1e-300 is 0, and 0 / 0 is NaN again
    logits = logits.double()
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
    if top_k is not None and top_k < logits.size(-1):  # only the k most likely tokens stay in the draw
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:  # nucleus: the smallest set of tokens holding top_p of the probability
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= top_p  # keep tokens until the mass reaches top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)  # back to vocab order
    # the renormalised distribution over what is left; a seeded generator makes the draw reproducible
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


class Engine:
    def __init__(self, model: torch.nn.Module, tokenizer=None, compile: bool = False, autotune: bool = True):
        """``compile=True`` decodes with one compiled graph per step (``decode_step``; modern GPT only): the
        first generation of each batch size pays the compilation (up to a minute on a 2-core CPU, where it tunes
        its matmul kernels), later ones run it. The graph holds the weights as they are now: generating after
        they change is an error (make a new engine)."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.context = model.config.sequence_len
        self.stop_reason: list[str] = []
        self.step = None
        if compile:
            from nanochat_next.model.gpt import GPT

            if not isinstance(model, GPT):
                raise UserError(f"compiled decoding is for the modern GPT; decode the {model.style} model without "
                                "--compile")
            self.step = compiled_step(model, autotune)
            self.compiled_version = weights_version(model)  # the step freezes the weights it is compiled with

    def default_stop_tokens(self) -> set[int]:
        if self.tokenizer is None or not hasattr(self.tokenizer, "special_tokens"):
            return set()
        return {self.tokenizer.special_tokens[t] for t in ("<|bos|>", "<|assistant_end|>")
                if t in self.tokenizer.special_tokens}

    def _cache(self, batch: int, max_len: int) -> KVCache:
        # sized for this generation only (prompt + budget), with the model's key/value heads (GQA: fewer than q's)
        c = self.model.config
        return KVCache(c.n_layer, batch, max_len, c.n_kv_head, c.head_dim, self.device,
                       next(self.model.parameters()).dtype)

    @torch.inference_mode()
    def generate(self, prompt: Sequence[int], max_new_tokens: int, num_samples: int = 1, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, seed: int = 0,
                 stop_tokens: set[int] | None = None) -> Iterator[list[int | None]]:
        check_sampling(temperature, top_k, top_p, seed)
        if not prompt:
            raise UserError("the prompt needs at least one token (start it with <|bos|>)")
        if len(prompt) > self.context:
            raise UserError(f"the prompt is {len(prompt)} tokens but the model's context is {self.context}; "
                            "shorten the prompt")
        if max_new_tokens < 1 or num_samples < 1:
            raise UserError("max new tokens and number of samples must be at least 1")
        if self.step is not None and weights_version(self.model) != self.compiled_version:
            raise UserError("the model's weights changed since this engine compiled its decode step (it decodes "
                            "with the weights frozen at compile time): make a new Engine(model, compile=True)")
        stops = self.default_stop_tokens() if stop_tokens is None else set(stop_tokens)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        # never past the context the model was trained on: a shorter budget, and the reason recorded
        budget = min(max_new_tokens, self.context - len(prompt))
        self.stop_reason = ["length" if budget == max_new_tokens else "context"] * num_samples
        if budget <= 0:
            return
        # prefill: the whole prompt in one forward, filling the cache; only the last position's logits matter
        cache = self._cache(1, len(prompt) + budget)
        logits = self.model(torch.tensor([list(prompt)], device=self.device), kv_cache=cache)[:, -1]
        if num_samples > 1:  # every sample shares the prompt: copy its cache instead of prefilling it n times
            cache = cache.expand(num_samples)
            logits = logits.expand(num_samples, -1)
        done = [False] * num_samples
        for step in range(budget):
            tokens = sample_next(logits, temperature, top_k, top_p, generator)
            out: list[int | None] = []
            for i, t in enumerate(tokens.tolist()):
                if done[i]:
                    out.append(None)
                elif t in stops:
                    done[i] = True
                    self.stop_reason[i] = "stop"
                    out.append(None)
                else:
                    out.append(t)
            yield out
            if all(done) or step == budget - 1:
                return
            # decode: one token per sample through the model, reading the cache (stopped samples keep decoding
            # in the batch, their tokens unused: the batch keeps one shape)
            logits = self._decode(tokens[:, None], cache)

    def _decode(self, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """Logits after one more token per row: the compiled static-cache step, or the eager forward."""
        if self.step is None:
            return self.model(tokens, kv_cache=cache)[:, -1]
        cache.check_room(1)  # the compiled graph cannot check it: done here, before the step
        logits, new_k, new_v, embedding = self.step(tokens, torch.tensor(cache.pos, device=self.device), cache.k,
                                                    cache.v, previous_embedding(cache, self.model))
        write(cache, new_k, new_v, embedding)  # the step returns this position's keys/values; store them
        return logits

    def generate_batch(self, prompt: Sequence[int], max_new_tokens: int, num_samples: int = 1,
                       **kwargs) -> list[list[int]]:
        """The new tokens of each sample (stop tokens excluded)."""
        samples: list[list[int]] = [[] for _ in range(num_samples)]
        for step in self.generate(prompt, max_new_tokens, num_samples, **kwargs):
            for i, t in enumerate(step):
                if t is not None:
                    samples[i].append(t)
        return samples

    def stream_pieces(self, prompt: Sequence[int], max_new_tokens: int,
                      **kwargs) -> Iterator[tuple[int | None, str]]:
        """(token, text piece) of one sample as it is generated; the piece is "" while a multi-byte character is
        incomplete (it comes whole with a later token), and a last (None, piece) flushes what is left."""
        # a token may hold part of a character (byte-level BPE): the incremental decoder keeps the partial bytes
        # until the character is whole, so no piece ever shows a broken character
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        for (token,) in self.generate(prompt, max_new_tokens, 1, **kwargs):
            if token is None:
                break
            yield token, decoder.decode(self.tokenizer.decode_bytes([token]))
        tail = decoder.decode(b"", final=True)
        if tail:
            yield None, tail

    def stream_text(self, prompt: Sequence[int], max_new_tokens: int, **kwargs) -> Iterator[str]:
        """Text pieces of one sample as it is generated; a multi-byte character is emitted only once whole."""
        for _, piece in self.stream_pieces(prompt, max_new_tokens, **kwargs):
            if piece:
                yield piece
