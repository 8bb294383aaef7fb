"""`stylenorm diffusion train`: train the U-Net, and export a run's checkpoint as a model.

Its options (DiffusionTrainConfig) are in diffusion/config.py; the loop is the shared
`stylenorm.training.fit`; what it trains is `stylenorm.diffusion.task.DiffusionTask`, which
also holds the held-out loss, the resume's facts and the model card.
"""

from __future__ import annotations

from pathlib import Path

from stylenorm.atomic import check_writable
from stylenorm.checkpoints import (
    WeightsError,
    export_model,
    latest_checkpoint,
    load_training_state,
    refuse_existing_model,
)
from stylenorm.diffusion.config import DiffusionTrainConfig
from stylenorm.diffusion.task import DiffusionTask
from stylenorm.errors import StylenormError
from stylenorm.training import FitConfig, fit


def train(config: DiffusionTrainConfig, resume: str | Path | None = None, progress: bool = True) -> Path:
    """Train, checkpointing as it goes; returns the path of the final EMA model."""
    out_dir = Path(config.run_dir)
    fit(DiffusionTask(config), FitConfig.from_settings(
        config, run_dir=out_dir, ema_decay=config.ema_decay, eval_every=config.eval_every, resume=resume,
        output=out_dir / "model.safetensors", progress=progress, desc="diffusion",
        resume_command=f"stylenorm diffusion train --resume {out_dir}",
    ))
    return out_dir / "model.safetensors"


def export_checkpoint(checkpoint: str | Path, output: str | Path, half: bool = False, force: bool = False) -> Path:
    """Write the EMA weights of a training checkpoint as a model with its card (e.g. into weights/);
    an existing model at `output` is replaced only with `force`."""
    check_writable(output)
    refuse_existing_model(output, force, fix="another -o")
    try:
        ckpt = latest_checkpoint(checkpoint)
    except WeightsError:  # its message speaks of resuming, which export does not
        raise StylenormError(f"no checkpoint in {checkpoint}; pass the run folder of a diffusion train run "
                             "(runs/..., holding checkpoints/step_*) or one of its checkpoints") from None
    model_sd, ema_sd, state = load_training_state(ckpt)
    if "card" not in state:
        raise StylenormError(f"{ckpt} was written before checkpoints held their model card; continue it with "
                             f"`stylenorm diffusion train --resume {checkpoint} --steps {state['step']}`, which "
                             "writes its model.safetensors without training further")
    return export_model(output, ema_sd if ema_sd is not None else model_sd, state["card"], half)
