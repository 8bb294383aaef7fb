"""Noise schedules, the forward process, the training loss and the DDPM / DDIM / DPM-Solver++ samplers."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from stylenorm.errors import StylenormError

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t) -> model output


def make_betas(kind: str, num_steps: int) -> torch.Tensor:
    """β_1..β_T in float64: 'linear' (Ho et al. 2020) or 'cosine' (Nichol & Dhariwal 2021)."""
    if num_steps < 1:
        raise StylenormError(f"the number of diffusion steps must be positive, got {num_steps}")
    if kind == "linear":
        # Scaled so that other step counts keep the same total noise as T=1000.
        scale = 1000 / num_steps
        return torch.linspace(scale * 1e-4, scale * 0.02, num_steps, dtype=torch.float64)
    if kind == "cosine":
        s = 0.008
        x = torch.linspace(0, num_steps, num_steps + 1, dtype=torch.float64)
        abar = torch.cos(((x / num_steps) + s) / (1 + s) * math.pi / 2) ** 2
        abar = abar / abar[0]
        return (1 - abar[1:] / abar[:-1]).clamp(max=0.999)
    raise StylenormError(f"unknown beta schedule {kind!r}; use 'linear' or 'cosine'")


def _gather(values: torch.Tensor, t: torch.Tensor, ndim: int) -> torch.Tensor:
    """values[t] shaped to broadcast against a (N, C, H, W) batch."""
    return values.to(t.device)[t].float().view(-1, *([1] * (ndim - 1)))


class Diffusion:
    """The Gaussian diffusion process with ε- or v-prediction."""

    def __init__(self, schedule: str = "cosine", num_steps: int = 1000, prediction: str = "eps",
                 min_snr_gamma: float | None = None) -> None:
        if prediction not in ("eps", "v"):
            raise StylenormError(f"unknown prediction target {prediction!r}; use 'eps' or 'v'")
        self.schedule = schedule
        self.num_steps = num_steps
        self.prediction = prediction
        self.min_snr_gamma = min_snr_gamma
        self.betas = make_betas(schedule, num_steps)
        self.alphas_cumprod = torch.cumprod(1 - self.betas, dim=0)
        self.sqrt_abar = self.alphas_cumprod.sqrt()
        self.sqrt_one_minus_abar = (1 - self.alphas_cumprod).sqrt()
        self.snr = self.alphas_cumprod / (1 - self.alphas_cumprod)

    # ---- forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, the closed form of t noising steps."""
        return _gather(self.sqrt_abar, t, x0.dim()) * x0 + _gather(self.sqrt_one_minus_abar, t, x0.dim()) * noise

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        if self.prediction == "eps":
            return noise
        # v = sqrt(ᾱ) ε − sqrt(1−ᾱ) x0 (Salimans & Ho 2022)
        return _gather(self.sqrt_abar, t, x0.dim()) * noise - _gather(self.sqrt_one_minus_abar, t, x0.dim()) * x0

    def loss(self, model_output: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Mean squared error to the target, optionally min-SNR-γ weighted (Hang et al. 2023)."""
        per_sample = F.mse_loss(model_output.float(), self.target(x0, t, noise).float(), reduction="none")
        per_sample = per_sample.flatten(1).mean(1)
        if self.min_snr_gamma:
            snr = self.snr.to(t.device)[t].float()
            clipped = snr.clamp(max=self.min_snr_gamma)
            # Expressed in x0-space the MSE weights are SNR (eps) and SNR+1 (v); min-SNR caps them at γ.
            weight = clipped / snr if self.prediction == "eps" else clipped / (snr + 1)
            per_sample = per_sample * weight
        return per_sample.mean()

    # ---- reverse process helpers
    def split_prediction(self, output: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(x0, ε) predicted from a model output at x_t; x0 clipped to the data range [-1, 1]."""
        a = _gather(self.sqrt_abar, t, x_t.dim())
        s = _gather(self.sqrt_one_minus_abar, t, x_t.dim())
        if self.prediction == "eps":
            x0 = (x_t - s * output) / a
        else:
            x0 = a * x_t - s * output
        x0 = x0.clamp(-1, 1)
        eps = (x_t - a * x0) / s
        return x0, eps

    @torch.no_grad()
    def ddpm_sample(self, denoiser: Denoiser, shape: tuple[int, ...], generator: torch.Generator,
                    device: torch.device | str = "cpu", progress: bool = False) -> torch.Tensor:
        """Ancestral sampling through all T steps with the posterior variance β̃_t."""
        x = torch.randn(shape, generator=generator, device="cpu").to(device)
        abar = self.alphas_cumprod
        abar_prev = torch.cat([torch.ones(1, dtype=abar.dtype), abar[:-1]])
        for i in tqdm(range(self.num_steps - 1, -1, -1), desc="DDPM", disable=not progress, leave=False):
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            x0, _ = self.split_prediction(denoiser(x, t), x, t)
            beta, ab, abp = self.betas[i].item(), abar[i].item(), abar_prev[i].item()
            mean = (math.sqrt(abp) * beta / (1 - ab)) * x0 + (math.sqrt(1 - beta) * (1 - abp) / (1 - ab)) * x
            if i > 0:
                var = beta * (1 - abp) / (1 - ab)
                noise = torch.randn(shape, generator=generator, device="cpu").to(device)
                x = mean + math.sqrt(var) * noise
            else:
                x = mean
        return x

    def ddim_timesteps(self, steps: int) -> list[int]:
        if not 1 <= steps <= self.num_steps:
            raise StylenormError(f"DDIM needs between 1 and {self.num_steps} steps, got {steps}")
        # Evenly spaced, always ending at the last training step (pure noise).
        return sorted({round(x) for x in torch.linspace(0, self.num_steps - 1, steps).tolist()}, reverse=True)

    @torch.no_grad()
    def ddim_sample(self, denoiser: Denoiser, shape: tuple[int, ...], generator: torch.Generator,
                    steps: int = 50, eta: float = 0.0, device: torch.device | str = "cpu",
                    progress: bool = False) -> torch.Tensor:
        """DDIM (Song et al. 2021): deterministic for eta=0, DDPM-like noise for eta=1."""
        timesteps = self.ddim_timesteps(steps)
        x = torch.randn(shape, generator=generator, device="cpu").to(device)
        abar = self.alphas_cumprod
        for k, i in enumerate(tqdm(timesteps, desc="DDIM", disable=not progress, leave=False)):
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            x0, eps = self.split_prediction(denoiser(x, t), x, t)
            ab = abar[i].item()
            ab_prev = abar[timesteps[k + 1]].item() if k + 1 < len(timesteps) else 1.0
            sigma = eta * math.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
            x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1 - ab_prev - sigma**2, 0.0)) * eps
            if sigma > 0:
                x = x + sigma * torch.randn(shape, generator=generator, device="cpu").to(device)
        return x

    @torch.no_grad()
    def dpmpp_2m_sample(self, denoiser: Denoiser, shape: tuple[int, ...], generator: torch.Generator,
                        steps: int = 10, device: torch.device | str = "cpu", progress: bool = False,
                        lower_order_final: bool = True, stochastic: bool = False) -> torch.Tensor:
        """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2), multistep, in data prediction.

        With α = sqrt(ᾱ), σ = sqrt(1 - ᾱ), λ = log(α / σ) and h = λ_t − λ_s, one step is
        x_t = (σ_t / σ_s) x_s − α_t (e^{−h} − 1) D, where D is the x0 prediction at s
        (first order, the first step) or (1 + 1/2r) x0_s − (1/2r) x0_prev with r = h_prev / h
        (second order). The x0 predictions are clipped to [-1, 1] as in the other samplers.
        The same time steps as DDIM; the last evaluation (t = 0) returns its x0 prediction.
        """
        timesteps = self.ddim_timesteps(steps)
        x = torch.randn(shape, generator=generator, device="cpu").to(device)
        abar = self.alphas_cumprod
        alpha = lambda i: math.sqrt(abar[i].item())  # noqa: E731
        sigma = lambda i: math.sqrt(1 - abar[i].item())  # noqa: E731
        lam = lambda i: math.log(alpha(i) / sigma(i))  # noqa: E731
        previous: tuple[torch.Tensor, float] | None = None  # (x0 prediction, h) of the step before
        for k, i in enumerate(tqdm(timesteps, desc="DPM++ 2M SDE" if stochastic else "DPM++ 2M", disable=not progress, leave=False)):
            t = torch.full((shape[0],), i, device=device, dtype=torch.long)
            x0, _ = self.split_prediction(denoiser(x, t), x, t)
            if k + 1 == len(timesteps):
                return x0
            j = timesteps[k + 1]
            h = lam(j) - lam(i)
            if previous is None or (lower_order_final and k + 2 == len(timesteps)):
                d = x0
            else:
                r = previous[1] / h
                d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * previous[0]
            if stochastic:
                # the SDE variant (Lu et al. 2022, DPM-Solver++(2M) SDE): e^{-h} more of x_s is
                # replaced by fresh noise, which corrects errors the ODE would carry to the end
                noise = torch.randn(shape, generator=generator, device="cpu").to(device)
                x = ((sigma(j) / sigma(i)) * math.exp(-h) * x - alpha(j) * math.expm1(-2 * h) * d
                     + sigma(j) * math.sqrt(-math.expm1(-2 * h)) * noise)
            else:
                x = (sigma(j) / sigma(i)) * x - alpha(j) * math.expm1(-h) * d
            previous = (x0, h)
        return x


def guided_denoiser(model: torch.nn.Module, labels: torch.Tensor | None, guidance: float,
                    num_classes: int) -> Denoiser:
    """Wrap a model as (x_t, t) -> output with classifier-free guidance.

    guidance w gives out = uncond + w (cond − uncond); w = 1 is plain conditional
    sampling and skips the unconditional pass.
    """
    if labels is None or num_classes == 0 or guidance == 1.0:
        return lambda x, t: model(x, t, labels)
    null = torch.full_like(labels, num_classes)

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = model(torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, null]))
        cond, uncond = out.chunk(2)
        return uncond + guidance * (cond - uncond)

    return denoise
