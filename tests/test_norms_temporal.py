"""The temporal (cross-frame) mode of InstanceNorm: carried statistics, resets, and nothing changed when off."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stylenorm.norms import InstanceNorm, NormSpecError, temporal_instance_norm
from stylenorm.style.net import TransformerNet


def manual(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, layer: InstanceNorm) -> torch.Tensor:
    y = (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + layer.eps)
    return y * layer.weight.view(1, -1, 1, 1) + layer.bias.view(1, -1, 1, 1)


def test_carried_statistics_follow_the_moving_average_and_reset_restarts(one_thread):
    torch.manual_seed(0)
    layer = InstanceNorm(4)
    with torch.no_grad():
        layer.weight.uniform_(0.5, 2)
        layer.bias.normal_()
    a, b = torch.randn(1, 4, 6, 5) * 3 + 1, torch.randn(1, 4, 6, 5) - 2
    def stats(x):
        return (x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False))
    (ma, va), (mb, vb) = stats(a), stats(b)
    with torch.no_grad(), temporal_instance_norm(layer, momentum=0.25) as reset:
        first = layer(a)
        second = layer(b)
        reset()
        after_reset = layer(b)
    torch.testing.assert_close(first, manual(a, ma, va, layer))  # the first frame: its own statistics
    torch.testing.assert_close(second, manual(b, 0.75 * ma + 0.25 * mb, 0.75 * va + 0.25 * vb, layer))
    torch.testing.assert_close(after_reset, manual(b, mb, vb, layer))
    assert layer.temporal is None  # switched off on exit


def test_a_batch_is_frames_in_time_order_and_momentum_one_is_per_frame_in(one_thread):
    torch.manual_seed(1)
    layer = InstanceNorm(3)
    clip = torch.randn(4, 3, 5, 7) * torch.arange(1, 5).view(4, 1, 1, 1)
    with torch.no_grad():
        with temporal_instance_norm(layer, 0.3):
            batch = layer(clip)
        with temporal_instance_norm(layer, 0.3):
            one_by_one = torch.cat([layer(frame[None]) for frame in clip])
        with temporal_instance_norm(layer, 1.0):
            per_frame = layer(clip)
    torch.testing.assert_close(batch, one_by_one)
    torch.testing.assert_close(per_frame, F.group_norm(clip, 3, layer.weight, layer.bias, layer.eps), rtol=1e-5,
                               atol=1e-5)
    assert not torch.allclose(batch, per_frame, atol=1e-3)


def test_off_the_network_is_bit_identical_and_every_in_layer_takes_part(one_thread):
    torch.manual_seed(2)
    net = TransformerNet(num_styles=2).eval()
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        before = net(x, 1)
        with temporal_instance_norm(net, 0.5):
            layers = [m for m in net.modules() if isinstance(m, InstanceNorm)]
            assert len(layers) == 15 and all(m.temporal is not None for m in layers)  # conditional ones included
            inside_first = net(x, 1)
            inside_second = net(x * 0.5 + 0.2, 1)
        after = net(x, 1)
    assert torch.equal(before, after)
    torch.testing.assert_close(inside_first, before, rtol=1e-4, atol=1e-5)  # first frame: own statistics
    plain_second = net(x * 0.5 + 0.2, 1)
    assert not torch.allclose(inside_second, plain_second, atol=1e-4)  # the second one: carried statistics


def test_networks_without_instance_norm_and_bad_momentum_are_refused():
    with pytest.raises(NormSpecError, match="--stabilize flow or none"):
        with temporal_instance_norm(TransformerNet(norm="gn"), 0.1):
            pass
    with pytest.raises(NormSpecError, match="momentum"):
        with temporal_instance_norm(InstanceNorm(2), 0.0):
            pass
