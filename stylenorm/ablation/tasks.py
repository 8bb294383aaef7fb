"""The ablation tasks as objects: everything the grid and the report need to know about one task.

A task builds its model for a norm spec, trains and scores one run, names the metrics it
records and the one its claims are judged on, says what its runs picture, and describes its
setup for the report. `TASKS` is the one table of them. The model code of each task is
imported only when a run is built or started, so the report reads results without it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from stylenorm.ablation import claims
from stylenorm.ablation.presets import Preset, get_preset, steps_for
from stylenorm.ablation.records import Grid, Table
from stylenorm.errors import StylenormError


@dataclass(frozen=True)
class Picture:
    """The picture each run leaves, shown side by side for every norm in image_grids.png."""

    file: str
    caption: str
    inches: float  # width of one panel
    cmap: str | None = None


class AblationTask(ABC):
    name: str
    metrics: tuple[str, ...]  # what the tables and plots show, in order; lower is better for each
    quality: str  # the metric the claims are judged on
    bn_measure: str = "loss"  # BatchNorm's two modes are recorded as bn_train_mode_<it> and bn_eval_mode_<it>
    picture: Picture | None = None
    epoch_error_curves: bool = False  # runs record the test error after each epoch (`error_curve`)
    right_norm: tuple[tuple[str, ...], str] | None = None  # (norm kinds, the claim that they suit this task)
    plain_gn_note: bool = False  # remind the reader that plain gn is IN at narrow widths (the model has them)
    # The learning-rate axis (--lrs): a run that finished with its quality at or above this is not
    # stable either; None: the task has no such threshold and no axis.
    stable_below: float | None = None

    @property
    def judged_metrics(self) -> tuple[str, ...]:
        """The metrics a claim on quality must agree on (it is inconclusive where they disagree): the quality,
        and any other metric that measures the same thing rather than a part of it."""
        return (self.quality,)

    def preset(self, name: str) -> Preset:
        return get_preset(self.name, name)

    def input_settings(self, grid: Grid) -> dict[str, Any]:
        """What the grid's inputs and the task's model add to its settings (a rerun with other inputs, or on
        another model, is another experiment)."""
        return {}

    def check_inputs(self, grid: Grid) -> None:
        """Refuse missing inputs before the first run starts (tasks that take none have nothing to check)."""

    @abstractmethod
    def build_model(self, grid: Grid, preset: Preset, norm: str) -> nn.Module:
        """The task's model with `norm` in every normalized layer (built to find specs that do not fit it)."""

    def example_input(self, preset: Preset) -> torch.Tensor | None:
        """Two inputs of the size a run trains on, to find the shapes the norms see (None: the report
        leaves out its table of values per statistic)."""
        return None

    @abstractmethod
    def run(self, grid: Grid, preset: Preset, norm: str, batch_size: int, seed: int, run_dir: Path) -> dict[str, Any]:
        """Train and score one run; returns its metrics (and curves) for result.json."""

    @abstractmethod
    def widths(self, preset: Preset) -> set[int]:
        """Channel widths of the model's normalized layers."""

    def lr_axis_label(self, preset: Preset) -> str:
        """What a value of the learning-rate axis is (the preset's `lr`, which the task scales with the batch)."""
        return "the preset's learning rate"

    def budget_line(self, grid: Grid, preset: Preset) -> str:
        steps = ", ".join(f"batch {b}: {steps_for(preset, b)} steps" for b in grid.batch_sizes)
        return (f"- Budget: every run trains on the same {preset.images} images, so steps = {preset.images} / batch size "
                f"({steps}); learning rate = base × sqrt(batch / 8); the data order is a function of the seed, the same "
                "for every norm.")

    @abstractmethod
    def model_line(self, grid: Grid, preset: Preset) -> str:
        """The report's description of the model, the data and how a run is scored."""

    def convergence(self, grid: Grid, table: Table) -> claims.Convergence:
        """Has the budget converged? The training loss has stopped falling (a constant learning rate)."""
        return claims.loss_plateau(grid, table)

    def batch_size_claim(self, grid: Grid, table: Table) -> claims.Claim:
        return claims.by_every_metric(lambda metric: claims.peer_gap_claim(grid, self, table, metric),
                                      self.judged_metrics)


class StyleAblation(AblationTask):
    name = "style"
    metrics = ("heldout_content", "heldout_style", "heldout_loss")
    quality = "heldout_loss"
    picture = Picture("stylized.png", "held-out photos (top) and stylized (bottom)", inches=4.5)
    right_norm = (("in",), "InstanceNorm is the right choice for style transfer")

    def input_settings(self, grid: Grid) -> dict[str, Any]:
        return {"style_image": Path(grid.style_image).name} if grid.style_image else {}

    def check_inputs(self, grid: Grid) -> None:
        for name, value in (("--style-image", grid.style_image), ("--data", grid.data)):
            if not value or not Path(value).exists():
                raise StylenormError(f"{name} {value!r} not found; the style ablation needs a painting (--style-image) "
                                     "and a folder of photos (--data)")
        from stylenorm.style.loss import load_vgg  # the offline / missing-file error, before training

        load_vgg(grid.vgg_weights, "auto", ["relu2_2"])

    def build_model(self, grid: Grid, preset: Preset, norm: str) -> nn.Module:
        from stylenorm.style.net import TransformerNet

        return TransformerNet(norm, 1)

    def example_input(self, preset: Preset) -> torch.Tensor:
        return torch.zeros(2, 3, preset.image_size, preset.image_size)

    def run(self, grid: Grid, preset: Preset, norm: str, batch_size: int, seed: int, run_dir: Path) -> dict[str, Any]:
        from stylenorm.ablation.style_task import run_style

        return run_style(preset, norm, batch_size, seed, run_dir, style_image=str(grid.style_image), data=str(grid.data),
                         vgg_weights=grid.vgg_weights, cpu=grid.cpu, threads=grid.threads)

    def widths(self, preset: Preset) -> set[int]:
        return {32, 64, 128}  # TransformerNet's, whatever the preset

    def model_line(self, grid: Grid, preset: Preset) -> str:
        return (f"Model: TransformerNet (Johnson et al.) trained on {Path(str(grid.style_image)).name} at "
                f"{preset.image_size}² crops; {preset.holdout} photos of the content folder held out (never trained on), "
                f"{preset.eval_photos} of them scored. Held-out loss = content + {preset.style_weight} × style "
                "(the training weights, no TV term).")


class DiffusionAblation(AblationTask):
    name = "diffusion"
    metrics = ("heldout_loss", "fid")
    quality = "heldout_loss"
    judged_metrics = ("heldout_loss", "fid")  # how well it denoises, and how its samples look  # type: ignore[assignment]
    picture = Picture("samples.png", "generated digits", inches=3.2, cmap="gray")
    right_norm = (("gn",), "GroupNorm is the right choice for the diffusion U-Net")
    plain_gn_note = True  # the U-Net's first level is 16-32 channels wide

    def build_model(self, grid: Grid, preset: Preset, norm: str) -> nn.Module:
        from stylenorm.ablation.diffusion_task import train_config
        from stylenorm.diffusion.unet import UNet

        return UNet(train_config(preset, norm, max(grid.batch_sizes), 0, Path("."), True, None).unet_config(10))

    def run(self, grid: Grid, preset: Preset, norm: str, batch_size: int, seed: int, run_dir: Path) -> dict[str, Any]:
        from stylenorm.ablation.diffusion_task import run_diffusion

        return run_diffusion(preset, norm, batch_size, seed, run_dir, cpu=grid.cpu, threads=grid.threads)

    def widths(self, preset: Preset) -> set[int]:
        return {preset.base_channels * m for m in (1, *preset.channel_mults)}

    def convergence(self, grid: Grid, table: Table) -> claims.Convergence:
        """The training loss has stopped falling, and the samples are digits: at every batch size the best
        norm's Fréchet distance is within DIGITS_FACTOR of real digits' (a model that does not draw digits
        yet says nothing about which norm draws them best)."""
        from stylenorm.ablation.diffusion_task import DIGITS_FACTOR, fid_scale

        plateau = super().convergence(grid, table)
        real = fid_scale(self.preset(grid.preset))["real digits"]
        best = {bs: min(fids) for bs in grid.batch_sizes
                if (fids := [f for n in grid.norms if (f := table.mean(n, bs, "fid")) is not None])}
        digits = bool(best) and all(f <= DIGITS_FACTOR * real for f in best.values())
        evidence = (f"{plateau.evidence}; the best norm's Fréchet distance at each batch size: "
                    + ", ".join(f"batch {bs} {f:.0f}" for bs, f in best.items())
                    + f" (digits: at most {DIGITS_FACTOR:g} × real digits' {real:.0f})")
        return claims.Convergence(plateau.converged and digits, evidence)

    def model_line(self, grid: Grid, preset: Preset) -> str:
        from stylenorm.ablation.diffusion_task import fid_scale

        return ("Model: the stylenorm diffusion U-Net (FiLM after every norm), class-conditional, on the bundled MNIST "
                f"subset; {preset.holdout} digits held out. Held-out loss: the EMA model's denoising loss averaged over "
                f"{preset.eval_timesteps} evenly spaced time steps with fixed noise. Fréchet distance: {preset.fid_samples} "
                f"samples ({preset.sampler}, {preset.sample_steps} steps, guidance {preset.guidance:g}) against the held-out "
                f"digits in the 128-d features of the shipped "
                "MNIST classifier (weights/mnist_classifier.safetensors); for scale, "
                + ", ".join(f"{k} score {v:.0f}" for k, v in fid_scale(preset).items()) + ".")


class ClassificationAblation(AblationTask):
    """The GroupNorm paper's own experiment (Wu & He 2018, Figure 1) at MNIST scale."""

    name = "classification"
    metrics = ("test_error",)
    quality = "test_error"
    bn_measure = "error"
    epoch_error_curves = True
    stable_below = 0.5  # half the test digits wrong: far from chance (90 %) and from what a learning run reaches

    def build_model(self, grid: Grid, preset: Preset, norm: str) -> nn.Module:
        from stylenorm.ablation.classification_task import ResNetClassifier

        return ResNetClassifier(norm, preset.width)

    def example_input(self, preset: Preset) -> torch.Tensor:
        from stylenorm.ablation.classification_task import IMAGE_SIZE

        return torch.zeros(2, 1, IMAGE_SIZE, IMAGE_SIZE)

    def run(self, grid: Grid, preset: Preset, norm: str, batch_size: int, seed: int, run_dir: Path) -> dict[str, Any]:
        from stylenorm.ablation.classification_task import run_classification

        return run_classification(preset, norm, batch_size, seed, run_dir, threads=grid.threads)

    def input_settings(self, grid: Grid) -> dict[str, Any]:
        from stylenorm.ablation.classification_task import map_sizes

        return {"feature_maps": map_sizes()}  # runs on the earlier model (down to 1 x 1 px) are not resumed

    def widths(self, preset: Preset) -> set[int]:
        from stylenorm.ablation.classification_task import model_widths

        return model_widths(preset)

    def lr_axis_label(self, preset: Preset) -> str:
        return f"learning rate at batch {preset.reference_batch}"

    def convergence(self, grid: Grid, table: Table) -> claims.Convergence:
        """Every norm's test error has stopped moving at the largest batch (the fewest steps): its change
        over the last epoch, mean over seeds, within the flat margin. (The training loss keeps falling
        while the cosine schedule anneals, so it cannot tell.)"""
        bs = max(grid.batch_sizes)
        changes = {}
        for norm in grid.norms:
            steps = [c[-1][1] - c[-2][1] for r in table.ok if r["norm"] == norm and r["batch_size"] == bs
                     and len(c := r.get("error_curve") or []) >= 2]
            if steps:
                changes[norm] = sum(steps) / len(steps)
        if not changes:
            return claims.Convergence(False, f"no run at batch {bs} recorded its test error after each epoch")
        moving = [n for n, c in changes.items() if abs(c) > claims.FLAT_MARGIN]
        evidence = (f"the test error's change over the last epoch at batch {bs}, mean over seeds: "
                    + ", ".join(f"{n} {claims.fmt_difference('test_error', c)}" for n, c in changes.items())
                    + f" (plateaued: within ±{claims.FLAT_MARGIN:.1%})"
                    + (f"; still moving: {', '.join(moving)}" if moving else ""))
        return claims.Convergence(not moving, evidence)

    def budget_line(self, grid: Grid, preset: Preset) -> str:
        steps = ", ".join(f"batch {b}: {steps_for(preset, b)} steps" for b in grid.batch_sizes)
        base = (f"{preset.lr}" if not grid.lrs else
                f"the {self.lr_axis_label(preset)}, one of {', '.join(f'{lr:g}' for lr in grid.lrs)},")
        return (f"- Budget: every run trains {preset.epochs} epochs of the same {preset.images} images, so steps = "
                f"{preset.epochs} × {preset.images} / batch size ({steps}); learning rate = {base} × batch / "
                f"{preset.reference_batch} (the paper's linear scaling rule); the data order is a function of the seed, "
                "the same for every norm.")

    def model_line(self, grid: Grid, preset: Preset) -> str:
        from stylenorm.ablation.classification_task import IMAGE_SIZE, STAGE_STRIDES, map_sizes

        widths, (stem, *stages) = sorted(self.widths(preset)), map_sizes()
        return (f"Model: a residual CNN with ResNet-50's stem (a stride-2 convolution and a stride-2 max-pool, "
                f"{IMAGE_SIZE} → {stem} px), then {len(STAGE_STRIDES)} stages of one basic block each, widths "
                f"{', '.join(map(str, widths))} at {', '.join(map(str, stages[:-1]))} and {stages[-1]} px (no map "
                f"below {min(stages)} × {min(stages)}, so no statistic over a handful of values: the table below); the norm after "
                "every convolution, shortcut projections included) on the bundled MNIST "
                f"subset, {preset.test_images} digits held out as the test split (the same for every run). SGD with "
                f"Nesterov momentum 0.9, weight decay {preset.weight_decay}, a linear warm-up over {preset.warmup_epochs} "
                "epochs, then cosine decay. Test error: eval mode (BatchNorm with its running averages), after the last "
                "epoch. The GroupNorm paper trains ResNet-50 on ImageNet; this is its protocol at a size a CPU trains "
                "in minutes, so expect its shape, not its numbers.")

    def batch_size_claim(self, grid: Grid, table: Table) -> claims.Claim:
        return claims.figure1_claim(grid, table)


# The report lists the tasks' own claims (right_norm) in this order.
TASKS: dict[str, AblationTask] = {task.name: task for task in (StyleAblation(), DiffusionAblation(), ClassificationAblation())}


def get_task(name: str) -> AblationTask:
    if name not in TASKS:
        raise StylenormError(f"unknown ablation task {name!r}; use {', '.join(TASKS)}")
    return TASKS[name]
