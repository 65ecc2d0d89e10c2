"""Where a training run executes: this process's rank among ``world`` processes (torchrun's environment) and its
device, and how a step's batch divides into micro-batches across them."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nanochat_next.errors import UserError
from nanochat_next.runtime import resolve_device
from nanochat_next.train.config import TensorRun


@dataclass(frozen=True)
class Processes:
    """Where this process runs: its rank among ``world`` processes and its device."""

    rank: int
    local_rank: int
    world: int
    device: torch.device

    @property
    def master(self) -> bool:
        return self.rank == 0


def distributed_info() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) without it."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:  # torchrun sets these for every process it starts
        return int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0)), int(os.environ["WORLD_SIZE"])
    return 0, 0, 1


def setup_processes(device_name: str) -> Processes:
    """Resolve the device (an absent one is an error) and join the process group under torchrun."""
    rank, local_rank, world = distributed_info()
    device = resolve_device(device_name)
    if world > 1:
        if device.type == "cuda":  # one GPU per process on a machine: the local rank picks it
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not dist.is_initialized():  # nccl talks GPU to GPU; gloo is the CPU's backend
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Processes(rank, local_rank, world, device)


def gradient_accumulation(run: TensorRun, world: int) -> int:
    # a step sees total_batch_size tokens however many processes share it: fewer processes, more micro-batches
    per_step = run.tokens_per_micro_batch * world
    if run.total_batch_size % per_step:
        raise UserError(f"total batch size {run.total_batch_size} must be a multiple of device batch x seq len x "
                        f"processes = {run.device_batch_size} x {run.max_seq_len} x {world} = {per_step}")
    return run.total_batch_size // per_step
