"""Stage 2 (notebooks 02-03): language models on Python scalars.

``value`` the scalar autograd engine; ``bigram`` and ``gpt`` the two scalar models; ``optim`` SGD/AdamW;
``config`` the scalar run config; ``train`` the training loop; ``sample`` generation; ``checkpoint`` one JSON file.
"""
