import pytest
import torch

from stylenorm.metrics import frechet_distance


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    # Population-exact sets: for diagonal covariances d^2 = |dmu|^2 + sum (sa - sb)^2.
    gen = torch.Generator().manual_seed(1)
    base = torch.randn(4000, 3, generator=gen)
    base = (base - base.mean(0)) / base.std(0)
    base = base @ torch.linalg.inv(torch.linalg.cholesky(torch.cov(base.T))).T  # exact identity covariance
    a = base * torch.tensor([1.0, 2.0, 0.5])
    b = base * torch.tensor([3.0, 2.0, 0.5]) + torch.tensor([1.0, -2.0, 0.0])
    expected = (1 + 4) + (1 - 3) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_distance_grows_with_the_shift():
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(300, 4, generator=gen), torch.randn(300, 4, generator=gen)
    assert frechet_distance(a, b + 0.5) < frechet_distance(a, b + 2.0)


def test_frechet_distance_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="same width"):
        frechet_distance(torch.randn(5, 3), torch.randn(5, 4))
