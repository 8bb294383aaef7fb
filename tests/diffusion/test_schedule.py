"""The diffusion process: closed-form noising, targets, losses, samplers."""

from __future__ import annotations

import math

import pytest
import torch
from diffusion_testlib import tiny_unet

from stylenorm.diffusion.schedule import Diffusion, guided_denoiser, make_betas
from stylenorm.errors import StylenormError


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_betas_are_valid_and_noise_grows(kind: str) -> None:
    betas = make_betas(kind, 200)
    assert betas.shape == (200,) and bool((betas > 0).all()) and bool((betas < 1).all())
    abar = torch.cumprod(1 - betas, 0)
    assert abar[0] > 0.99 and abar[-1] < 0.01 and bool((abar[1:] < abar[:-1]).all())


def test_unknown_schedule_and_prediction_are_clear_errors() -> None:
    with pytest.raises(StylenormError, match="linear"):
        make_betas("quadratic", 10)
    with pytest.raises(StylenormError, match="eps"):
        Diffusion(prediction="x0")


def test_q_sample_matches_the_product_of_single_steps() -> None:
    diffusion = Diffusion("linear", 100)
    x0, noise = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    t = torch.tensor([0, 37, 99])
    out = diffusion.q_sample(x0, t, noise)
    for i, step in enumerate(t.tolist()):
        abar = math.prod(1 - b for b in diffusion.betas[: step + 1].tolist())
        expected = math.sqrt(abar) * x0[i] + math.sqrt(1 - abar) * noise[i]
        torch.testing.assert_close(out[i], expected, rtol=1e-5, atol=1e-5)


def test_closed_form_matches_running_the_markov_chain() -> None:
    # Iterating x_t = sqrt(1-β_t) x_{t-1} + sqrt(β_t) ε gives mean sqrt(ᾱ_t) x0 and variance 1-ᾱ_t.
    diffusion = Diffusion("cosine", 40)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.full((20000,), 0.7)
    x = x0.clone()
    for beta in diffusion.betas[:25].tolist():
        x = math.sqrt(1 - beta) * x + math.sqrt(beta) * torch.randn(x.shape, generator=generator)
    abar = diffusion.alphas_cumprod[24].item()
    assert abs(x.mean().item() - math.sqrt(abar) * 0.7) < 0.02
    assert abs(x.var().item() - (1 - abar)) < 0.03


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_a_perfect_prediction_recovers_x0_and_has_zero_loss(prediction: str) -> None:
    diffusion = Diffusion("cosine", 100, prediction, min_snr_gamma=5.0)
    x0 = torch.rand(4, 1, 6, 6) * 2 - 1
    noise, t = torch.randn(4, 1, 6, 6), torch.tensor([0, 10, 50, 99])
    x_t = diffusion.q_sample(x0, t, noise)
    target = diffusion.target(x0, t, noise)
    x0_hat, eps_hat = diffusion.split_prediction(target, x_t, t)
    torch.testing.assert_close(x0_hat, x0, atol=1e-3, rtol=1e-3)
    assert diffusion.loss(target, x0, t, noise).item() < 1e-10
    assert diffusion.loss(torch.zeros_like(target), x0, t, noise).item() > 0


def test_min_snr_weighting_down_weights_easy_steps() -> None:
    plain, weighted = Diffusion("cosine", 100), Diffusion("cosine", 100, min_snr_gamma=1.0)
    x0, noise = torch.randn(1, 1, 4, 4), torch.randn(1, 1, 4, 4)
    out, t = torch.zeros(1, 1, 4, 4), torch.tensor([0])  # t=0: SNR ≫ γ
    assert weighted.loss(out, x0, t, noise) < 0.1 * plain.loss(out, x0, t, noise)


def _model():
    torch.manual_seed(0)
    model = tiny_unet().eval()
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    return model


def test_ddim_with_eta_zero_is_deterministic() -> None:
    diffusion, model = Diffusion("cosine", 50), _model()
    denoise = guided_denoiser(model, torch.tensor([1, 2]), 2.0, 10)
    runs = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(7)
        runs.append(diffusion.ddim_sample(denoise, (2, 1, 8, 8), generator, steps=10, eta=0.0))
        # eta = 0 draws only the starting noise: the generator is where one randn leaves it
        after = generator.get_state()
        reference = torch.Generator().manual_seed(7)
        torch.randn((2, 1, 8, 8), generator=reference)
        assert torch.equal(after, reference.get_state())
    assert torch.equal(runs[0], runs[1])
    stochastic = diffusion.ddim_sample(denoise, (2, 1, 8, 8), torch.Generator().manual_seed(7), steps=10, eta=1.0)
    assert not torch.allclose(stochastic, runs[0])


def test_ddim_step_counts_and_ddpm_shapes() -> None:
    diffusion, model = Diffusion("linear", 20), _model()
    denoise = guided_denoiser(model, None, 1.0, 10)
    assert diffusion.ddim_timesteps(5)[0] == 19 and diffusion.ddim_timesteps(5)[-1] == 0
    assert len(diffusion.ddim_timesteps(20)) == 20
    with pytest.raises(StylenormError, match="between 1 and 20"):
        diffusion.ddim_timesteps(21)
    out = diffusion.ddpm_sample(denoise, (2, 1, 8, 8), torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 8, 8) and torch.isfinite(out).all()


def test_guidance_one_is_plain_conditional_and_guidance_extrapolates() -> None:
    model = _model()
    x, t, labels = torch.randn(2, 1, 8, 8), torch.tensor([3, 3]), torch.tensor([4, 5])
    cond = model(x, t, labels)
    uncond = model(x, t, None)
    torch.testing.assert_close(guided_denoiser(model, labels, 1.0, 10)(x, t), cond)
    torch.testing.assert_close(guided_denoiser(model, labels, 3.0, 10)(x, t), uncond + 3.0 * (cond - uncond),
                               atol=1e-5, rtol=1e-5)


def _gaussian_denoiser(diffusion: Diffusion, mean: float, std: float):
    """The exact ε-prediction for data x0 ~ N(mean, std²) per pixel: E[x0 | x_t] in closed form."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a = diffusion.sqrt_abar[t].float().view(-1, 1, 1, 1)
        s = diffusion.sqrt_one_minus_abar[t].float().view(-1, 1, 1, 1)
        x0 = mean + a * std**2 / (a**2 * std**2 + s**2) * (x - a * mean)
        eps = (x - a * x0) / s
        return eps if diffusion.prediction == "eps" else a * eps - s * x0

    return denoise


@pytest.mark.parametrize("schedule,prediction", [("cosine", "eps"), ("linear", "eps"), ("cosine", "v")])
def test_dpmpp_2m_solves_the_probability_flow_ode_to_second_order(schedule: str, prediction: str) -> None:
    """For Gaussian data the ODE's end point is known: x0 = m + s (x_T − α_T m) / sqrt(α_T² s² + σ_T²).
    DDIM (first order) halves its error when the steps double; DPM-Solver++(2M) cuts it by more
    than 3 and ends well below DDIM."""
    mean, std = 0.2, 0.25
    diffusion = Diffusion(schedule, 1000, prediction)
    denoise = _gaussian_denoiser(diffusion, mean, std)
    shape = (64, 1, 4, 4)
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(3)).double()
    a, s = diffusion.sqrt_abar[-1].item(), diffusion.sqrt_one_minus_abar[-1].item()
    exact = mean + std * (x_T - a * mean) / math.sqrt(a**2 * std**2 + s**2)

    def error(sampler, steps: int) -> float:
        out = sampler(denoise, shape, torch.Generator().manual_seed(3), steps=steps).double()
        return float((out - exact).abs().mean())

    ddim = {n: error(diffusion.ddim_sample, n) for n in (20, 40)}
    dpm = {n: error(diffusion.dpmpp_2m_sample, n) for n in (20, 40)}
    assert 1.7 < ddim[20] / ddim[40] < 2.3, ddim
    assert dpm[20] / dpm[40] > 3, dpm
    assert dpm[20] < ddim[20] and dpm[40] < 0.5 * ddim[40], (dpm, ddim)


def test_dpmpp_is_a_sampler_of_generate_and_deterministic() -> None:
    from stylenorm.diffusion.sample import LoadedModel, generate

    diffusion, model = Diffusion("cosine", 50), _model()
    loaded = LoadedModel(model, diffusion, {})
    a = generate(loaded, 3, "dpm++", 5, torch.tensor([1, 2, 3]), 2.0, seed=4)
    b = generate(loaded, 3, "dpm++", 5, torch.tensor([1, 2, 3]), 2.0, seed=4)
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b) and torch.isfinite(a).all()
    with pytest.raises(StylenormError, match="dpm\\+\\+"):
        generate(loaded, 3, "euler", 5)


def test_specks_count_isolated_bright_pixels_not_strokes() -> None:
    from stylenorm.bench.sampling import specks_per_image

    images = -torch.ones(2, 1, 12, 12)
    images[0, 0, 2:9, 5:7] = 1.0  # a stroke
    images[1, 0, 3, 3] = images[1, 0, 8, 9] = 0.5  # two specks
    images[1, 0, 5, 5:7] = 0.5  # a pair counts as two specks (each has one neighbour)
    assert specks_per_image(images[:1]) == 0 and specks_per_image(images[1:]) == 4
