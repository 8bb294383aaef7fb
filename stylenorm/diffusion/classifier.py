"""A small MNIST classifier: the feature space for the ablation's Fréchet distance.

Trained by `stylenorm diffusion train-classifier` on the bundled MNIST subset and
shipped as weights/mnist_classifier.safetensors with its held-out accuracy in the
card. Its 128-d penultimate activations play the role Inception features play in
FID, at a scale that fits digits.
"""

from __future__ import annotations

import datetime
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stylenorm.checkpoints import (
    load_into, load_model, refuse_shipped_output, save_model, shipped_weights, user_weights_dir,
)
from stylenorm.errors import StylenormError
from stylenorm.diffusion.data import DatasetError, load_images, split_holdout
from stylenorm.training import batch_indices

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


@dataclass
class ClassifierConfig:
    data: str = "mnist5k"
    holdout: int = 1000
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    output: str | None = None  # default: <user data folder>/weights/mnist_classifier.safetensors

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "holdout"):  # the held-out accuracy is the classifier's card
            if getattr(self, name) < 1:
                raise StylenormError(f"--{name} {getattr(self, name)} is below 1; pass at least 1")
        if self.lr <= 0:
            raise StylenormError(f"--lr {self.lr} must be positive, e.g. 1e-3")


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


def train_digit_classifier(config: ClassifierConfig) -> tuple[Path, float]:
    """Train, evaluate on the held-out split, and save weights plus card. Returns (path, accuracy)."""
    output = Path(config.output) if config.output else user_weights_dir() / "mnist_classifier.safetensors"
    refuse_shipped_output(output)  # checked before training, so a run never ends in a refusal
    torch.manual_seed(config.seed)
    data = load_images(config.data, IMAGE_SIZE, 1)
    if data.labels is None:
        raise DatasetError(f"{config.data} has no labels; the classifier needs a labelled digit set such as mnist5k")
    train, held = split_holdout(data, config.holdout, config.seed)
    model = DigitClassifier(data.num_classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, config.steps) / config.steps)))
    generator = torch.Generator().manual_seed(config.seed)
    progress = tqdm(range(config.steps), desc="classifier", unit="step")
    for step in progress:
        model.train()
        idx = batch_indices(len(train.images), config.batch_size, step, config.seed)
        loss = F.cross_entropy(model(_augment(train.images[idx], generator)), train.labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        progress.set_postfix(loss=f"{loss.item():.3f}")
    held_accuracy = accuracy(model, held.images, held.labels) if held is not None else float("nan")
    card = {
        "model": "DigitClassifier",
        "purpose": "feature space (128-d) for the Fréchet distance of generated digits",
        "held_out_accuracy": held_accuracy,
        "config": {k: v for k, v in asdict(config).items() if k != "output"},  # no local paths in a shipped card
        "data": data.source,
        "date": datetime.date.today().isoformat(),
    }
    path = save_model(output, model.state_dict(), card)
    return path, held_accuracy


def load_digit_classifier(path: str | Path | None = None) -> DigitClassifier:
    path = Path(path) if path is not None else shipped_weights("mnist_classifier")
    state, _ = load_model(path)
    model = DigitClassifier()
    load_into(model, state, path)
    return model.eval()
