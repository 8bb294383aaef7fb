"""VGG16 perceptual loss: Gram matrices, weight formats, preprocessing, clear errors."""

from __future__ import annotations

import urllib.error

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from style_testlib import SHARED, make_tiny_vgg

from stylenorm.errors import StylenormError
from stylenorm.style import loss as loss_mod
from stylenorm.style.loss import (
    CAFFE_FEATURE_SCALE,
    LAYER_INDEX,
    LossWeights,
    PerceptualLoss,
    gram_matrix,
    load_vgg,
    load_vgg_file,
    loss_recipe,
    total_variation,
)


def test_gram_matrix_is_normalised_channel_correlation():
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])  # (1, 2, 2, 2)
    g = gram_matrix(f)
    expected = torch.tensor([[30.0, 6.0], [6.0, 2.0]]) / (2 * 2 * 2)
    torch.testing.assert_close(g[0], expected)
    # size-independent: tiling the same texture keeps its Gram matrix
    torch.testing.assert_close(gram_matrix(f.repeat(1, 1, 3, 3)), g)


def test_total_variation_zero_for_flat_image():
    assert total_variation(torch.full((1, 3, 8, 8), 0.3)) == 0
    assert total_variation(torch.rand(1, 3, 8, 8)) > 0


def test_format_read_from_metadata(tmp_path):
    _, fmt = load_vgg_file(make_tiny_vgg(tmp_path / "a.safetensors", "caffe"))
    assert fmt == "caffe"
    _, fmt = load_vgg_file(make_tiny_vgg(tmp_path / "b.safetensors", "torchvision"))
    assert fmt == "torchvision"


def test_format_unknown_asks_the_user(tmp_path):
    path = make_tiny_vgg(tmp_path / "c.safetensors", None)
    with pytest.raises(StylenormError, match="--vgg-format"):
        load_vgg_file(path)
    _, fmt = load_vgg_file(path, "caffe")
    assert fmt == "caffe"


@pytest.mark.parametrize("fmt", ["auto", "caffe"])
def test_a_file_that_is_no_vgg16_is_named_as_such(fmt):
    from stylenorm.checkpoints import shipped_weights

    # the shipped style network: not "caffe or torchvision?", whatever --vgg-format says
    with pytest.raises(StylenormError, match=r"styles.safetensors is not a VGG16: it lacks the conv keys 0.weight"):
        load_vgg_file(shipped_weights("styles"), fmt)


def test_torchvision_pth_with_features_prefix(tmp_path):
    sd = {f"features.{k}": v for k, v in loss_mod.vgg16_trunk(22).state_dict().items()}
    sd["classifier.0.weight"] = torch.zeros(2, 2)
    torch.save(sd, tmp_path / "vgg16-397923af.pth")
    vgg, source = load_vgg(tmp_path / "vgg16-397923af.pth")
    assert vgg.fmt == "torchvision" and "torchvision" in source


def test_missing_or_bad_file_errors(tmp_path):
    with pytest.raises(StylenormError, match="not found"):
        load_vgg_file(tmp_path / "nope.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(StylenormError, match="--vgg-weights"):
        load_vgg_file(tmp_path / "bad.safetensors")
    save_file({"0.weight": torch.zeros(64, 3, 3, 3)}, str(tmp_path / "short.safetensors"), metadata={"format": "caffe"})
    with pytest.raises(StylenormError, match="relu4_3"):
        load_vgg(tmp_path / "short.safetensors")


def test_offline_without_file_names_the_fix(monkeypatch):
    from torchvision.models import VGG16_Weights

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(type(VGG16_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    with pytest.raises(StylenormError) as info:
        load_vgg(None)
    message = str(info.value)
    assert "--vgg-weights" in message and "internet" in message and "\n" not in message


def test_caffe_preprocessing_is_bgr_0_255_minus_mean(tiny_vgg):
    vgg, _ = load_vgg(tiny_vgg)
    x = torch.rand(1, 3, 4, 4)
    pre = vgg.preprocess(x)
    mean_bgr = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    torch.testing.assert_close(pre, x[:, [2, 1, 0]] * 255 - mean_bgr)
    # features are rescaled so that loss weights mean the same with either format
    feats = vgg(x, upto=["relu1_2"])["relu1_2"]
    raw = vgg.trunk[:4](pre)
    torch.testing.assert_close(feats, raw / CAFFE_FEATURE_SCALE)


def test_style_loss_zero_for_style_image_itself(tiny_vgg):
    vgg, _ = load_vgg(tiny_vgg)
    style = torch.rand(3, 32, 32)
    loss = PerceptualLoss(vgg, [style], ["relu1_2", "relu2_2", "relu3_3", "relu4_3"], "relu2_2", LossWeights())
    out = loss(style.unsqueeze(0), style.unsqueeze(0), torch.tensor([0]))
    assert out["style"].item() < 1e-8 and out["content"].item() < 1e-8
    other = loss(torch.rand(1, 3, 32, 32), style.unsqueeze(0), torch.tensor([0]))
    assert other["style"].item() > 0 and other["content"].item() > 0


def test_relative_gram_counts_every_layer_alike_whatever_its_scale(tiny_vgg):
    # The 'relative' loss: each layer's Gram error is relative to its target, so a layer whose
    # activations are 10x larger (Gram 10^4x) neither dominates nor vanishes; per layer, a grey
    # output against a colourful style scores on the order of one.
    vgg, _ = load_vgg(tiny_vgg)
    style = torch.rand(1, 3, 32, 32)
    output = torch.full((1, 3, 32, 32), 0.5) + 0.05 * torch.randn(1, 3, 32, 32)
    layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    per_layer = []
    for name in layers:
        loss = PerceptualLoss(vgg, [style[0]], [name], "relu2_2", LossWeights(), relative_gram=True)
        per_layer.append(loss(output, output, torch.tensor([0]))["style"].item())
    assert all(0.05 < v < 20 for v in per_layer), per_layer
    loss = PerceptualLoss(vgg, [style[0]], layers, "relu2_2", LossWeights(), relative_gram=True)
    before = loss(output, output, torch.tensor([0]))["style"].item()
    vgg.out_scale *= 10
    rescaled = PerceptualLoss(vgg, [style[0]], layers, "relu2_2", LossWeights(), relative_gram=True)
    assert rescaled(output, output, torch.tensor([0]))["style"].item() == pytest.approx(before, rel=1e-4)


def test_gatys_and_johnson_losses_are_the_papers_layers_and_absolute_gram_errors(tiny_vgg):
    gatys, johnson = loss_recipe("gatys"), loss_recipe("johnson")
    assert gatys.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
    assert gatys.content_layer == "relu4_2" and not gatys.relative_gram and gatys.normalized_features
    assert johnson.style_layers == ("relu1_2", "relu2_2", "relu3_3", "relu4_3") and not johnson.relative_gram
    # the style term is the mean over layers of the mean squared difference of Gram / (C*H*W), with
    # Gatys et al.'s features in units of each layer's mean activation on photos
    vgg, _ = load_vgg(tiny_vgg, layers=tuple(LAYER_INDEX))
    style, output = torch.rand(1, 3, 48, 48), torch.rand(1, 3, 48, 48)
    means = vgg.mean_activations()
    fo, fs = vgg(output), vgg(style)
    expected = sum(F.mse_loss(gram_matrix(fo[k] / means[k]), gram_matrix(fs[k] / means[k])) for k in gatys.style_layers) / 5
    got = PerceptualLoss.from_recipe(vgg, [style[0]], gatys)(output, output, torch.tensor([0]))["style"]
    assert got.item() == pytest.approx(expected.item(), rel=1e-4)
    plain = PerceptualLoss.from_recipe(vgg, [style[0]], johnson)(output, output, torch.tensor([0]))["style"]
    # one layer's activations 10x larger (relu5_1: its conv scaled): the normalised loss is unchanged,
    # the plain absolute one (johnson's) weighs that layer 10^4x more
    conv = vgg.trunk[LAYER_INDEX["relu5_1"] - 1]
    with torch.no_grad():
        conv.weight *= 10
        conv.bias *= 10
    vgg._mean_activations_key = None  # the network changed under the cache
    assert PerceptualLoss.from_recipe(vgg, [style[0]], gatys)(output, output, torch.tensor([0]))["style"].item() \
        == pytest.approx(got.item(), rel=1e-3)
    vgg.out_scale *= 10  # every layer 10x: johnson's absolute errors grow 10^4x (the shallow layers carry the palette)
    assert PerceptualLoss.from_recipe(vgg, [style[0]], johnson)(output, output, torch.tensor([0]))["style"].item() \
        == pytest.approx(plain.item() * 1e4, rel=1e-3)


def test_unknown_loss_names_the_valid_ones():
    with pytest.raises(StylenormError, match="gatys, johnson, relative"):
        loss_recipe("banana")


def test_vgg_stays_frozen_in_eval(tiny_vgg):
    vgg, _ = load_vgg(tiny_vgg)
    vgg.train()
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())


@pytest.mark.skipif(not (SHARED / "data" / "vgg16-caffe-hed.safetensors").is_file(), reason="../shared absent")
def test_real_caffe_file_loads_and_responds_to_content():
    vgg, source = load_vgg(SHARED / "data" / "vgg16-caffe-hed.safetensors")
    assert vgg.fmt == "caffe" and "caffe" in source
    x = torch.rand(1, 3, 32, 32)
    feats = vgg(x)
    assert set(feats) == {"relu1_2", "relu2_2", "relu3_3", "relu4_3"}
    assert feats["relu4_3"].shape == (1, 512, 4, 4)
    assert all(torch.isfinite(f).all() for f in feats.values())


def test_half_scale_style_loss_compares_both_images_at_half_size(tiny_vgg):
    """scales [1, 0.5]: the mean of the full-size loss and the loss of the output at half size against the
    painting at half size (what lets the painting's large motifs count); the painting itself scores zero."""
    from stylenorm.style.loss import resize_by

    vgg, _ = load_vgg(tiny_vgg)
    layers = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    y, x = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    painting = (torch.sin(x / 6) * torch.cos(y / 6) * 0.4 + 0.5).expand(3, 64, 64).clone()
    idx = torch.tensor([0])
    two = PerceptualLoss(vgg, [painting], layers, "relu2_2", LossWeights(), scales=[1.0, 0.5])
    assert two(painting.unsqueeze(0), painting.unsqueeze(0), idx)["style"].item() < 1e-8
    output = torch.rand(1, 3, 64, 64)
    full = PerceptualLoss(vgg, [painting], layers, "relu2_2", LossWeights())(output, output, idx)["style"]
    small_painting = resize_by(painting.unsqueeze(0), 0.5)[0]
    small_output = resize_by(output, 0.5)
    half = PerceptualLoss(vgg, [small_painting], layers, "relu2_2", LossWeights())(small_output, small_output, idx)["style"]
    assert two(output, output, idx)["style"].item() == pytest.approx((full.item() + half.item()) / 2, rel=1e-5)
    with pytest.raises(StylenormError, match="scales"):
        PerceptualLoss(vgg, [painting], layers, "relu2_2", LossWeights(), scales=[2.0])


def test_layout_error_ignores_palette_and_tone_but_not_where_light_and_dark_are():
    from stylenorm.style.loss import layout_error

    torch.manual_seed(0)
    light = torch.nn.functional.interpolate(torch.rand(2, 1, 8, 8), size=64, mode="bilinear")  # smooth light/dark areas
    photo = (light + 0.05 * torch.rand(2, 3, 64, 64)).clamp(0, 1)
    recoloured = (0.3 * photo + 0.5) * torch.tensor([1.0, 0.6, 0.2]).view(1, 3, 1, 1)  # another palette, same layout
    assert layout_error(recoloured, photo) < 0.02
    assert layout_error(photo.flip(-1), photo) > 0.3  # the layout mirrored
    inverted = 1 - photo  # light where the photo is dark
    assert layout_error(inverted, photo) > 1.9


def test_layout_weight_adds_the_layout_term_to_the_total(tiny_vgg):
    vgg, _ = load_vgg(tiny_vgg)
    style = torch.rand(1, 3, 32, 32)
    out, content = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    plain = PerceptualLoss(vgg, [style[0]], ["relu1_2"], "relu1_2", LossWeights(1, 1, 0))
    with_layout = PerceptualLoss(vgg, [style[0]], ["relu1_2"], "relu1_2", LossWeights(1, 1, 0, layout=2.0))
    a, b = plain(out, content, torch.tensor([0])), with_layout(out, content, torch.tensor([0]))
    assert "layout" not in a
    assert torch.allclose(b["total"], a["total"] + 2.0 * b["layout"])
