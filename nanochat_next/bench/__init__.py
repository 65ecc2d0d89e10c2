"""Stage 6 (notebooks 06-07): ours vs karpathy/nanochat on one dataset, tokenizer, config, seed and machine.

``profiles`` the benchmark configs; ``baseline`` finding and running nanochat; ``data`` one dataset and tokenizer
for both; ``decode_runner`` the decode-speed script each side runs; ``scorecard`` the verdict and the report;
``harness`` the run from start to artifacts; ``stats``, ``ablate`` and ``ablate_report`` the ablation runner
(a grid of train flags x seeds, judged by paired t-tests).
"""
