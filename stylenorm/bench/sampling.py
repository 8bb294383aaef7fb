"""`stylenorm bench sampling`: sample quality against step count for each sampler.

Quality is judged by the shipped MNIST feature classifier: the Fréchet distance of
the samples to real digits in its features (lower is better; the row "real digits"
is the floor at this sample count) and the share of samples it labels as the digit
that was asked for. Every sampler starts from the same noise with the same labels. "specks / image" counts isolated bright pixels
(background speckle; `specks_per_image`).
"ddpm" here is ancestral sampling on the step subsequence (DDIM with η = 1); the
full 1000-step DDPM chain is out of reach of a CPU benchmark.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from stylenorm.bench.common import resolve_devices, write_report
from stylenorm.devices import set_threads
from stylenorm.errors import StylenormError

SAMPLERS = {"ddpm": ("ddim", 1.0), "ddim": ("ddim", 0.0), "dpm++": ("dpm++", 0.0),
            "dpm++sde": ("dpm++sde", 0.0)}  # name -> (sampler, eta)
STEPS = (5, 10, 20, 50)
HOLDOUT, HOLDOUT_SEED = 256, 0  # the shipped model's own held-out split (weights/mnist.json)


def specks_per_image(images: torch.Tensor, threshold: float = 0.0) -> float:
    """Isolated bright pixels per image: above `threshold` (mid-grey in [-1, 1]) with at most one
    bright pixel among their 8 neighbours. Pen strokes have many bright neighbours; the background
    speckle of an under-trained or badly finished sampler has none."""
    bright = (images.mean(1, keepdim=True) > threshold).float()
    neighbours = torch.nn.functional.conv2d(bright, torch.ones(1, 1, 3, 3), padding=1) - bright
    return float(((bright > 0) & (neighbours <= 1)).flatten(1).sum(1).float().mean())


@torch.no_grad()
def score(images: torch.Tensor, labels: torch.Tensor, real: torch.Tensor, classifier) -> tuple[float, float]:
    """(Fréchet distance to `real`, share classified as `labels`) in the classifier's features."""
    from stylenorm.metrics import frechet_distance

    feats = torch.cat([classifier.features(b) for b in images.split(500)])
    real_feats = torch.cat([classifier.features(b) for b in real.split(500)])
    predicted = torch.cat([classifier(b).argmax(1) for b in images.split(500)])
    return frechet_distance(feats, real_feats), float((predicted == labels).float().mean())


def run_sampling_benchmark(output: Path, plot: Path | None = None, weights: str | None = None,
                           num_samples: int = HOLDOUT, steps: tuple[int, ...] = STEPS,
                           samplers: tuple[str, ...] = tuple(SAMPLERS), guidance: float = 2.0,
                           device: str | None = "cpu", threads: int | None = None, seed: int = 0) -> list[list]:
    from stylenorm.diffusion.classifier import load_digit_classifier
    from stylenorm.diffusion.data import load_images, split_holdout
    from stylenorm.diffusion.sample import generate, load_diffusion_model

    unknown = [s for s in samplers if s not in SAMPLERS]
    if unknown:
        raise StylenormError(f"unknown sampler(s) {unknown}; use {', '.join(SAMPLERS)}")
    if num_samples < 10 or any(n < 1 for n in steps):
        raise StylenormError("--num-samples must be at least 10 and every step count at least 1")
    set_threads(threads)
    dev = resolve_devices(device)[0]
    loaded = load_diffusion_model(weights, dev)
    classifier = load_digit_classifier()
    data = load_images("mnist5k", loaded.model.config.image_size, loaded.model.config.in_channels)
    _, held = split_holdout(data, HOLDOUT, HOLDOUT_SEED)
    reference = data.images  # all 5000 real digits: the distribution the samples should match
    labels = torch.arange(num_samples) % loaded.model.config.num_classes

    rows: list[list] = []
    real_fd, real_share = score(held.images[:num_samples], held.labels[:num_samples], reference, classifier)
    real_specks = specks_per_image(held.images[:num_samples])
    rows.append(["real digits (held out)", "—", f"{real_fd:.1f}", f"{100 * real_share:.1f}", f"{real_specks:.2f}", "—"])
    curves: dict[str, list[tuple[int, float]]] = {}
    from tqdm.auto import tqdm

    bar = tqdm(total=len(samplers) * sum(steps), desc="bench sampling (steps)", dynamic_ncols=True)
    for name in samplers:
        sampler, eta = SAMPLERS[name]
        for n in steps:
            bar.set_postfix(sampler=name, steps=n, refresh=True)
            started = time.perf_counter()
            images = generate(loaded, num_samples, sampler, n, labels, guidance, eta, seed)
            seconds = time.perf_counter() - started
            fd, share = score(images, labels, reference, classifier)
            curves.setdefault(name, []).append((n, fd))
            rows.append([name, n, f"{fd:.1f}", f"{100 * share:.1f}", f"{specks_per_image(images):.2f}", f"{seconds:.1f}"])
            bar.update(n)
    bar.close()
    notes = [f"{num_samples} samples per row (labels 0-9 in turn, guidance {guidance}, seed {seed}), scored by the shipped "
             "MNIST classifier against all 5000 bundled digits; 'ddpm' is ancestral sampling (DDIM with eta 1) on the "
             "same step subsequence."]
    write_report(output, f"Sampling: quality against steps (guidance {guidance})", ["sampler", "steps", "Fréchet distance", "recognised %",
                                                               "specks / image", f"time ({dev.type}, s)"], rows, devices=[dev], notes=notes)
    if plot is not None:
        save_plot(curves, real_fd, plot)
    return rows


def save_plot(curves: dict[str, list[tuple[int, float]]], floor: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stylenorm.atomic import atomic_output

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=name)
    ax.axhline(floor, color="grey", linestyle="--", label="real digits")
    ax.set_xscale("log")
    ax.set_xticks([p[0] for p in next(iter(curves.values()))])
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("Fréchet distance (classifier features)")
    ax.legend()
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
