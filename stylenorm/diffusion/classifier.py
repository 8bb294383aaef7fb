"""A small MNIST classifier: the feature space for the ablation's Fréchet distance.

Trained by `stylenorm diffusion train-classifier` on the bundled MNIST subset and
shipped as weights/mnist_classifier.safetensors with its held-out accuracy in the
card. Its 128-d penultimate activations play the role Inception features play in
FID, at a scale that fits digits.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stylenorm.checkpoints import (
    load_into,
    load_model,
    refuse_shipped_output,
    run_directory,
    shipped_weights,
    user_weights_dir,
)
from stylenorm.diffusion.config import ClassifierConfig
from stylenorm.diffusion.data import DatasetError, load_images, split_holdout
from stylenorm.training import FitConfig, TrainingTask, fit

FEATURE_DIM = 128
IMAGE_SIZE = 28


class DigitClassifier(nn.Module):
    """Two conv stages and a 128-d feature layer; inputs (N, 1, 28, 28) in [-1, 1]."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, FEATURE_DIM), nn.ReLU(),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
            images = F.interpolate(images, size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", antialias=True)
        if images.shape[1] == 3:
            images = images.mean(1, keepdim=True)
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(images)))


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 pixels: cheap, and keeps the features robust to placement."""
    shifted = F.pad(images, (2, 2, 2, 2), value=-1.0)
    dy, dx = torch.randint(0, 5, (2,), generator=generator).tolist()
    return shifted[..., dy:dy + IMAGE_SIZE, dx:dx + IMAGE_SIZE]


@torch.no_grad()
def accuracy(model: DigitClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    model.eval()
    correct = sum(
        (model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum().item()
        for i in range(0, len(images), batch_size)
    )
    return correct / len(images)


# options that are where files go, not how the model was made: never in a shipped card
LOCAL_OPTIONS = ("output", "run_dir", "resume", "checkpoint_every", "threads")


class ClassifierTask(TrainingTask):
    kind = "classifier"

    def __init__(self, config: ClassifierConfig) -> None:
        self.config = config

    def config_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self.config).items() if k not in LOCAL_OPTIONS}

    def resume_facts(self, config: dict[str, Any]) -> dict[str, Any]:
        return {k: config[k] for k in ("data", "holdout", "seed", "batch_size") if k in config}

    def setup(self, device: torch.device, world: int) -> None:
        self.device = device
        data = load_images(self.config.data, IMAGE_SIZE, 1)
        if data.labels is None:
            raise DatasetError(f"{self.config.data} has no labels; the classifier needs a labelled digit set such as mnist5k")
        self.source, self.num_classes = data.source, data.num_classes
        self.train, self.held = split_holdout(data, self.config.holdout, self.config.seed)

    @property
    def num_items(self) -> int:
        return len(self.train.images)

    @property
    def batch_size(self) -> int:
        return self.config.batch_size

    def build_model(self, resuming: bool) -> DigitClassifier:
        # the shifts' own stream, created where the model is (after the seed), saved in checkpoints
        self.augment_rng = torch.Generator().manual_seed(self.config.seed)
        return DigitClassifier(self.num_classes)

    def make_optimizer(self, model, lr):
        steps = self.config.steps
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        return optimizer, torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))

    def training_step(self, model, indices, micro_step):
        images = _augment(self.train.images[indices], self.augment_rng).to(self.device)
        return {"loss": F.cross_entropy(model(images), self.train.labels[indices].to(self.device))}

    def evaluate(self, model, step):
        if self.held is None:
            return {}
        return {"held_out_accuracy": accuracy(model, self.held.images.to(self.device), self.held.labels.to(self.device))}

    def state_dict(self) -> dict[str, Any]:
        return {"augment_rng": self.augment_rng.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "augment_rng" in state:
            self.augment_rng.set_state(state["augment_rng"])

    def card(self, model, step, history, smoothed):
        scores = [h["held_out_accuracy"] for h in history if "held_out_accuracy" in h]
        return {
            "architecture": "DigitClassifier", "model_config": {"num_classes": self.num_classes}, "norm": "none",
            "data": self.source, "training": {"batch_size": self.config.batch_size},
            "purpose": "feature space (128-d) for the Fréchet distance of generated digits",
            "held_out_accuracy": scores[-1] if scores else None,
            "config": self.config_dict(),
        }


def train_digit_classifier(config: ClassifierConfig) -> tuple[Path, float]:
    """Train, evaluate on the held-out split, and save weights plus card. Returns (path, accuracy)."""
    output = Path(config.output) if config.output else user_weights_dir() / "mnist_classifier.safetensors"
    refuse_shipped_output(output)  # checked before training, so a run never ends in a refusal
    # a resume continues in the run it was given (where it is now), unless run_dir says otherwise
    run_dir = config.run_dir or (run_directory(config.resume) if config.resume else None)
    result = fit(ClassifierTask(config), FitConfig.from_settings(
        config, run_dir=Path(run_dir) if run_dir else None, eval_every=config.steps, resume=config.resume, output=output,
        desc="classifier",
    ))
    return output, result.card["held_out_accuracy"]


def load_digit_classifier(path: str | Path | None = None) -> DigitClassifier:
    path = Path(path) if path is not None else shipped_weights("mnist_classifier")
    state, _ = load_model(path)
    model = DigitClassifier()
    load_into(model, state, path)
    return model.eval()
