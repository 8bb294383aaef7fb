"""Model weights as safetensors plus a JSON model card; training state for --resume.

A model is two files: `<name>.safetensors` (the tensors; the card is repeated in
its metadata under "card") and `<name>.json` (the card, for people). Every card
starts with one header (`model_card`); `read_card` is the one reader and
`export_model` the one writer of trained weights (with the one float16 policy). Training
state is a directory holding the model, the EMA copy, and `state.pt` with the
optimizer, scheduler, RNG states and step; `state.pt` holds only tensors and plain
Python values and is read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stylenorm.atomic import atomic_directory, atomic_output
from stylenorm.config import migrate
from stylenorm.errors import StylenormError

CARD_KEY = "card"


class WeightsError(StylenormError, ValueError):
    """A weights file that cannot be used (missing, not safetensors, wrong architecture)."""


def card_path(weights_path: str | os.PathLike) -> Path:
    return Path(weights_path).with_suffix(".json")


def utc_now() -> str:
    """The one date format of cards: UTC, ISO 8601, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def model_card(*, kind: str, architecture: str, model_config: dict[str, Any], norm: str, data: Any,
               training: dict[str, Any], **facts: Any) -> dict[str, Any]:
    """The one card layout: a header every trained model has, then the facts of its kind.

    kind: style, diffusion, classifier, classification; architecture and model_config: the
    class and the constructor options that rebuild it; norm: the norm spec of its layers;
    data: what it was trained on; training: how (steps, seed, lr, device, ...).
    """
    header = {"kind": kind, "architecture": architecture, "model_config": model_config, "norm": norm,
              "data": data, "training": training, "date": utc_now()}
    clash = sorted(header.keys() & facts.keys())
    if clash:
        raise ValueError(f"card facts {clash} are header fields; pass them as such")
    return {**header, **facts}


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


def export_model(path: str | os.PathLike, state_dict: dict[str, torch.Tensor], card: dict[str, Any],
                 half: bool = False) -> Path:
    """Trained weights as shipped: floating-point tensors as float16 when `half` (half the size,
    the same pictures), integer buffers as they are; the card records the dtype."""
    tensors = {k: (v.half() if half and v.dtype.is_floating_point else v) for k, v in state_dict.items()}
    return save_model(path, tensors, {**card, "dtype": "float16" if half else "float32"})


def _looks_like_pickle(head: bytes) -> bool:
    # torch.save writes a zip archive (PK) or, in the legacy format, a raw pickle (0x80).
    # A safetensors file starts with its 8-byte header length, whose first byte can be
    # anything (0x80 included), then the JSON header's "{": that rules a pickle out.
    if head[8:9] == b"{":
        return False
    return head.startswith(b"PK") or head[:1] == b"\x80"


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """A weights file's card: the copy in its safetensors metadata (written with the tensors, so
    it describes them), else the JSON beside it; {} when there is neither (load_model explains an
    unreadable weights file), and a WeightsError for a JSON card that is not valid."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if CARD_KEY in metadata:
            return json.loads(metadata[CARD_KEY])
    except (SafetensorError, OSError, ValueError):
        pass
    try:
        text = card_path(path).read_text()
    except OSError:
        return {}
    try:
        card = json.loads(text)
    except ValueError as exc:
        raise WeightsError(f"the model card {card_path(path)} is not valid JSON ({exc}); restore it from the "
                           "weights' source, or delete it if the weights carry their card in their metadata") from None
    if not isinstance(card, dict):
        raise WeightsError(f"the model card {card_path(path)} is not a JSON object; restore it from the weights' source")
    return card


def first_nonfinite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or inf, or None."""
    return next((k for k, v in tensors.items() if v.dtype.is_floating_point and not torch.isfinite(v).all()), None)


def load_model(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a safetensors model and its card (read_card). Never unpickles anything."""
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
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc})") from None
    broken = first_nonfinite(tensors)
    if broken is not None:  # NaN weights give black or NaN pictures without an error
        raise WeightsError(f"{path} holds NaN or infinite weights (e.g. {broken}); the training diverged: "
                           "use an earlier checkpoint or retrain with a lower learning rate")
    return tensors, read_card(path)


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
    ema_file = directory / "ema.safetensors"
    try:
        model = load_file(str(directory / "model.safetensors"))
        ema = load_file(str(ema_file)) if ema_file.is_file() else None
        state = torch.load(directory / "state.pt", weights_only=True, map_location="cpu")
    except Exception as exc:  # truncated files, a pickle that runs code: torch and safetensors raise many types
        if isinstance(exc, pickle.UnpicklingError):  # what torch.load(weights_only=True) refuses
            detail = "state.pt holds Python objects besides tensors and plain values, which stylenorm never unpickles"
        else:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"the checkpoint {directory} cannot be read ({detail}); resume from an earlier "
                           f"checkpoint in {directory.parent} or start a new run") from None
    if not isinstance(state, dict) or "step" not in state:
        raise WeightsError(f"the checkpoint {directory} has no training state in state.pt; resume from an earlier checkpoint")
    return model, ema, state


def checkpoint_dir(run_dir: str | os.PathLike, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}"


def prune_checkpoints(run_dir: str | os.PathLike, keep: int) -> None:
    """Keep the newest `keep` (at least one) checkpoints of a run."""
    for old in sorted((Path(run_dir) / "checkpoints").glob("step_*"))[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)


def saved_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """A run's complete checkpoints, oldest first (a write in progress is a hidden temporary folder)."""
    folder = Path(run_dir) / "checkpoints"
    return [c for c in sorted(folder.glob("step_*")) if (c / "state.pt").is_file()] if folder.is_dir() else []


def run_directory(run_or_checkpoint: str | os.PathLike) -> Path:
    """The run that --resume names, so a copied or moved run continues where it is now: the run
    directory itself, or the run holding the checkpoint directory (RUN/checkpoints/step_N)."""
    path = Path(run_or_checkpoint)
    if (path / "state.pt").is_file():
        return path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path


def latest_checkpoint(run_or_checkpoint: str | os.PathLike) -> Path:
    """Resolve --resume: a checkpoint directory, or a run directory holding checkpoints/step_*."""
    path = Path(run_or_checkpoint)
    if (path / "state.pt").is_file():
        return path
    if not path.exists():
        raise WeightsError(f"{path} does not exist; pass the run folder a training wrote its checkpoints to "
                           "(e.g. runs/style/NAME), or one of its checkpoints/step_*")
    if not (path / "checkpoints").is_dir():
        raise WeightsError(f"{path} is not a run folder (no checkpoints/step_* in it); pass the run folder a "
                           "training wrote its checkpoints to (e.g. runs/style/NAME)")
    candidates = saved_checkpoints(path)
    if not candidates:
        raise WeightsError(f"the run folder {path} holds no complete checkpoint yet (the first is written after "
                           "--checkpoint-every steps); start the run again")
    return candidates[-1]


def run_options(run_or_checkpoint: str | os.PathLike) -> dict[str, Any]:
    """The options a run was started with (saved in its latest checkpoint), so `--resume RUN` alone continues it."""
    _, _, state = load_training_state(latest_checkpoint(run_or_checkpoint))
    return migrate(state.get("config", {}))


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


def refuse_existing_model(path: str | os.PathLike, force: bool = False,
                          fix: str = "-o FILE / another --name") -> None:
    """A trained model is never replaced silently: refuse, before any work, a model file (or its card)
    that already exists, unless `force` (`fix`: the other ways out the command has)."""
    weights = Path(path).with_suffix(".safetensors")  # what save_model writes
    existing = next((p for p in (weights, card_path(weights)) if p.exists()), None)
    if existing is not None and not force:
        raise StylenormError(f"{existing} already exists; pass --force to replace it or {fix}")


def shipped_weights(name: str) -> Path:
    """The path of a model shipped in weights/ (name without extension)."""
    return WEIGHTS_DIR / f"{name}.safetensors"
