"""What a training run shows and records as it goes: the progress bar and the metrics lines (rank 0 only).

``metrics.jsonl`` gets one JSON line per step (loss, LR multiplier, step time, tok/s, MFU) and one per eval
(val bpb). A resumed run's bar starts where it left off; the bar closes before the last eval's line, so a
finished run shows one complete bar.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from nanochat_next.errors import UserError

if TYPE_CHECKING:
    from nanochat_next.tensor.train import Job, LoopState


class ProgressLog:
    """The progress bar (resumed runs start where they left off) and the metrics lines of rank 0."""

    def __init__(self, job: Job, state: LoopState, progress: bool, log):
        self.master, self.log, self.metrics, self.bar = job.procs.master, log, None, None
        if self.master and progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=job.run.steps, initial=state.step, desc=f"train {job.run.style}", unit="step")

    def say(self, text: str) -> None:
        (self.bar.write if self.bar else self.log)(text)

    def write(self, record: dict) -> None:
        try:
            self.metrics.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise UserError(f"cannot write {self.metrics.name} ({exc.strerror or exc}); the checkpoints saved so far "
                            "are intact (--resume latest continues from the newest)") from None

    def eval(self, step: int, bpb: float) -> None:
        if self.master:
            self.write({"step": step, "val_bpb": bpb})
            self.say(f"step {step:5d} | val bpb {bpb:.4f}")

    def step(self, step: int, loss: float, lrm: float, dt: float, tps: float, mfu: float) -> None:
        if not self.master:
            return
        self.write({"step": step, "loss": loss, "lrm": lrm, "dt": dt, "tok_per_s": tps, "mfu": mfu})
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:,.0f}", mfu=f"{100 * mfu:.1f}%", refresh=False)

    def finish(self) -> None:
        if self.bar:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> ProgressLog:
        return self

    def __exit__(self, *exc) -> None:
        self.finish()
        if self.metrics:
            self.metrics.close()
