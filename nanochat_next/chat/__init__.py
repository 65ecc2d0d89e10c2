"""Stage 8 (notebooks 08, 10): from a base model to an assistant.

``conversations`` (JSONL conversation files), ``tasks`` (generated tasks with checkers, train/test disjoint),
``datasets`` (smoltalk, GSM8K, ARC downloaded on demand), ``mixture`` (``--mix``), ``sft`` (supervised
fine-tuning on the training loop), ``evaluate`` (task accuracy). The chat template itself lives beside the
tokenizer (``tokenizer.chat_template``), as in nanochat.
"""
