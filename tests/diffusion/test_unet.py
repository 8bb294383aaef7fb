"""The U-Net: shapes across resolutions and norms, FiLM identity at init, size checks."""

from __future__ import annotations

import pytest
import torch
from diffusion_testlib import tiny_unet

from stylenorm.diffusion.unet import ResBlock, UNet, UNetConfig
from stylenorm.errors import StylenormError
from stylenorm.norms import FiLM, default_groups, group_counts, make_norm


@pytest.mark.parametrize("size", [8, 12, 14, 28])
def test_output_shape_matches_input_for_several_resolutions(size: int) -> None:
    # 14 → 7 → 4 exercises odd feature maps that the upsampler must match back to the skip size.
    model = tiny_unet(image_size=size, channel_mults=(1, 2, 2), attention_resolutions=((size + 1) // 2,))
    x = torch.randn(2, 1, size, size)
    out = model(x, torch.tensor([0, 999]), torch.tensor([3, 10]))
    assert out.shape == x.shape


@pytest.mark.parametrize("norm", ["gn", "gn2", "ln", "in", "bn", "rms", "prms", "none"])
def test_output_shape_for_every_norm(norm: str) -> None:
    model = tiny_unet(norm=norm, in_channels=3, num_classes=0)
    x = torch.randn(3, 3, 8, 8)
    assert model(x, torch.tensor([1, 2, 3])).shape == x.shape


def test_norm_spec_reaches_every_layer_and_card_records_groups() -> None:
    model = tiny_unet(norm="gn4")
    counts = group_counts(model)
    assert counts and set(counts.values()) == {4}
    assert all("norm" in name for name in counts)
    # plain gn picks 32 groups, or fewer on narrow layers (8 channels: 8 groups; 48: 24)
    model = tiny_unet(norm="gn", base_channels=16, channel_mults=(1, 3))
    layers = {name: m for name, m in model.named_modules() if isinstance(m, torch.nn.GroupNorm)}
    assert group_counts(model) == {name: default_groups(m.num_channels) for name, m in layers.items()}
    assert {m.num_channels: m.num_groups for m in layers.values()}[48] == 24


def test_film_at_zero_init_is_the_plain_norm() -> None:
    film = FiLM("gn", 16, cond_dim=12)
    x, cond = torch.randn(4, 16, 5, 5), torch.randn(4, 12)
    reference = make_norm("gn", 16)
    torch.testing.assert_close(film(x, cond), reference(x))


def test_resblock_starts_as_its_skip_path_and_film_modulates_after_training_signal() -> None:
    block = ResBlock(8, 16, emb_dim=12, norm="gn", dropout=0.0)
    x, emb = torch.randn(2, 8, 6, 6), torch.randn(2, 12)
    torch.testing.assert_close(block(x, emb), block.skip(x))
    # once the FiLM projection is non-zero, different embeddings give different outputs
    torch.nn.init.normal_(block.conv2.weight)
    torch.nn.init.normal_(block.film.proj.weight)
    assert not torch.allclose(block(x, emb), block(x, -emb))


def test_labels_change_the_output_and_none_means_the_null_label() -> None:
    model = tiny_unet()
    for p in model.parameters():  # leave the zero init so the label has an effect
        torch.nn.init.normal_(p, std=0.2)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 5])
    assert not torch.allclose(model(x, t, torch.tensor([1, 1])), model(x, t, torch.tensor([2, 2])))
    torch.testing.assert_close(model(x, t, None), model(x, t, torch.tensor([10, 10])))


def test_wrong_image_size_is_a_clear_error() -> None:
    model = tiny_unet(image_size=8)
    with pytest.raises(StylenormError, match="8px"):
        model(torch.randn(1, 1, 16, 16), torch.tensor([0]))


def test_bad_model_options_are_clear_errors() -> None:
    with pytest.raises(StylenormError, match="unknown norm spec"):
        UNetConfig(norm="groupnorm")
    with pytest.raises(StylenormError, match="channel_mults"):
        UNetConfig(channel_mults=(1, 0))


def test_config_round_trips_through_a_card() -> None:
    config = UNetConfig(image_size=12, channel_mults=(1, 3), attention_resolutions=(6,), num_classes=4)
    assert UNetConfig.from_dict(config.to_dict()) == config
    assert isinstance(UNet(UNetConfig.from_dict(config.to_dict())), UNet)
