"""The style losses by name (`--loss gatys|johnson|relative`): layers, Gram normalisation, weights.

Torch-free, so the command line lists the names and defaults without loading torch; the
losses themselves are computed by `stylenorm.style.loss.PerceptualLoss`.
"""

from __future__ import annotations

from dataclasses import dataclass

from stylenorm.errors import StylenormError

OPTIMIZE_ITERATIONS = 150  # the optimisation mode's default budget (L-BFGS loss evaluations)


@dataclass
class LossWeights:
    content: float = 1.0
    style: float = 5.0
    tv: float = 1e-4
    layout: float = 0.0  # of layout_error; 0 leaves it out


@dataclass(frozen=True)
class LossRecipe:
    """One style loss: which VGG16 layers carry style and content, how the Gram error is
    normalised, and the weights that go with that normalisation (each recipe's own scale)."""

    name: str
    style_layers: tuple[str, ...]
    content_layer: str
    weights: LossWeights
    relative_gram: bool  # each layer's Gram error divided by its target's power (the first shipped networks)
    about: str
    # each layer's features divided by their mean activation on photos (Gatys et al.'s normalised VGG);
    # without it a layer's Gram error scales with its activations to the 4th power, and VGG's deep
    # layers, whose activations are ~25x weaker than relu1_1's, weigh ~10^5x less: no large motifs
    normalized_features: bool = False


# Gram matrices are divided by C*H*W in every recipe; "absolute" recipes take the mean squared
# difference of those per layer, averaged over layers (Gatys et al.'s w_l = 1/L). Weights are for
# features in torchvision's units (caffe ones are divided by CAFFE_FEATURE_SCALE), or, with
# normalized_features, in units of each layer's mean activation on photos.
LOSS_RECIPES = {
    "gatys": LossRecipe(
        "gatys", ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"), "relu4_2",
        LossWeights(content=1.0, style=1e5, tv=0.0), False,
        "Gatys et al. 2016: style Gram at relu1_1 ... relu5_1, content at relu4_2, on the normalised VGG "
        "(the optimisation mode's)", normalized_features=True),
    "johnson": LossRecipe(
        "johnson", ("relu1_2", "relu2_2", "relu3_3", "relu4_3"), "relu2_2",
        LossWeights(content=1.0, style=1e6, tv=0.01), False,
        "Johnson et al. 2016: style Gram at relu1_2, relu2_2, relu3_3, relu4_3, content at relu2_2 (the networks')"),
    "relative": LossRecipe(
        "relative", ("relu1_2", "relu2_2", "relu3_3", "relu4_3"), "relu2_2",
        LossWeights(content=1.0, style=5.0, tv=1e-4), True,
        "each layer's Gram error relative to the painting's (the loss of the networks shipped before 'johnson'; "
        "it loses the palette: kept to reproduce them and the style ablation)"),
}
LOSS_NAMES = tuple(LOSS_RECIPES)


def loss_recipe(name: str) -> LossRecipe:
    if name not in LOSS_RECIPES:
        raise StylenormError(f"unknown loss {name!r}; use one of {', '.join(LOSS_NAMES)}")
    return LOSS_RECIPES[name]
