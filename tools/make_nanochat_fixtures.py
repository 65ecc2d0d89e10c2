"""Generate the nanochat parity fixtures from nanochat's own code (gpt.py, optim.py), at the pinned ref or at
nanochat's newest commit.

    python tools/make_nanochat_fixtures.py --nanochat /path/to/nanochat-checkout [--out tests/fixtures]

The checkout must be karpathy/nanochat at 2f096867244e3d00a50284d1be05fa3f5dcfb84b (the pinned ref; output
nanochat_parity.*) or at 92d63d4e8bb4df75c3b71618f31ddde2378b2bcd (master, 2026-07-03; output
nanochat_newest_parity.*); the script checks which. Importing it needs `filelock` besides torch. It builds a
small modern GPT with every feature switched on (GQA, an S/L window pattern, value embeddings, lambdas; at the
newest commit also smear, backout and a short window that really is shorter than the context), perturbs all
weights so no path is zero, and records: the weights, a batch, nanochat's logits and losses, and the losses and
final weights of 5 MuonAdamW steps with changing LR, momentum and weight decay, and nanochat's FLOPs per token
(``estimate_flops``). At the newest commit it also
records the initial weights as nanochat's base_train makes them (meta device, then init_weights after a seed),
so a test can check that the same seed gives the same model.

nanochat wraps its two optimizer kernels in torch.compile, and Inductor's fused bfloat16 arithmetic
rounds differently from the same code run eagerly (on CPU: ~7e-4 on a Muon update). So the 5 steps are
recorded twice: ``losses`` with the kernels' own Python code run eagerly (the reference our eager
optimizer must match), and ``losses_compiled`` as nanochat runs by default.
No nanochat code is copied: it is imported from the checkout at run time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file

PINNED = "2f096867244e3d00a50284d1be05fa3f5dcfb84b"
NEWEST = "92d63d4e8bb4df75c3b71618f31ddde2378b2bcd"
CONFIG = dict(sequence_len=32, vocab_size=100, n_layer=3, n_head=4, n_kv_head=2, n_embd=32, window_pattern="SL")
# the newest commit rounds a quarter-context short window up to 128 tokens: a 1024-token context gives S = 256
# (2f09686 would give 512; at 256 tokens both rules give 128 and a fixture could not tell them apart)
NEWEST_CONFIG = {**CONFIG, "sequence_len": 1024}
OPTIM = dict(unembedding_lr=0.004, embedding_lr=0.2, matrix_lr=0.02, weight_decay=0.1, adam_betas=(0.8, 0.95),
             scalar_lr=0.5)
SCHEDULE = [  # (lr multiplier, muon momentum, muon weight decay) per step
    (1.0, 0.85, 0.1), (1.0, 0.87, 0.09), (0.8, 0.9, 0.08), (0.6, 0.92, 0.07), (0.4, 0.95, 0.06)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanochat", required=True, help="path to a karpathy/nanochat checkout at the pinned ref")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", args.nanochat, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    head = head.strip()
    if head not in (PINNED, NEWEST):
        sys.exit(f"{args.nanochat} is at {head or '?'}, expected the pinned ref {PINNED} or the newest {NEWEST}")
    newest = head == NEWEST
    config = NEWEST_CONFIG if newest else CONFIG
    os.environ["NANOCHAT_DTYPE"] = "float32"  # the newest commit's compute dtype on a CPU (the pin has none)
    sys.path.insert(0, args.nanochat)
    from nanochat import optim  # imported from the checkout
    from nanochat.gpt import GPT, GPTConfig

    init = {}
    if newest:  # as its base_train builds a model: shapes on the meta device, then every draw in init_weights
        with torch.device("meta"):
            model = GPT(GPTConfig(**config))
        model.to_empty(device="cpu")
        torch.manual_seed(1234)
        model.init_weights()
        init = {f"init.{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    else:
        torch.manual_seed(1234)
        model = GPT(GPTConfig(**config))
        model.init_weights()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    weights = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    gen = torch.Generator().manual_seed(99)
    idx = torch.randint(0, config["vocab_size"], (2, config["sequence_len"]), generator=gen)
    targets = torch.randint(0, config["vocab_size"], (2, config["sequence_len"]), generator=gen)
    targets[0, :3] = -1  # ignored positions
    with torch.no_grad():
        logits = model(idx)
        loss_none = model(idx, targets, loss_reduction="none")

    def five_steps() -> tuple[list[float], dict]:
        model.load_state_dict(weights)
        # the newest commit sets every group's betas itself (no adam_betas argument)
        settings = {k: v for k, v in OPTIM.items() if k != "adam_betas"} if newest else OPTIM
        optimizer = model.setup_optimizer(**settings)
        losses = []
        for lrm, momentum, wd in SCHEDULE:
            loss = model(idx, targets)
            loss.backward()
            for group in optimizer.param_groups:
                group["lr"] = group["initial_lr"] * lrm
                if group["kind"] == "muon":
                    group["momentum"], group["weight_decay"] = momentum, wd
            optimizer.step()
            model.zero_grad(set_to_none=True)
            losses.append(loss.item())
        with torch.no_grad():
            losses.append(model(idx, targets).item())  # after the 5th step
        return losses, {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}

    losses_compiled, stepped_compiled = five_steps()
    compiled_kernels = (optim.adamw_step_fused, optim.muon_step_fused)
    optim.adamw_step_fused = optim.adamw_step_fused._torchdynamo_orig_callable  # the same code, run eagerly
    optim.muon_step_fused = optim.muon_step_fused._torchdynamo_orig_callable
    losses, stepped = five_steps()
    optim.adamw_step_fused, optim.muon_step_fused = compiled_kernels

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {f"weights.{k}": v for k, v in weights.items()} | init
    tensors.update({f"stepped.{k}": v for k, v in stepped.items()})  # weights after the 5 eager steps
    tensors.update({f"stepped_compiled.{k}": v for k, v in stepped_compiled.items()})
    tensors.update({"idx": idx, "targets": targets, "logits": logits.contiguous(), "loss_none": loss_none})
    name = "nanochat_newest_parity" if newest else "nanochat_parity"
    save_file(tensors, out / f"{name}.safetensors")
    meta = {"nanochat_ref": head, "config": config, "init_seed": 1234,
            "optimizer": {**OPTIM, "adam_betas": list(OPTIM["adam_betas"])},
            "schedule": SCHEDULE, "estimate_flops": model.estimate_flops(),  # FLOPs per token, nanochat's count
            "losses": losses, "losses_compiled": losses_compiled, "torch": torch.__version__,
            "generated_by": "tools/make_nanochat_fixtures.py"}
    (out / f"{name}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out}/{name}.safetensors and .json")
    print(f"eager losses    {losses}\ncompiled losses {losses_compiled}")


if __name__ == "__main__":
    main()
