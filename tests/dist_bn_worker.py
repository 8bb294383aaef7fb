"""One process of the two-process CPU data-parallel BatchNorm check (tests/test_distributed.py).

Launched by torchrun; each process takes its half of a fixed batch, trains a tiny
conv net whose BatchNorm layers come from `make_norm("bn")` through accelerate
(DDP over gloo), and records what the test compares against one process that
trains the same net on the whole batch:

- each BN layer's input and output, and the parameters, on every step (to recompute
  the statistics each process normalised with),
- the gradients after the backward pass (DDP-averaged), the running statistics,
- the final weights.

The test imports `build_model`, `full_batch`, `train` from here for its reference
run, so both sides share one definition of the experiment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import nn

from stylenorm.norms import make_norm

STEPS = 3
BATCH = 8  # global batch; each of the two processes takes 4
LR = 0.1


def build_model() -> nn.Module:
    torch.manual_seed(1234)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        make_norm("bn", 6),
        nn.ReLU(),
        nn.Conv2d(6, 4, 3, padding=1),
        make_norm("bn", 4),
    )


def full_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(99)
    # Per-sample offsets make the two halves' statistics differ, so unsynchronised
    # BatchNorm would give measurably different results.
    x = torch.randn(BATCH, 3, 5, 5, generator=generator) + torch.linspace(-2, 2, BATCH).view(-1, 1, 1, 1)
    target = torch.randn(BATCH, 4, 5, 5, generator=generator)
    return x, target


def bn_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if type(m).__name__ == "BatchNorm"}


def train(model: nn.Module, x: torch.Tensor, target: torch.Tensor, optimizer, backward=None) -> dict[str, torch.Tensor]:
    """Run STEPS SGD steps on (x, target); return every recorded tensor by name.

    The loss is the mean over this process's samples; DDP averages gradients over
    the processes, so with equal halves both sides minimise the same global mean.
    """
    records: dict[str, torch.Tensor] = {}
    step_box = [0]

    def hook(name):
        def record(module, inputs, output):
            records[f"step{step_box[0]}/{name}/input"] = inputs[0].detach().clone()
            records[f"step{step_box[0]}/{name}/output"] = output.detach().clone()
        return record

    handles = [m.register_forward_hook(hook(_plain(n))) for n, m in bn_layers(model).items()]
    for step in range(STEPS):
        step_box[0] = step
        for name, p in model.named_parameters():  # the γ/β each step normalises with
            records[f"step{step}/param/{_plain(name)}"] = p.detach().clone()
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), target)
        (backward or torch.Tensor.backward)(loss)
        for name, p in model.named_parameters():
            records[f"step{step}/grad/{_plain(name)}"] = p.grad.detach().clone()
        optimizer.step()
        for name, buf in model.named_buffers():
            records[f"step{step}/buffer/{_plain(name)}"] = buf.detach().clone()
    for handle in handles:
        handle.remove()
    for name, p in model.named_parameters():
        records[f"final/{_plain(name)}"] = p.detach().clone()
    return records


def _plain(name: str) -> str:
    """Parameter names without DDP's `module.` prefix, so both runs use the same keys."""
    return name.removeprefix("module.")


def make_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)


def main(out_dir: Path) -> None:
    from accelerate import Accelerator
    from accelerate.utils import DistributedType
    from safetensors.torch import save_file

    from stylenorm.training import sync_batchnorm_for

    torch.set_num_threads(1)
    accelerator = Accelerator(cpu=True)
    rank, world = accelerator.process_index, accelerator.num_processes
    model = sync_batchnorm_for(build_model(), accelerator)  # CPU: keeps our BatchNorm
    optimizer = make_optimizer(model)
    model, optimizer = accelerator.prepare(model, optimizer)
    x, target = full_batch()
    half = BATCH // world
    mine = slice(rank * half, (rank + 1) * half)
    records = train(model, x[mine], target[mine], optimizer, backward=accelerator.backward)
    save_file({k: v.contiguous() for k, v in records.items()}, str(out_dir / f"rank{rank}.safetensors"))
    info = {
        "rank": rank,
        "world_size": world,
        "distributed_type": str(accelerator.distributed_type),
        "is_multi_cpu": accelerator.distributed_type == DistributedType.MULTI_CPU,
        "backend": torch.distributed.get_backend() if torch.distributed.is_initialized() else None,
        "ddp": type(model).__name__,
        "bn_classes": sorted({type(m).__name__ for m in model.modules() if "Norm" in type(m).__name__}),
    }
    (out_dir / f"rank{rank}.json").write_text(json.dumps(info))
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
