"""Training: the loss falls, resume is exact, bad data and options fail clearly and cleanly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusion_testlib import tiny_train_config, tiny_unet
from safetensors.torch import load_file

from stylenorm.checkpoints import load_training_state
from stylenorm.diffusion.config import DiffusionTrainConfig
from stylenorm.diffusion.data import DatasetError, load_images, split_holdout
from stylenorm.diffusion.schedule import Diffusion
from stylenorm.diffusion.train import train
from stylenorm.errors import StylenormError
from stylenorm.training import NonFiniteLossError


def test_a_few_steps_on_a_fixed_batch_lower_the_loss() -> None:
    torch.manual_seed(0)
    model, diffusion = tiny_unet(), Diffusion("cosine", 100)
    data = load_images("mnist5k", 8, 1)
    x0, labels = data.images[:16], data.labels[:16]
    t, noise = torch.randint(0, 100, (16,)), torch.randn(16, 1, 8, 8)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(40):
        loss = diffusion.loss(model(diffusion.q_sample(x0, t, noise), t, labels), x0, t, noise)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path) -> None:
    full = train(tiny_train_config(tmp_path / "full", steps=4), progress=False)
    first = train(tiny_train_config(tmp_path / "split", steps=2), progress=False)
    assert first.is_file()
    resumed = train(tiny_train_config(tmp_path / "split", steps=4), resume=tmp_path / "split", progress=False)
    _, _, full_state = load_training_state(tmp_path / "full" / "checkpoints" / "step_0000004")
    _, _, resumed_state = load_training_state(tmp_path / "split" / "checkpoints" / "step_0000004")
    def losses(history):  # wall-clock step times differ between runs; everything else must not
        return [{k: v for k, v in h.items() if k != "seconds"} for h in history]

    assert losses(full_state["history"]) == losses(resumed_state["history"])
    assert all(h["seconds"] > 0 for h in full_state["history"] if "loss" in h)
    a, b = load_file(str(full)), load_file(str(resumed))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # the EMA copy (what sampling uses) came back too, not just the raw weights
    assert resumed_state["ema_updates"] == 4


def test_resume_with_another_image_size_or_architecture_is_refused(tmp_path: Path) -> None:
    train(tiny_train_config(tmp_path, steps=2), progress=False)
    with pytest.raises(StylenormError, match="image_size=8"):
        train(tiny_train_config(tmp_path, steps=4, image_size=12, attention_resolutions=(6,)), resume=tmp_path, progress=False)
    with pytest.raises(StylenormError, match="base_channels"):
        train(tiny_train_config(tmp_path, steps=4, base_channels=16), resume=tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_0000002"]


def test_training_writes_grids_heldout_losses_and_a_card(tmp_path: Path) -> None:
    final = train(tiny_train_config(tmp_path, steps=4, grad_accum=2), progress=False)
    from stylenorm.checkpoints import load_model

    _, card = load_model(final)
    assert card["unet"]["image_size"] == 8 and card["unet"]["num_classes"] == 10
    assert card["training"]["steps"] == 4 and card["group_counts"]
    # base width 8 with plain gn: 8 groups of one channel (InstanceNorm), recorded for the reader
    assert card["group_counts"]["out_norm"] == 8 and card["channels_per_group"]["out_norm"] == 1
    assert [h["step"] for h in card["losses"]["heldout"]] == [2, 4]
    assert (tmp_path / "samples" / "step_0000004.png").is_file()


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path: Path, monkeypatch) -> None:
    train(tiny_train_config(tmp_path, steps=2), progress=False)
    before = (tmp_path / "checkpoints" / "step_0000002" / "state.pt").read_bytes()
    real_loss = Diffusion.loss
    monkeypatch.setattr(Diffusion, "loss", lambda self, *args: real_loss(self, *args) * float("nan"))
    with pytest.raises(NonFiniteLossError, match="last checkpoint"):
        train(tiny_train_config(tmp_path, steps=4), resume=tmp_path, progress=False)
    assert (tmp_path / "checkpoints" / "step_0000002" / "state.pt").read_bytes() == before
    assert not (tmp_path / "checkpoints" / "step_0000004").exists()


def test_batchnorm_with_one_image_per_batch_is_refused() -> None:
    with pytest.raises(StylenormError, match="batch-size 2"):
        DiffusionTrainConfig(norm="bn", batch_size=1)
    DiffusionTrainConfig(norm="gn", batch_size=1)  # batch-independent norms are fine


def test_data_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="holds no images"):
        load_images(str(tmp_path), 8, 1)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="none of the images in .* can be read .*broken.png"):
        load_images(str(tmp_path), 8, 1)
    with pytest.raises(DatasetError, match="does not exist"):
        load_images(str(tmp_path / "missing") + "/", 8, 1)
    with pytest.raises(DatasetError, match="unknown dataset 'imagenet'.*mnist5k"):
        load_images("imagenet", 8, 1)


def test_image_folder_is_resized_cropped_and_scaled(tmp_path: Path) -> None:
    from PIL import Image

    rgb = np.zeros((30, 60, 3), dtype=np.uint8)
    rgb[:, :, 0] = 255
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    Image.fromarray(np.full((20, 20), 255, dtype=np.uint8)).save(tmp_path / "sub.png")
    data = load_images(str(tmp_path), 16, 3)
    assert data.images.shape == (2, 3, 16, 16) and data.labels is None
    assert data.images.min() >= -1 and data.images.max() <= 1
    torch.testing.assert_close(data.images[1, 0], torch.ones(16, 16))  # wide.png (sorted) red channel
    torch.testing.assert_close(data.images[1, 1], -torch.ones(16, 16))


def test_bundled_subset_and_holdout_split() -> None:
    data = load_images("mnist5k", 28, 1)
    assert data.images.shape == (5000, 1, 28, 28) and data.num_classes == 10
    assert data.images.min() == -1 and data.images.max() == 1
    kept, held = split_holdout(data, 100, seed=0)
    assert len(kept.images) == 4900 and len(held.images) == 100
    with pytest.raises(DatasetError, match="holdout"):
        split_holdout(data, 5000, seed=0)


class _FakeTorchvisionSet:
    """Stands in for torchvision's MNIST/CIFAR classes (no download in tests)."""

    def __init__(self, root: str, train: bool, download: bool) -> None:
        assert train and download and Path(root).name == "cache"
        self.data = np.full((6, 32, 32, 3), 255, dtype=np.uint8)  # CIFAR layout: (N, H, W, C) numpy
        self.targets = [0, 1, 2, 3, 4, 5]
        self.classes = [str(i) for i in range(10)]


def test_torchvision_datasets_are_loaded_resized_and_labelled(tmp_path: Path, monkeypatch) -> None:
    import torchvision

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", _FakeTorchvisionSet)
    data = load_images("cifar10", 16, 3, cache_dir=tmp_path / "cache")
    assert data.images.shape == (6, 3, 16, 16) and data.num_classes == 10
    assert data.labels.tolist() == [0, 1, 2, 3, 4, 5] and bool((data.images == 1).all())
    grey = load_images("CIFAR10", 16, 1, cache_dir=tmp_path / "cache")
    assert grey.images.shape == (6, 1, 16, 16)


def test_a_failed_download_names_the_offline_alternative(tmp_path: Path, monkeypatch) -> None:
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    with pytest.raises(DatasetError, match="could not download fashion-mnist.*--data mnist5k"):
        load_images("fashion-mnist", 28, 1, cache_dir=tmp_path)
