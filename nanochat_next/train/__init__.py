"""Stage 4 (notebook 04): training a tensor model.

``config`` (the one run config, the recipes, the model a run describes), ``data`` (a run's documents and
tokenizer), ``packing`` (nanochat's BOS best-fit loader), ``recipe`` (nanochat's LR, weight-decay and momentum
rules; the optimizer's groups), ``muon`` (MuonAdamW), ``evaluate`` (bits per byte), ``memory`` (the preflight
estimate), ``processes`` (DDP), ``checkpoint`` (crash-safe, exactly resumable), ``loop`` (the training loop).
Generation never imports this package (``infer`` is its sibling).
"""
