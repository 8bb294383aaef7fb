"""Training: the loss goes down on a fixed batch, and resume continues exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from style_testlib import make_tiny_vgg

from stylenorm.checkpoints import load_model
from stylenorm.errors import StylenormError
from stylenorm.style.config import StyleTrainConfig
from stylenorm.style.loss import LossWeights, PerceptualLoss, load_vgg
from stylenorm.style.net import TransformerNet
from stylenorm.style.train import train_style


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(tmp_path):
    vgg, _ = load_vgg(make_tiny_vgg(tmp_path / "vgg.safetensors", "torchvision"))
    torch.manual_seed(0)
    styles = [torch.rand(3, 48, 48), torch.rand(3, 48, 48) * 0.5]
    loss_fn = PerceptualLoss(vgg, styles, ["relu1_2", "relu2_2", "relu3_3", "relu4_3"], "relu2_2",
                             LossWeights(style=10.0))
    net = TransformerNet(num_styles=2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    content = torch.rand(2, 3, 32, 32)
    style_index = torch.tensor([0, 1])
    losses = []
    for _ in range(16):
        out = loss_fn(net(content, style_index), content, style_index)
        opt.zero_grad()
        out["total"].backward()
        opt.step()
        losses.append(out["total"].item())
    assert min(losses[-3:]) < 0.8 * losses[0]


def _cfg(tiny_vgg, tiny_data, tmp_path, **kw) -> StyleTrainConfig:
    base = dict(
        styles=[str(tiny_data["style_a"]), str(tiny_data["style_b"])], data=str(tiny_data["content"]),
        name="tiny", output=str(tmp_path / "out" / "tiny.safetensors"), run_dir=str(tmp_path / "run"),
        image_size=32, style_size=48, steps=4, vgg_weights=str(tiny_vgg), checkpoint_every=2,
        preview_every=2, preview_size=32, threads=None, cpu=True, seed=3, style_weight=10.0,
    )
    base.update(kw)
    return StyleTrainConfig(**base)


def test_resume_continues_exactly(tiny_vgg, tiny_data, tmp_path):
    straight = train_style(_cfg(tiny_vgg, tiny_data, tmp_path / "a", half=False))
    # stop after 2 steps, then resume to 4 from the run directory
    train_style(_cfg(tiny_vgg, tiny_data, tmp_path / "b", steps=2, half=False))
    torch.manual_seed(12345)  # resume must not depend on the caller's RNG
    resumed = train_style(_cfg(tiny_vgg, tiny_data, tmp_path / "b", half=False, resume=str(tmp_path / "b" / "run")))
    a, b = load_file(str(straight)), load_file(str(resumed))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)


def test_outputs_card_checkpoints_and_previews(tiny_vgg, tiny_data, tmp_path):
    path = train_style(_cfg(tiny_vgg, tiny_data, tmp_path))
    tensors, card = load_model(path)
    assert all(v.dtype == torch.float16 for v in tensors.values())
    assert card["styles"] == ["stripes", "dots"] and card["num_styles"] == 2 and card["steps"] == 4
    assert card["image_size"] == 32 and "caffe" in card["loss_network"]
    # the loss is recorded with the layers and weights it filled in (Johnson et al.'s by default)
    assert card["loss"] == "johnson" and card["content_layer"] == "relu2_2"
    assert card["style_layers"] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    assert card["loss_weights"]["style"] == 10.0 and card["loss_weights"]["content"] == 1.0
    assert set(card["final_losses"]) >= {"content", "style", "total"} and card["date"]
    assert json.loads(path.with_suffix(".json").read_text()) == card
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_0000002", "step_0000004"]
    previews = sorted((run / "previews").glob("*.png"))
    assert [p.name for p in previews] == ["step_0000002.png", "step_0000004.png"]
    with Image.open(previews[-1]) as im:  # original + two styles per row, two preview photos
        assert im.size[0] == 3 * 32 and im.size[1] > 32
    # the shipped form loads back into a network that stylizes
    net = TransformerNet(num_styles=2)
    from stylenorm.checkpoints import load_into

    load_into(net, tensors, path)


def test_gradient_accumulation_steps_the_optimizer_once_per_step(tiny_vgg, tiny_data, tmp_path):
    from stylenorm.checkpoints import load_training_state

    path = train_style(_cfg(tiny_vgg, tiny_data, tmp_path, steps=2, grad_accum=2, preview_every=0))
    _, card = load_model(path)
    assert card["batch_size_per_style"] == 2 and card["images_per_style"] == 4
    _, _, state = load_training_state(tmp_path / "run" / "checkpoints" / "step_0000002")
    adam_steps = {int(v["step"]) for v in state["optimizer"]["state"].values()}
    assert adam_steps == {2}  # two micro-batches per step, one optimizer update


def test_holdout_photos_are_a_fixed_split_never_trained_on(tiny_data):
    from stylenorm.style.data import ContentPhotos

    everything = ContentPhotos(tiny_data["content"])
    split = ContentPhotos(tiny_data["content"], holdout=2)
    assert len(split.held_out) == 2 and len(split.files) == len(everything.files) - 2
    assert not set(split.held_out) & set(split.files)
    assert ContentPhotos(tiny_data["content"], holdout=2).held_out == split.held_out
    with pytest.raises(StylenormError, match="holdout 6 must be between 0 and 5"):
        ContentPhotos(tiny_data["content"], holdout=6)


def test_checkpoints_keep_the_loss_history_across_resume(tiny_vgg, tiny_data, tmp_path):
    from stylenorm.checkpoints import latest_checkpoint, load_training_state

    train_style(_cfg(tiny_vgg, tiny_data, tmp_path, steps=2))
    train_style(_cfg(tiny_vgg, tiny_data, tmp_path, resume=str(tmp_path / "run")))
    _, _, state = load_training_state(latest_checkpoint(tmp_path / "run"))
    history = state["history"]
    assert [h["step"] for h in history] == [1, 2, 3, 4]
    assert all(h["seconds"] > 0 and h["total"] > 0 and h["style"] > 0 for h in history)


def test_a_frame_strip_along_a_paintings_edge_is_cropped_away(tmp_path):
    """the_scream's scan has the board it is painted on down its right side; a Gram loss would
    learn it as a motif and the network paint it as a stripe along every output's edge."""
    from stylenorm.style.data import load_style_image
    from stylenorm.style.optimize import load_painting

    painting = np.full((200, 300, 3), 128, np.uint8)
    painting[:, -12:] = (20, 200, 200)  # a teal strip, 4 % of the width
    Image.fromarray(painting).save(tmp_path / "framed.png")
    for loaded in (load_style_image(tmp_path / "framed.png", 300), load_painting(tmp_path / "framed.png", 300)[0]):
        assert loaded[1].max() < 0.6 and loaded[1].min() > 0.4, "the strip must not reach the loss"


def test_photo_size_crops_the_photo_at_the_scale_stylize_paints_it(tmp_path):
    """Without photo_size a crop is most of the photo (short side = crop); with it the photo's long
    side is photo_size first, so a 64 px crop of a 128 px-long photo spans half its width."""
    from stylenorm.style.data import random_crop

    ramp = np.tile(np.linspace(0, 255, 400).astype(np.uint8)[None, :, None], (300, 1, 3))  # 400 x 300
    photo = Image.fromarray(ramp)
    whole = random_crop(photo, 64, torch.Generator().manual_seed(0))
    zoomed = random_crop(photo, 64, torch.Generator().manual_seed(0), photo_size=128)
    span = lambda crop: float(crop[0].max() - crop[0].min())  # noqa: E731 - brightness range across the crop
    assert whole.shape == zoomed.shape == (3, 64, 64)
    assert span(whole) == pytest.approx(64 / 85, abs=0.04)  # 400 x 300 -> 85 x 64
    assert span(zoomed) == pytest.approx(64 / 128, abs=0.04)
    # a photo_size whose short side would fall under the crop keeps the short side at the crop size
    tall = random_crop(photo.rotate(90, expand=True).resize((100, 400)), 64, torch.Generator().manual_seed(0), 96)
    assert tall.shape == (3, 64, 64)


def test_photo_size_is_recorded_and_checked(tiny_vgg, tiny_data, tmp_path):
    with pytest.raises(StylenormError, match="--photo-size 16 is below 32"):
        train_style(_cfg(tiny_vgg, tiny_data, tmp_path, photo_size=16))
    weights = train_style(_cfg(tiny_vgg, tiny_data, tmp_path, photo_size=64))
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["photo_size"] == 64
