"""Exports of a trained model to where people run models (docs/interop.md), each verified against the model.

Formats (``nanochat-next export --to FORMAT``), one module each:

- ``safetensors``: our model format as a versioned interface (model.safetensors + config.json + the tokenizer
  as tiktoken ranks and as tokenizer.json): everything a loader in another language needs (``formats``);
- ``hf``: a transformers directory (``hf_export``; the modeling code it carries is ``hf_modeling`` +
  ``portable``);
- ``onnx``: prefill and decode graphs with the KV cache as inputs/outputs (``onnx_graphs``);
- ``tokenizer``: tokenizer.json for Hugging Face tokenizers / tokenizers.js (``hf_tokenizer``);
- ``gguf``: llama.cpp's gpt2 architecture, classic style only (``gguf_export``);
- ``nanochat``: karpathy/nanochat's checkpoint layout (``model.nanochat_layout``).

``verify`` checks each against our own model and engine (logits and greedy tokens).
"""

FORMATS = ("safetensors", "hf", "onnx", "tokenizer", "gguf", "nanochat")
