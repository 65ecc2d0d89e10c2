"""nanochat-next: train tiny GPT language models from scratch, notebook first.

The library is small and flat, one concept per module:

- ``errors``         the one exception type that becomes a clear CLI error (exit code 2)
- ``runtime``        device and dtype rules, the ``doctor`` profile
- ``corpus``         text corpora: reading files, the download cache, documents, train/val split
- ``char_tokenizer`` a character-level tokenizer for teaching
- ``bpe_train``      a readable pure-Python byte-level BPE trainer (merges identical to rustbpe)
- ``bpe_tokenizer``  the GPT-4 style BPE tokenizer: rustbpe training, tiktoken encoding, text save/load
- ``tok_eval``       compression evaluation of tokenizers across vocab sizes
- ``cli``            the ``nanochat-next`` command line
"""

__version__ = "0.1.0"
