"""Model weights as safetensors plus a JSON model card; training state for --resume.

A model is two files: `<name>.safetensors` (the tensors; the card is repeated in
its metadata under "card") and `<name>.json` (the card, for people). Training
state is a directory holding the model, the EMA copy, and `state.pt` with the
optimizer, scheduler, RNG states and step; `state.pt` holds only tensors and plain
Python values and is read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stylenorm.errors import StylenormError
from stylenorm.atomic import atomic_directory, atomic_output

CARD_KEY = "card"


class WeightsError(StylenormError, ValueError):
    """A weights file that cannot be used (missing, not safetensors, wrong architecture)."""


def card_path(weights_path: str | os.PathLike) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_model(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], card: dict[str, Any]) -> Path:
    """Write `path` (.safetensors) and its JSON card beside it, each atomically."""
    path = Path(path).with_suffix(".safetensors")
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    card_text = json.dumps(card, indent=2, sort_keys=True, default=str)
    with atomic_output(path) as tmp:
        save_file(tensors, str(tmp), metadata={CARD_KEY: card_text})
    with atomic_output(card_path(path)) as tmp:
        tmp.write_text(card_text + "\n")
    return path


def _looks_like_pickle(head: bytes) -> bool:
    # torch.save writes a zip archive (PK) or, in the legacy format, a raw pickle (0x80).
    # A safetensors file starts with its 8-byte header length, whose first byte can be
    # anything (0x80 included), then the JSON header's "{": that rules a pickle out.
    if head[8:9] == b"{":
        return False
    return head.startswith(b"PK") or head[:1] == b"\x80"


def load_model(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors model and its card. Never unpickles anything."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if _looks_like_pickle(head):
        raise WeightsError(
            f"{path} is a pickle (torch.save) file; stylenorm only loads .safetensors weights, "
            "which cannot run code; convert it with safetensors.torch.save_file"
        )
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc})") from None
    card: dict[str, Any] = {}
    if CARD_KEY in metadata:
        card = json.loads(metadata[CARD_KEY])
    elif card_path(path).is_file():
        card = json.loads(card_path(path).read_text())
    return tensors, card


def load_into(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str | os.PathLike) -> None:
    """Load weights into a model, explaining an architecture mismatch in one line."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [k for k in own.keys() & state_dict.keys() if own[k].shape != state_dict[k].shape]
    if missing or unexpected or mismatched:
        detail = (
            f"{len(missing)} missing (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]}), {len(mismatched)} with other shapes (e.g. {mismatched[:2]})"
        )
        raise WeightsError(
            f"{source} holds weights for a different architecture than {type(model).__name__}: {detail}"
        )
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state_dict.items()})


def save_training_state(directory: str | os.PathLike, *, model: dict[str, torch.Tensor],
                        ema: dict[str, torch.Tensor] | None, state: dict[str, Any]) -> Path:
    """Atomically write a resumable checkpoint directory."""
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.items()}, str(tmp / "model.safetensors"))
        if ema is not None:
            save_file({k: v.detach().contiguous().cpu() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
        torch.save(state, tmp / "state.pt")
    return directory


def load_training_state(directory: str | os.PathLike) -> tuple[dict, dict | None, dict[str, Any]]:
    directory = Path(directory)
    if not (directory / "state.pt").is_file():
        raise WeightsError(f"{directory} is not a training checkpoint (no state.pt); pass a checkpoint directory or a run directory")
    model = load_file(str(directory / "model.safetensors"))
    ema_file = directory / "ema.safetensors"
    ema = load_file(str(ema_file)) if ema_file.is_file() else None
    state = torch.load(directory / "state.pt", weights_only=True, map_location="cpu")
    return model, ema, state


def latest_checkpoint(run_or_checkpoint: str | os.PathLike) -> Path:
    """Resolve --resume: a checkpoint directory, or a run directory holding checkpoints/step_*."""
    path = Path(run_or_checkpoint)
    if (path / "state.pt").is_file():
        return path
    candidates = sorted((path / "checkpoints").glob("step_*")) if path.is_dir() else []
    candidates = [c for c in candidates if (c / "state.pt").is_file()]
    if not candidates:
        raise WeightsError(f"no checkpoint to resume from in {path}; pass a run directory with checkpoints/step_*")
    return candidates[-1]


# stylenorm/weights links to the top-level weights/ in a clone and is a folder in the wheel
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


def user_weights_dir() -> Path:
    """Where weights a user trains go by default, never inside the installed package:
    $STYLENORM_HOME/weights, else $XDG_DATA_HOME/stylenorm/weights (~/.local/share/stylenorm/weights)."""
    home = os.environ.get("STYLENORM_HOME")
    if home:
        return Path(home).expanduser() / "weights"
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "stylenorm" / "weights"


def refuse_shipped_output(path: str | os.PathLike) -> None:
    """Training never writes over a shipped model: an output inside WEIGHTS_DIR is refused."""
    target = Path(path).expanduser().resolve()
    if target.parent == WEIGHTS_DIR.resolve():
        raise StylenormError(f"{path} is a shipped model's place ({WEIGHTS_DIR}); write your weights elsewhere "
                             f"with -o, or leave -o out to write into {user_weights_dir()}")


def shipped_weights(name: str) -> Path:
    """The path of a model shipped in weights/ (name without extension)."""
    return WEIGHTS_DIR / f"{name}.safetensors"
