"""Memory and speed of training runs.

Memory: on CUDA, the allocator's peak over a training step, above what was allocated
before. The CPU allocator keeps no statistics (and a process's resident size does not
shrink when tensors are freed, so it cannot be reset between runs); there we count the
bytes of the tensors autograd saves for the backward pass: the activation memory, which
is what grows with the batch size and differs between norms.
"""

from __future__ import annotations

from typing import Callable

import torch


def training_memory_bytes(forward: Callable[[], torch.Tensor], device: torch.device) -> int:
    """Memory of one training step: `forward` returns the loss, backward is run here."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        forward().backward()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()  # views of one buffer count once
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = forward()
    loss.backward()
    return sum(storages.values())


def speed_from_history(history: list[dict[str, float]], batch_size: int) -> dict[str, float]:
    """Training images/s from the per-step times, leaving out the first (warm-up) steps."""
    timed = history[3:] if len(history) > 6 else history
    seconds = sum(h["seconds"] for h in timed)
    return {"images_per_s": batch_size * len(timed) / seconds if seconds > 0 else float("nan")}


def loss_curve(history: list[dict[str, float]], batch_size: int, key: str, points: int = 100) -> list[list[float]]:
    """[images seen, mean loss] over `points` equal slices of the run."""
    if not history:
        return []
    size = max(1, len(history) // points)
    curve = []
    for start in range(0, len(history), size):
        chunk = history[start:start + size]
        curve.append([chunk[-1]["step"] * batch_size, sum(h[key] for h in chunk) / len(chunk)])
    return curve


def megabytes(value: int | None) -> float | None:
    return None if value is None else value / 2**20
