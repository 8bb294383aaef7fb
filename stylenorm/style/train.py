"""`stylenorm train-style`: train a (multi-)style TransformerNet with the VGG16 perceptual loss.

The options (StyleTrainConfig) are in style/config.py, the content photos, paintings and crops in
style/data.py; the loop is the shared `stylenorm.training.fit`, and what it trains is
`stylenorm.style.task.StyleTask` (with the add-style network and the model card's facts).
Here: the options' check, the command itself and exporting a checkpoint. Runs through accelerate
(CPU, one GPU with bf16/fp16, or several with `accelerate launch`); `--resume` continues exactly.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from stylenorm.checkpoints import (
    export_model,
    latest_checkpoint,
    load_training_state,
    refuse_existing_model,
    refuse_shipped_output,
    run_directory,
    user_weights_dir,
)
from stylenorm.config import migrate
from stylenorm.errors import StylenormError
from stylenorm.style.config import StyleTrainConfig, check_vgg_format
from stylenorm.style.data import style_name
from stylenorm.style.loss_recipes import loss_recipe
from stylenorm.style.task import StyleTask
from stylenorm.training import FitConfig, fit


def check_config(cfg: StyleTrainConfig) -> None:
    """Every option's range, before anything loads: one error naming the option."""
    if isinstance(cfg.styles, str):
        raise StylenormError(f"styles must be a list of paintings, got the string {cfg.styles!r}; write `styles: [{cfg.styles}]`")
    at_least = {"steps": (cfg.steps, 1), "batch_size": (cfg.batch_size, 1), "grad_accum": (cfg.grad_accum, 1),
                "image_size": (cfg.image_size, 16), "style_size": (cfg.style_size, 16),
                **({"photo_size": (cfg.photo_size, cfg.image_size)} if cfg.photo_size is not None else {})}
    for name, (value, low) in at_least.items():
        if value < low:
            raise StylenormError(f"--{name.replace('_', '-')} {value} is below {low}; pass at least {low}")
    if not cfg.lr > 0:
        raise StylenormError(f"--lr {cfg.lr} must be positive (e.g. 1e-3)")
    loss_recipe(cfg.loss)  # an unknown --loss names the valid ones
    check_vgg_format(cfg.vgg_format)  # also when --vgg-weights is not given and the format is not used
    for name in ("content_weight", "style_weight", "tv_weight", "layout_weight"):
        value = getattr(cfg, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise StylenormError(f"--{name.replace('_', '-')} {value} is not a finite number >= 0; loss weights are >= 0")


def train_style(cfg: StyleTrainConfig, progress: bool = True) -> Path:
    """Train and write `<output>.safetensors` + card; return the weights path."""
    check_config(cfg)
    if not cfg.styles:
        raise StylenormError("no style image given; pass --style PAINTING.jpg (repeat for several styles)")
    if not cfg.data:
        raise StylenormError("no content photos given; pass --data FOLDER")
    names = [style_name(s) for s in cfg.styles]
    if len(set(names)) != len(names):
        raise StylenormError(f"style names must differ, got {names}; rename the style image files")
    for s in cfg.styles:
        if not Path(s).is_file():
            raise StylenormError(f"style image not found: {s}; pass an existing image to --style")
    output = Path(cfg.output) if cfg.output else user_weights_dir() / f"{cfg.name}.safetensors"
    refuse_shipped_output(output)
    # a second run of one --name replaced the first model without a word; a --resume continues
    # the model it writes, so it is no replacement
    refuse_existing_model(output, force=cfg.force or cfg.resume is not None)
    if cfg.run_dir:
        run_dir = Path(cfg.run_dir)
    elif cfg.resume:  # where the run is now (it may have been copied or moved), not runs/style/<name>
        run_dir = run_directory(cfg.resume)
    else:
        run_dir = Path("runs") / "style" / cfg.name
    fit(StyleTask(cfg), FitConfig.from_settings(
        cfg, run_dir=run_dir, resume=cfg.resume, output=output, half=cfg.half, progress=progress,
        desc=f"train-style {cfg.name}",
        resume_command=(f"stylenorm add-style {' '.join(cfg.styles)} --name {cfg.name} --resume (and the options "
                        "given before)") if cfg.add_to else f"stylenorm train-style --resume {run_dir}",
    ))
    return output


def export_checkpoint(checkpoint: str | os.PathLike, output: str | os.PathLike,
                      extra: dict[str, Any] | None = None) -> Path:
    """Turn a training checkpoint into shipped weights + card (for a run stopped before its last step)."""
    model_sd, _, state = load_training_state(latest_checkpoint(checkpoint))
    cfg = StyleTrainConfig(**{k: v for k, v in migrate(state.get("config", {})).items()
                              if k in StyleTrainConfig.__dataclass_fields__})
    if "card" not in state:
        raise StylenormError(f"{checkpoint} was written before checkpoints held their model card; "
                             "resume it for one step with this version to export it")
    return export_model(output, model_sd, {**state["card"], **(extra or {})}, cfg.half)
