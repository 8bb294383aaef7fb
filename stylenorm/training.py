"""What both trainers share: accelerator set-up, EMA, RNG capture, data order, checks."""

from __future__ import annotations

import copy
import random
from typing import Any

import torch
from torch import nn

from stylenorm.errors import StylenormError


class NonFiniteLossError(StylenormError, RuntimeError):
    """The loss became NaN or inf; the run stops with the last good checkpoint intact."""


def make_accelerator(mixed_precision: str = "no", gradient_accumulation_steps: int = 1, cpu: bool = False):
    """An accelerate.Accelerator for CPU, one GPU, or `accelerate launch` across many."""
    from accelerate import Accelerator

    if mixed_precision not in ("no", "fp16", "bf16"):
        raise StylenormError(f"mixed precision {mixed_precision!r} is not one of no, fp16, bf16")
    if mixed_precision == "fp16" and (cpu or not torch.cuda.is_available()):
        raise StylenormError("fp16 mixed precision needs a GPU; use bf16 on CPU or 'no'")
    from accelerate.state import AcceleratorState, GradientState

    # accelerate keeps its options in process-wide singletons and refuses different ones
    # later; several trainings in one process (an ablation grid, the tests) each bring
    # their own. The process group (PartialState) stays as it is.
    AcceleratorState._reset_state()
    GradientState._reset_state()
    return Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=gradient_accumulation_steps,
        cpu=cpu,
    )


def sync_batchnorm_for(model: nn.Module, accelerator) -> nn.Module:
    """Use torch.nn.SyncBatchNorm for BatchNorm layers in multi-GPU training.

    On CPU processes our BatchNorm already reduces its statistics through
    torch.distributed (torch's SyncBatchNorm only runs on CUDA), so only GPU runs
    are converted.
    """
    if accelerator.num_processes > 1 and accelerator.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


class EMA:
    """Exponential moving average of a model's parameters and buffers.

    Warm-up follows the usual (1 + n) / (10 + n) schedule so that early averages
    are not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        self.decay = decay
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        decay = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        own = self.model.state_dict()
        for name, value in model.state_dict().items():
            target = own[name]
            if target.dtype.is_floating_point:
                target.lerp_(value.detach().to(target.dtype), 1 - decay)
            else:
                target.copy_(value)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        self.model.load_state_dict(state)
        self.num_updates = num_updates


def capture_rng() -> dict[str, Any]:
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def batch_indices(num_items: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """The dataset indices of global batch `step`: a fresh seeded shuffle each epoch.

    Stateless, so resuming at step k sees exactly the batches an uninterrupted
    run would have seen; the same seed gives the same data order everywhere.
    """
    if num_items < batch_size:
        raise StylenormError(f"the dataset has {num_items} items, fewer than one batch of {batch_size}")
    per_epoch = num_items // batch_size
    epoch, position = divmod(step, per_epoch)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(num_items, generator=generator)
    return order[position * batch_size:(position + 1) * batch_size]


def check_finite(loss: torch.Tensor, step: int) -> None:
    if not torch.isfinite(loss).all():
        raise NonFiniteLossError(
            f"the loss became {loss.item()} at step {step}; lower the learning rate or enable "
            "gradient clipping; the last checkpoint was left intact"
        )
