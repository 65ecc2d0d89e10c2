"""Stage 1 (notebook 01): text to token ids.

``char`` a character tokenizer for teaching; ``split`` the GPT-4 split pattern; ``bpe_train`` a readable byte-level
BPE trainer whose merges equal rustbpe's; ``bpe`` the GPT-4 style tokenizer (rustbpe training, tiktoken encoding,
pickle-free save/load); ``compression`` bytes per token across vocabulary sizes; ``chat_template`` conversations
as tokens with nanochat's special tokens and the assistant's loss mask.
"""
