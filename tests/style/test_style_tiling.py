"""Tiled inference: agrees with the whole-image pass and leaves no seam."""

from __future__ import annotations

import pytest
import torch
from style_testlib import smooth_photo

from stylenorm.errors import StylenormError
from stylenorm.norms import DEFAULT_SPECS, norm_kind
from stylenorm.style.net import TransformerNet
from stylenorm.style.tiling import (
    capture_statistics,
    exact_stylize,
    frozen_statistics,
    shares_image_statistics,
    tiled_stylize,
)


def _net(seed: int = 0, num_styles: int = 1) -> TransformerNet:
    torch.manual_seed(seed)
    net = TransformerNet(num_styles=num_styles).eval()
    with torch.no_grad():  # non-trivial affine parameters so every IN layer matters
        for n, p in net.named_parameters():
            if "norm" in n:
                p.add_(torch.randn_like(p) * 0.3)
    return net


def _photo(h: int, w: int, seed: int = 0) -> torch.Tensor:
    arr = smooth_photo(h, w, seed)
    x = torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 255
    return (x + 0.05 * torch.rand(x.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)


def test_frozen_own_statistics_reproduce_the_plain_forward():
    net, x = _net(), _photo(40, 52)
    stats = capture_statistics(net, x, None)
    assert len(stats) == 15  # every IN layer of the network
    with torch.no_grad():
        plain = net(x)
        with frozen_statistics(net, stats):
            frozen = net(x)
    torch.testing.assert_close(frozen, plain, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("num_styles", [1, 3])
def test_tiled_equals_untiled_with_whole_image_statistics(num_styles):
    net, x = _net(1, num_styles), _photo(150, 172, 3)
    style = None if num_styles == 1 else torch.tensor([0.2, 0.5, 0.3])
    with torch.no_grad():
        full = net(x, style)
    tiled = tiled_stylize(net, x, style, tile=48, margin=64, overlap=8)
    assert tiled.shape == full.shape
    # the margin exceeds the receptive field, so tiles match everywhere, seams included
    torch.testing.assert_close(tiled, full, atol=2e-4, rtol=1e-3)


def _seam_jump(y: torch.Tensor, cols: list[int]) -> float:
    """Mean absolute step between neighbouring columns at the given positions."""
    diffs = (y[..., :, 1:] - y[..., :, :-1]).abs().mean(dim=(0, 1, 2))
    return float(diffs[cols].mean()), float(diffs.median())


def test_no_seam_with_reduced_resolution_statistics():
    net, x = _net(2), _photo(96, 192, 5)
    tile = 48
    boundaries = [tile * k - 1 for k in range(1, 4)]
    # statistics from a half-resolution pass: approximate, but shared by every tile
    tiled = tiled_stylize(net, x, None, tile=tile, margin=64, overlap=8, stats_size=96)
    seam, typical = _seam_jump(tiled, boundaries)
    assert seam < 2 * typical
    # naive tiles (each with its own statistics, no context) do show seams: the test can fail
    with torch.no_grad():
        naive = torch.cat([net(x[..., :, i:i + tile]) for i in range(0, 192, tile)], dim=-1)
    naive_seam, naive_typical = _seam_jump(naive, boundaries)
    assert naive_seam > 2 * naive_typical
    # and the shared statistics keep the tiled result close to the whole-image pass
    with torch.no_grad():
        full = net(x)
    assert (tiled - full).abs().mean() < (naive - full).abs().mean()


def test_tiling_refuses_norms_it_cannot_share():
    net = TransformerNet(norm="gn").eval()
    with pytest.raises(StylenormError, match="--max-size"):
        tiled_stylize(net, torch.rand(1, 3, 32, 32), None, tile=16)


@pytest.mark.parametrize("spec", DEFAULT_SPECS)
def test_every_norm_is_tiled_exactly_or_refused_by_its_kind(spec):
    """Eval-mode bn and none take no statistics from the image and IN's are shared: tiles reproduce the whole
    image. Norms whose statistics mix channels over the whole image are refused, naming the way out."""
    torch.manual_seed(0)
    net, x = TransformerNet(norm=spec).eval(), _photo(64, 96)
    kind = norm_kind(spec)
    if kind.image_statistics and not kind.per_channel:
        with pytest.raises(StylenormError, match=r"cannot stylize in tiles; .*--tile-size 0.*--max-size"):
            tiled_stylize(net, x, None, tile=32)
        assert not shares_image_statistics(spec)
        return
    with torch.no_grad():
        full = net(x)
    torch.testing.assert_close(tiled_stylize(net, x, None, tile=32, margin=64, overlap=8), full, atol=2e-4, rtol=1e-3)
    assert shares_image_statistics(spec) == kind.image_statistics  # then exact_stylize gathers them


def test_exact_tiling_is_chosen_for_instance_norm_however_the_spec_is_written():
    assert shares_image_statistics("IN") and shares_image_statistics("in")


@pytest.mark.parametrize("num_styles,h,w", [(1, 150, 173), (2, 97, 64)])
def test_exact_tiling_equals_the_whole_image_pass_at_any_size(num_styles, h, w):
    """Statistics gathered over all tiles layer by layer: the same picture as one big pass."""
    net, x = _net(4, num_styles), _photo(h, w, 6)
    style = None if num_styles == 1 else 1
    with torch.no_grad():
        full = net(x, style)
    exact = exact_stylize(net, x, style, tile=40, margin=32)
    assert exact.shape == full.shape
    torch.testing.assert_close(exact, full, atol=1e-5, rtol=0)
    # seams: neighbouring columns across tile borders step no more than elsewhere
    seam, typical = _seam_jump(exact, [39, 79, 119] if w > 120 else [39])
    assert seam < 2 * typical
