"""TransformerNet: shapes, value ranges, conditional instance norm switching and blending."""

from __future__ import annotations

import pytest
import torch

from stylenorm.norms import NormSpecError
from stylenorm.style.net import TransformerNet


@pytest.mark.parametrize("h,w", [(32, 32), (37, 50), (21, 64)])
def test_output_has_input_shape_for_any_size(h, w):
    net = TransformerNet().eval()
    with torch.no_grad():
        y = net(torch.rand(2, 3, h, w))
    assert y.shape == (2, 3, h, w)
    assert torch.isfinite(y).all()


def test_layout_is_johnson():
    net = TransformerNet()
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[:3]] == [32, 64, 128]
    assert convs[0].kernel_size == (9, 9) and convs[-1].kernel_size == (9, 9) and convs[-1].out_channels == 3
    assert [c.stride for c in convs[1:3]] == [(2, 2), (2, 2)]
    assert len(net.res) == 5
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in net.modules())  # no checkerboard source
    assert any(isinstance(m, torch.nn.ReflectionPad2d) for m in net.modules())


@pytest.mark.parametrize("spec", ["in", "gn", "ln", "bn", "rms", "none"])
def test_any_norm_spec_builds_and_runs(spec):
    net = TransformerNet(norm=spec).train()
    y = net(torch.rand(2, 3, 24, 24))
    y.mean().backward()
    assert y.shape == (2, 3, 24, 24)


def test_unknown_norm_spec_is_a_clear_error():
    with pytest.raises(NormSpecError, match="valid specs"):
        TransformerNet(norm="batchnorm")


def _randomise_style_params(net: TransformerNet, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".layer.weight" in name or ".layer.bias" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if name.endswith("weight") else 0.0))


def test_conditional_styles_switch_and_only_own_gamma_beta_differ():
    net = TransformerNet(num_styles=3).eval()
    _randomise_style_params(net)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        outs = [net(x, i) for i in range(3)]
    assert not torch.allclose(outs[0], outs[1], atol=1e-4)
    # a batch with mixed styles equals the per-style results
    with torch.no_grad():
        batch = net(x.repeat(3, 1, 1, 1), torch.tensor([2, 0, 1]))
    torch.testing.assert_close(batch[0:1], outs[2], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(batch[1:2], outs[0], atol=1e-5, rtol=1e-4)
    # per-style parameters are tables of num_styles rows; the convolutions are shared
    per_style = [p for n, p in net.named_parameters() if ".layer." in n]
    assert per_style and all(p.shape[0] == 3 for p in per_style)


def test_blend_weights_mix_gamma_beta():
    net = TransformerNet(num_styles=2).eval()
    _randomise_style_params(net, 1)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        one_hot = net(x, [0.0, 1.0])
        index = net(x, 1)
        half = net(x, [0.5, 0.5])
        # the same blend by hand: a single-row table holding the mean gamma/beta
        mixed = TransformerNet(num_styles=2).eval()
        mixed.load_state_dict(net.state_dict())
        for n, p in mixed.named_parameters():
            if ".layer." in n:
                p.copy_(p.mean(0, keepdim=True).expand_as(p))
        by_hand = mixed(x, 0)
    torch.testing.assert_close(one_hot, index, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(half, by_hand, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(half, index, atol=1e-3)


def test_multi_style_net_needs_a_style():
    net = TransformerNet(num_styles=2)
    with pytest.raises(ValueError, match="style"):
        net(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="out of range"):
        net(torch.rand(1, 3, 16, 16), 5)
