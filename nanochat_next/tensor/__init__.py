"""Stage 3 (notebooks 04-05): torch models, nanochat's training recipe and the inference engine.

Models: ``mini_gpt`` (the scalar mini-GPT as tensors), ``gpt`` (nanochat's modern GPT), ``gpt_classic`` (GPT-2),
``bigram``. Training: ``config`` (the one run config), ``muon`` (MuonAdamW), ``packing`` (the BOS best-fit loader),
``evaluate`` (bits per byte), ``checkpoint`` (crash-safe resumable checkpoints), ``train`` (the loop).
Using a model: ``model_io`` (build, save, load), ``kv_cache`` and ``engine`` (generation), ``chat`` (the
conversation template), ``nanochat_layout`` (nanochat's checkpoint files).
"""
