"""A readable, pure-Python byte-level BPE trainer whose merges are identical to rustbpe's.

The algorithm (the same as rustbpe's, so that the same text gives the same merges):

1. Split every text with the regex pattern into chunks (as tiktoken does, see ``split``); count each
   distinct chunk. BPE never merges
   across chunk boundaries, so a chunk that occurs 1,000 times is processed once with weight 1,000.
2. Every chunk starts as its UTF-8 bytes (ids 0..255). Count every adjacent pair of ids, weighted by
   the chunk's count, and remember which chunks hold each pair.
3. Repeat ``num_merges`` times: take the most frequent pair, ties broken by the smallest pair
   ``(left, right)``; give it the next id (256, 257, ...); replace it in the chunks that hold it,
   left to right without overlaps; and update the pair counts by what changed around each replacement
   (incremental: nothing is recounted).

Finding the most frequent pair uses a max-heap with lazy refresh: counts of existing pairs only go down
(a new pair always contains the new id), so an entry whose count is stale is re-pushed with its current
count when it reaches the top. Training stops early if no pair is left.
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from collections.abc import Iterable

from nanochat_next.tokenizer.split import TiktokenSplitter

# nanochat's split pattern: GPT-4's, except numbers split into runs of at most 2 digits (\p{N}{1,2})
SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
)

Pair = tuple[int, int]


def count_chunks(texts: Iterable[str], pattern: str = SPLIT_PATTERN) -> Counter[str]:
    """How often each chunk occurs across the texts, split exactly as tiktoken splits (``split``: the same
    chunks on every code point, whatever Unicode version each regex engine knows)."""
    splitter = TiktokenSplitter(pattern)
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(splitter.split(text))
    return counts


def train_merges(texts: Iterable[str], num_merges: int, pattern: str = SPLIT_PATTERN,
                 progress: bool = False) -> list[Pair]:
    """Learn up to ``num_merges`` merges; merge ``i`` creates token id ``256 + i``."""
    chunk_counts = count_chunks(texts, pattern)
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
    weights = list(chunk_counts.values())

    pair_counts: defaultdict[Pair, int] = defaultdict(int)
    where: defaultdict[Pair, set[int]] = defaultdict(set)  # chunk indices that may hold the pair
    for i, word in enumerate(words):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += weights[i]
            where[pair].add(i)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_merges, desc="BPE merges", unit="merge")
    merges: list[Pair] = []
    while len(merges) < num_merges and heap:
        neg_count, pair = heapq.heappop(heap)
        current = pair_counts[pair]
        if current <= 0:
            continue  # merged away already
        if -neg_count != current:
            heapq.heappush(heap, (-current, pair))  # stale count: requeue with the true one
            continue
        new_id = 256 + len(merges)
        merges.append(pair)
        created = _apply_merge(pair, new_id, words, weights, where.pop(pair), pair_counts, where)
        for new_pair in created:
            if pair_counts[new_pair] > 0:
                heapq.heappush(heap, (-pair_counts[new_pair], new_pair))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return merges


def _apply_merge(pair: Pair, new_id: int, words: list[list[int]], weights: list[int], positions: set[int],
                 pair_counts: defaultdict[Pair, int], where: defaultdict[Pair, set[int]]) -> set[Pair]:
    """Replace ``pair`` by ``new_id`` in the chunks at ``positions``; return the pairs this created."""
    a, b = pair
    created: set[Pair] = set()
    for i in positions:
        word = words[i]
        n = len(word)
        weight = weights[i]
        out: list[int] = []
        j = 0
        while j < n:
            if j + 1 < n and word[j] == a and word[j + 1] == b:
                if out:  # the pair on the left (x, a) becomes (x, new)
                    left = (out[-1], a)
                    pair_counts[left] -= weight
                    new_left = (out[-1], new_id)
                    pair_counts[new_left] += weight
                    where[new_left].add(i)
                    created.add(new_left)
                pair_counts[pair] -= weight
                if j + 2 < n:  # the pair on the right (b, y) becomes (new, y)
                    right = (b, word[j + 2])
                    pair_counts[right] -= weight
                    new_right = (new_id, word[j + 2])
                    pair_counts[new_right] += weight
                    where[new_right].add(i)
                    created.add(new_right)
                out.append(new_id)
                j += 2
            else:
                out.append(word[j])
                j += 1
        words[i] = out
    return created


def merges_to_token_bytes(merges: Iterable[Pair]) -> list[bytes]:
    """The byte string of every token id: 256 single bytes, then one per merge, in id order."""
    token_bytes = [bytes([i]) for i in range(256)]
    for left, right in merges:
        token_bytes.append(token_bytes[left] + token_bytes[right])
    return token_bytes
