"""Stage 5 (notebook 05): generating text with a trained model.

``kv_cache`` (the keys and values of the positions so far), ``engine`` (prefill, then decode: batched sampling
with temperature/top-k/top-p, stop tokens, streaming text), ``decode_step`` (the model's own forward over a
static cache, compiled into one graph per token). Nothing here imports training code.
"""
