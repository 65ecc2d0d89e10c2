"""Stage 3 (notebooks 03-04): the torch models and their files.

``gpt`` (nanochat's GPT, the ``modern`` style, with the recipe's model features), ``gpt_classic`` (GPT-2),
``bigram`` (notebook 02's table as a tensor model), ``torch_mini_gpt`` (notebook 03's scalar mini-GPT as
tensors), ``saving`` (a trained model directory: safetensors + JSON, no pickle), ``nanochat_layout``
(nanochat's own checkpoint files, both ways).
"""
