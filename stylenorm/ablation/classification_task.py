"""One classification ablation run: the GroupNorm paper's own experiment, at MNIST scale.

Wu & He (2018), Figure 1: ResNet-50 on ImageNet, error against images per GPU; BatchNorm's
error rises as the batch shrinks (23.6 % at 32 to 34.7 % at 2) while GroupNorm's stays flat
(24.1-24.2 %). Here a small residual CNN with a norm after every convolution is trained on
the bundled MNIST subset under the paper's protocol: the same number of epochs (so the same
images) at every batch size, the learning rate scaled linearly with the batch size (SGD with
momentum, a linear warm-up, then cosine decay), and a fixed held-out test split.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylenorm.ablation.presets import ClassificationPreset, lr_for, steps_for
from stylenorm.diffusion.data import ImageData, load_images, split_holdout
from stylenorm.errors import StylenormError
from stylenorm.norms import make_norm, norm_kind
from stylenorm.training import FitConfig, TrainingTask, fit

TEST_SEED = 0  # one test split for every run and seed
# oneDNN's convolutions cost more to set up than they save on these 4-14 px maps up to batch 8; from
# batch 16 they are the faster. One SGD step (mean of 200), one thread of a 2-core AMD EPYC, ms with and
# without oneDNN, gn4 / bn: batch 2 2.78 and 1.68 / 3.48 and 2.01; batch 4 3.28 and 2.84 / 3.83 and 3.26;
# batch 8 4.13 and 3.64 / 4.09 and 4.42; batch 16 5.65 and 7.40 / 5.22 and 6.85. Scoring the test split in
# batches of 500: 0.09 s with oneDNN, 0.49 s without (the earlier model).
ONEDNN_FROM_BATCH = 16


@contextlib.contextmanager
def onednn_for(batch_size: int) -> Iterator[None]:
    """oneDNN's convolutions on from ONEDNN_FROM_BATCH images, off below, and as before afterwards.

    The switch alone: mkldnn.flags() would also reset its TF32 and precision flags."""
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = batch_size >= ONEDNN_FROM_BATCH
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before
EVAL_BATCH = 500
# MNIST's pixel mean and standard deviation, in the [-1, 1] range the data loader gives
MNIST_MEAN, MNIST_STD = 0.1307 * 2 - 1, 0.3081 * 2


class BasicBlock(nn.Module):
    """conv-norm-relu-conv-norm plus the shortcut (a 1x1 conv and norm when the shape changes)."""

    def __init__(self, norm: str, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm1 = make_norm(norm, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.norm2 = make_norm(norm, cout)
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), make_norm(norm, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(h)) + self.shortcut(x))


# ResNet-50's stem at 28 px: a stride-2 convolution and a stride-2 max-pool (224 -> 56 px there, 28 -> 7 here);
# then three stages at strides 1, 2, 1 (7, 4 and 4 px). The last stage keeps 4 x 4 rather than halving to 2 x 2
# and 1 x 1: there a norm's statistics were over 1 value (InstanceNorm: always 0) or, for BatchNorm at batch 2,
# 2 values, which says more about the test-bed than about the norms (docs/ablation/README.md).
STEM_STRIDES = (2, 2)  # the convolution's, the max-pool's
STAGE_STRIDES = (1, 2, 1)
IMAGE_SIZE = 28


def map_sizes(image_size: int = IMAGE_SIZE) -> list[int]:
    """The feature maps' side after the stem and after each stage (3x3, padding 1, stride s: ceil(n / s))."""
    size = image_size
    for stride in STEM_STRIDES:
        size = -(-size // stride)
    sizes = [size]
    for stride in STAGE_STRIDES:
        sizes.append(-(-sizes[-1] // stride))
    return sizes


def stage_widths(width: int) -> tuple[int, ...]:
    """Doubling with every stage, as in ResNet: w, 2w, 4w."""
    return tuple(width * 2 ** i for i in range(len(STAGE_STRIDES)))


class ResNetClassifier(nn.Module):
    """ResNet-50's downsampling (a stride-2 convolution, 3x3 here, and a stride-2 max-pool) and three
    stages (map_sizes: 7, 4 and 4 px), one basic block each (stage_widths: w, 2w, 4w), average pool, linear.
    The smallest map is 4 x 4, so every statistic is over at least 16 values at any batch size
    (InstanceNorm's; BatchNorm's at batch 2 over 32)."""

    def __init__(self, norm: str, width: int = 16, num_classes: int = 10) -> None:
        super().__init__()
        widths = stage_widths(width)
        conv_stride, pool_stride = STEM_STRIDES
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, conv_stride, 1, bias=False), make_norm(norm, width), nn.ReLU(),
                                  nn.MaxPool2d(3, pool_stride, 1))
        self.stages = nn.Sequential(*(BasicBlock(norm, cin, cout, stride) for cin, cout, stride
                                      in zip((width, *widths[:-1]), widths, STAGE_STRIDES)))
        self.head = nn.Linear(widths[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Standardised input: with the raw [-1, 1] digits (three quarters of the pixels at -1) the
        # norms without per-channel statistics (ln, gn, rms) and none were still at 60-90 % error
        # after 2 epochs while bn and in were at 4 %; standardised, gn4 and ln reached 16-21 %.
        # (torchvision's He fan-out init with zero-initialised last norm scales was slower still.)
        x = (x - MNIST_MEAN) / MNIST_STD
        return self.head(self.stages(self.stem(x)).mean((2, 3)))


def model_widths(preset: ClassificationPreset) -> set[int]:
    return set(stage_widths(preset.width))


@torch.no_grad()
def test_error(model: nn.Module, held: ImageData, batch_size: int = EVAL_BATCH) -> float:
    wrong = 0
    with onednn_for(batch_size):
        for start in range(0, len(held.images), batch_size):
            x, y = held.images[start:start + batch_size], held.labels[start:start + batch_size]
            if len(x) < batch_size and model.training:
                break  # train-mode BatchNorm: whole batches of the training size only
            wrong += (model(x).argmax(1) != y).sum().item()
    counted = len(held.images) if not model.training else len(held.images) // batch_size * batch_size
    return wrong / counted


def load_split(preset: ClassificationPreset) -> tuple[ImageData, ImageData]:
    data = load_images("mnist5k", IMAGE_SIZE, 1)
    train, held = split_holdout(data, preset.test_images, TEST_SEED)
    if len(train.images) != preset.images:  # the preset's budget (and its steps) assume this split
        raise StylenormError(f"the MNIST subset gave {len(train.images)} training images, the preset expects {preset.images}; "
                             "reinstall stylenorm (stylenorm/data/mnist5k.npz is damaged)")
    return train, held


class ClassificationTask(TrainingTask):
    """One norm at one batch size, under the preset's epochs and linearly scaled learning rate."""

    kind = "classification"

    def __init__(self, preset: ClassificationPreset, norm: str, batch_size: int, seed: int, lr_scale: float = 1.0) -> None:
        self.preset, self.norm, self.seed = preset, norm, seed
        self._batch_size = batch_size
        self.lr = lr_for(preset, batch_size) * lr_scale
        self.steps = steps_for(preset, batch_size)
        self.per_epoch = preset.images // batch_size  # load_split checks that the split has preset.images

    def config_dict(self) -> dict[str, Any]:
        return {"preset": asdict(self.preset), "norm": self.norm, "batch_size": self._batch_size, "seed": self.seed}

    def resume_facts(self, config: dict[str, Any]) -> dict[str, Any]:
        return {k: config[k] for k in ("norm", "batch_size", "seed") if k in config} | (
            {"width": config["preset"]["width"]} if "preset" in config else {})

    def setup(self, device: torch.device, world: int) -> None:
        self.device = device
        self.train, self.held = load_split(self.preset)

    @property
    def num_items(self) -> int:
        return len(self.train.images)

    @property
    def batch_size(self) -> int:
        return self._batch_size

    def build_model(self, resuming: bool) -> ResNetClassifier:
        return ResNetClassifier(self.norm, self.preset.width, self.train.num_classes)

    def make_optimizer(self, model, lr):
        # fused: one kernel for every parameter's update; the per-tensor loop took 1.9 of a 6.8 ms batch-2 step
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=self.preset.weight_decay,
                                    nesterov=True, fused=True)
        steps, warmup = self.steps, max(1, int(self.preset.warmup_epochs * self.per_epoch))
        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
            1 + math.cos(math.pi * min(s, steps) / steps)))

    def training_step(self, model, indices, micro_step):
        return {"loss": F.cross_entropy(model(self.train.images[indices].to(self.device)),
                                        self.train.labels[indices].to(self.device))}

    def evaluate(self, model, step):
        model.eval()
        return {"test_error": test_error(model, self.held)}

    def card(self, model, step, history, smoothed):
        return {"architecture": "ResNetClassifier", "model_config": {"norm": self.norm, "width": self.preset.width},
                "norm": self.norm, "data": f"mnist5k: {len(self.train.images)} training digits",
                "training": {"batch_size": self._batch_size}}


def fit_config(task: ClassificationTask, threads: int | None = None, **options: Any) -> FitConfig:
    """The loop's options for `task`: its budget, a test score after every epoch, on the CPU."""
    return FitConfig(steps=task.steps, lr=task.lr, seed=task.seed, eval_every=task.per_epoch, threads=threads,
                     cpu=True, progress=False, **options)


def run_classification(preset: ClassificationPreset, norm: str, batch_size: int, seed: int, run_dir: Path,
                       lr_scale: float = 1.0, threads: int | None = None) -> dict[str, Any]:
    """Train for the preset's epochs and score the test split after every epoch."""
    del run_dir  # nothing but the result is kept: the model is seconds to retrain
    task = ClassificationTask(preset, norm, batch_size, seed, lr_scale)
    with onednn_for(batch_size):  # the test scores inside switch to their own batch size's choice
        started = time.perf_counter()
        trained = fit(task, fit_config(task, threads))
        seconds = time.perf_counter() - started
    per_epoch, steps = task.per_epoch, task.steps
    losses = [h["loss"] for h in trained.history if "loss" in h]
    curve = [(h["step"] // per_epoch, h["test_error"], sum(losses[h["step"] - per_epoch:h["step"]]) / per_epoch)
             for h in trained.history if "test_error" in h and h["step"] % per_epoch == 0]
    model = trained.model.eval()
    result: dict[str, Any] = {
        "steps": steps, "epochs": preset.epochs, "images": steps * batch_size, "lr": task.lr,
        "test_error": test_error(model, task.held), "train_loss": curve[-1][2],
        "images_per_s": steps * batch_size / seconds,
        "error_curve": [[epoch, error] for epoch, error, _ in curve],  # test error after each epoch
        "loss_curve": [[epoch * per_epoch * batch_size, loss] for epoch, _, loss in curve],
    }
    if norm_kind(norm).batch_statistics:
        # The same test images normalised with batch statistics, in batches of the training size.
        in_train_mode = copy.deepcopy(model).train()
        for module in in_train_mode.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.momentum = 0.0  # score without moving the running averages
        result["bn_train_mode_error"] = test_error(in_train_mode, task.held, batch_size)
        result["bn_eval_mode_error"] = result["test_error"]
    return result
