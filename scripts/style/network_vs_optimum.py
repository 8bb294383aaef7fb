"""Is a style network short of training, or at its loss's optimum? Its loss against L-BFGS's.

    python scripts/style/network_vs_optimum.py WEIGHTS PHOTO [STYLE ...]

For each style of WEIGHTS (default: all) the network's training loss, as its card records it
(layers, weights, painting size, layout term), on the central 256 px crop of PHOTO; then the same
loss minimised directly over the pixels with L-BFGS from the photo (300 evaluations, one thread).
A network whose loss is already at or below the optimiser's cannot be improved by more steps of
that loss: what it paints is that loss's answer. Run from the repository root with ../shared beside it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from stylenorm.checkpoints import read_card
from stylenorm.style.data import center_crop, load_style_image
from stylenorm.style.loss import LossWeights, PerceptualLoss, load_vgg
from stylenorm.style.loss_recipes import loss_recipe
from stylenorm.style.stylize import load_style_model

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
CROP = 256
EVALUATIONS = 300


def main() -> None:
    weights, photo_path, chosen = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
    torch.set_num_threads(1)
    card = read_card(weights)
    model = load_style_model(weights)
    layers = sorted(set(card["style_layers"]) | {card["content_layer"]})
    vgg, _ = load_vgg(SHARED / "vgg16-caffe-hed.safetensors", "auto", layers)
    w = card["loss_weights"]
    paintings = [load_style_image(SHARED / "styles" / name, card["style_size"]) for name in card["style_images"]]
    recipe = loss_recipe(card.get("loss", "relative"))  # cards before `loss` existed were trained with 'relative'
    loss = PerceptualLoss(vgg, paintings, card["style_layers"], card["content_layer"],
                          LossWeights(w["content"], w["style"], w["tv"], w.get("layout", 0.0)),
                          relative_gram=recipe.relative_gram, normalized_features=recipe.normalized_features)
    photo = center_crop(photo_path, CROP).unsqueeze(0).contiguous()
    for index, name in enumerate(model.names):
        if chosen and name not in chosen:
            continue
        style = torch.tensor([index])
        with torch.no_grad():
            network = float(loss(model.net(photo, index).float(), photo, style)["total"])
        x = photo.clone().requires_grad_(True)
        optimizer = torch.optim.LBFGS([x], max_iter=EVALUATIONS, history_size=50)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            total = loss(x, photo, style)["total"]
            total.backward()
            return total

        started = time.perf_counter()
        optimizer.step(closure)
        with torch.no_grad():
            optimum = float(loss(x.clamp(0, 1), photo, style)["total"])
        print(f"{name}: network {network:.4g}, L-BFGS from the photo {optimum:.4g} "
              f"({EVALUATIONS} evaluations, {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
