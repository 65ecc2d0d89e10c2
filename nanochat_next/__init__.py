"""nanochat-next: train tiny GPT language models from scratch, notebook first.

The package is a shared base plus one subpackage per stage a learner meets (docs/architecture.md):

- shared base: ``errors`` (the one user-facing exception), ``atomic`` (crash-safe writes), ``runtime``
  (devices, dtypes, ``doctor``), ``corpus`` (text corpora and the download cache), ``schedule`` (LR
  schedules), ``provenance`` (run metadata and result artifacts)
- ``tokenizer``  characters and byte-level BPE (notebook 01)
- ``scalar``     autograd on Python scalars: bigram and mini-GPT (notebooks 02-03)
- ``tensor``     torch models, training, checkpoints and the inference engine (notebooks 04-05)
- ``bench``      ours vs karpathy/nanochat, side by side (notebook 06)
- ``cli``        the ``nanochat-next`` command line

A stage may import the shared base and the stages before it, never one after it (a test checks).
"""

__version__ = "0.1.0"
