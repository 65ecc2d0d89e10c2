"""nanochat-next: train tiny GPT language models from scratch, notebook first.

The folder list is the pipeline (docs/architecture.md): a shared base (errors, faults, interrupt, atomic,
schedule, run_config, corpus, dtype_choice, runtime, provenance), then one subpackage per stage a learner meets:

- ``tokenizer``  characters, byte-level BPE, the chat template (notebook 01)
- ``scalar``     autograd on Python scalars: bigram and mini-GPT (notebooks 02-03)
- ``model``      the torch models and their files (notebooks 03-04)
- ``train``      run config, data, recipe, Muon, checkpoints, the training loop (notebook 04)
- ``infer``      KV cache, sampling engine, compiled decode (notebook 05); a sibling of ``train``
- ``bench``      ours vs karpathy/nanochat side by side, ablations (notebooks 06-07)
- ``chat``       conversations, tasks, SFT, chat evaluation (notebook 08)
- ``export``, ``serve``, ``cli``

A stage may import the shared base and the stages before it, never one after it; ``train`` and ``infer`` never
import each other (a test checks every import).
"""

__version__ = "0.1.0"
