"""Generate the chat-template parity fixture from nanochat's own ``render_conversation`` at the pinned ref.

    python tools/make_chat_fixture.py --nanochat /path/to/nanochat-checkout [--out tests/fixtures]

Trains one small tokenizer of ours (vocab 300 on synthetic text), hands its ranks and special tokens to
nanochat's ``RustBPETokenizer`` (a tiktoken Encoding, as its own training builds), renders a set of
conversations (plain turns, a system message, tool-call parts, unicode, truncation) with nanochat's code,
and records the ids and masks. Output: chat_parity.json (the tokenizer's training text, the conversations,
max_tokens, ids, masks). Importing nanochat's tokenizer module needs the ``tokenizers`` package.
No nanochat code is copied: it is imported from the checkout at run time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PINNED = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"
TEXT = ["The quick brown fox jumps over the lazy dog. " * 3, "What is 2 + 2? It is 4.", "print('hi')", "héllo wörld"]
CONVERSATIONS = [
    ({"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "It is 4."}]},
     2048),
    ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                   {"role": "assistant", "content": "hello"}, {"role": "user", "content": "héllo wörld ✓"},
                   {"role": "assistant", "content": "ok"}]}, 2048),
    ({"messages": [{"role": "user", "content": "compute 6*7"},
                   {"role": "assistant", "content": [{"type": "text", "text": "Let me run it. "},
                                                     {"type": "python", "text": "print(6*7)"},
                                                     {"type": "python_output", "text": "42"},
                                                     {"type": "text", "text": "The answer is 42."}]}]}, 2048),
    ({"messages": [{"role": "user", "content": "The quick brown fox " * 4},
                   {"role": "assistant", "content": "jumps over the lazy dog " * 4}]}, 40),
    ({"messages": [{"role": "user", "content": "only a question"}]}, 2048),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True, help="path to a karpathy/nanochat checkout at the pinned ref")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", args.nanochat, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    if head.strip() != PINNED:
        sys.exit(f"{args.nanochat} is at {head.strip() or '?'}, expected the pinned ref {PINNED}")
    sys.path.insert(0, args.nanochat)
    import tiktoken
    from nanochat.tokenizer import RustBPETokenizer  # imported from the checkout

    from nanochat_next.tokenizer.bpe import BPETokenizer

    ours = BPETokenizer.train(TEXT, 300)
    ranks = {token: rank for rank, token in enumerate(ours.token_bytes)}
    enc = tiktoken.Encoding(name="fixture", pat_str=ours.pattern, mergeable_ranks=ranks,
                            special_tokens=ours.special_tokens)
    theirs = RustBPETokenizer(enc, "<|bos|>")
    cases = []
    for conversation, max_tokens in CONVERSATIONS:
        ids, mask = theirs.render_conversation(conversation, max_tokens=max_tokens)
        cases.append({"conversation": conversation, "max_tokens": max_tokens, "ids": ids, "mask": mask})
    out = Path(args.out) / "chat_parity.json"
    out.write_text(json.dumps({"nanochat_ref": PINNED, "tokenizer_text": TEXT, "vocab_size": 300, "cases": cases},
                              ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out} ({len(cases)} conversations)")


if __name__ == "__main__":
    main()
