"""The options of `stylenorm stylize` (StylizeOptions) and `stylenorm train-style` (StyleTrainConfig,
which add-style fills in): one field each.

Torch-free, so `--help` builds its options from these fields quickly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from stylenorm.config import DEFAULT_MAX_PIXELS, HELP_FORCE, HELP_RESUME, HELP_USER_WEIGHTS, LoopSettings, setting
from stylenorm.errors import StylenormError
from stylenorm.norm_specs import SPEC_HELP
from stylenorm.style.loss_recipes import LOSS_NAMES, OPTIMIZE_ITERATIONS, loss_recipe

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
VGG_FORMATS = ("auto", "caffe", "torchvision")
# Every photo is stylized with its long side at this size (divided by --style-scale) and resized
# back, so brush strokes take the same fraction of the picture whatever its size: the networks
# learned their motifs' size in pixels (256 px crops of whole photos), so a 400 px portrait
# stylized as it was got strokes as big as its faces, and a 12 MP photo pixel-sized ones. 512 px
# was chosen by looking at the shipped networks on the demo photos (docs/style.md); 1024 px gave
# a fine embossed texture.
STYLE_REFERENCE_SIZE = 512


STABILIZE_MODES = ("norm", "flow", "none")
# flow, because `stylenorm bench video` measured norm alone at 1.00-1.01x the per-frame
# warping error (the flicker of these networks is local brush texture, not frame tone)
# and flow at 0.14-0.25x with the strength kept within 3 % (docs/video.md).
DEFAULT_STABILIZE = "flow"


@dataclass
class StylizeOptions:
    """How `stylize` paints (which style is --style's): one field each, read by the command line, by
    photos, clips and the any-painting mode alike, and by the web page."""

    max_size: int | None = setting(None, help="Shrink so the longest side is at most this.")
    strength: float = setting(1.0, help="1 = full style, 0 = the original photo.")
    preserve_color: bool = setting(False, help="Keep the photo's colours, transfer only luminance.")
    style_scale: float = setting(1.0, help=f"Brush-stroke size relative to the picture: 2 = twice as big, 0.5 = half "
                                           f"(every photo is stylized at {STYLE_REFERENCE_SIZE} px / scale on its long "
                                           "side, then resized back; any painting: the painting analysed at the photo's "
                                           "size x scale).")
    tile_size: int | None = setting(None, help="Process in tiles of this size (default: automatic for large photos; "
                                               "0 never).")
    max_pixels: int = setting(DEFAULT_MAX_PIXELS, help="Refuse larger images (decompression-bomb guard); 0 = no limit.")
    precision: str = setting("auto", help="auto (bf16 where the device computes it natively, else fp32), fp32, bf16 "
                                          "or fp16 (GPUs).")
    # clips
    stabilize: str = setting(DEFAULT_STABILIZE, help="Clips: flow (IN statistics carried across frames + blending "
                                                     "along optical flow), norm (the statistics only) or none (per frame).")
    frames: bool = setting(False, help="Clips as folders of numbered frames: folder inputs are one clip each, and clip "
                                       "outputs are frame folders unless -o names a clip file.")
    fps: float | None = setting(None, help="Frame rate of a frame-folder input (default 25).")
    # --style PAINTING.jpg: the optimisation
    loss: str = setting("gatys", help=f"--style PAINTING.jpg: the loss optimized ({', '.join(LOSS_NAMES)}).")
    iterations: int | None = setting(None, help="--style PAINTING.jpg: loss evaluations of the optimization "
                                                f"(default {OPTIMIZE_ITERATIONS}).")
    style_weight: float | None = setting(None, help="--style PAINTING.jpg: weight of the painting's Gram loss "
                                                    "(default: the loss's own).")
    vgg_weights: str | None = setting(None, help="--style PAINTING.jpg: local VGG16 file (default: torchvision's, "
                                                 "downloaded once).")
    vgg_format: str = setting("auto", help="auto, caffe or torchvision.")

    def __post_init__(self) -> None:
        if self.stabilize not in STABILIZE_MODES:
            raise StylenormError(f"--stabilize {self.stabilize!r} is not a mode; use one of {', '.join(STABILIZE_MODES)}")
        check_strength(self.strength)
        check_style_scale(self.style_scale)
        if self.max_pixels < 0:
            raise StylenormError(f"--max-pixels {self.max_pixels} is negative; pass a pixel count, or 0 for no limit")
        if self.fps is not None and self.fps <= 0:
            raise StylenormError(f"--fps {self.fps} must be positive")
        check_vgg_format(self.vgg_format)


@dataclass
class StyleTrainConfig(LoopSettings):
    """train-style's options; the loop's (steps, lr, --run-dir: default runs/style/<name>, ...) are LoopSettings'."""

    # --style, not --styles: the option is given once per painting
    styles: list[str] = setting(default_factory=list, flag="--style", repeat=True,
                                help="Style image (repeat for a multi-style network); its file name names the style.")
    data: str | None = setting(None, help="Folder of content photos.")
    holdout: int = setting(0, help="Photos of --data never trained on (a fixed split, the same for every seed).")
    name: str = setting("style",
                        help=f"Model name; without -o the weights go to <name>.safetensors in {HELP_USER_WEIGHTS}.")
    output: str | None = setting(None, short="-o",
                                 help=f"Weights file to write; default: <name>.safetensors in {HELP_USER_WEIGHTS}.")
    force: bool = setting(False, help=HELP_FORCE)
    norm: str = setting("in", help=f"Norm spec: {SPEC_HELP}.")
    image_size: int = setting(256, help="Square training crop size.")
    style_size: int = setting(320, help="Longest side of the style images.")
    photo_size: int | None = setting(None, help="Longest side the photos are resized to before the crop (default: "
                                                "short side to the crop size); 512, stylize's working size, trains "
                                                "at the scale stylize paints.")
    batch_size: int = setting(1, help="Photos per style per step (per process).")
    loss: str = setting("johnson", help=f"Style loss: {', '.join(LOSS_NAMES)} (style/loss_recipes.py); "
                                        "it sets the layers and the weights not given.")
    content_weight: float | None = setting(None, help="Weight of the content (feature) loss (default: the loss's).")
    style_weight: float | None = setting(None, help="Weight of the style (Gram) loss (default: the loss's).")
    tv_weight: float | None = setting(None, help="Weight of the total-variation loss (default: the loss's).")
    layout_weight: float = setting(0.0, help="Weight of the layout loss: the photo's light and dark areas "
                                             "(luminance over 8 px cells) kept, palette and texture free.")
    content_layer: str | None = setting(None, help="VGG16 layer of the content loss (default: the loss's).")
    style_layers: list[str] | None = setting(None, help="VGG16 layers of the style loss, comma-separated (default: the loss's).")
    style_scales: list[float] = setting(default_factory=lambda: [1.0],
                                        help="Gram loss also on the output resized by these, e.g. 1,0.5.")
    init_weights: str | None = setting(None, help="Start from a trained network with the same styles (fine-tuning).")
    # add-style: a multi-style network extended by `styles`; only the new styles' gamma/beta are
    # trained (Dumoulin et al. 2017), every other weight, the existing styles' rows included, stays as it was
    add_to: str | None = setting(None, help="Multi-style network to extend, training only the new styles' gamma/beta "
                                            "(what add-style does).")
    vgg_weights: str | None = setting(None, help="Local VGG16 file (torchvision or caffe format).")
    vgg_format: str = setting("auto", help="auto, caffe or torchvision.")
    preview_size: int = setting(256, help="Size of the preview photos.")
    # --preview-image, given once per photo, as --style
    preview_images: list[str] = setting(
        default_factory=lambda: [str(DEMO_DIR / "chelsea.png"), str(DEMO_DIR / "astronaut.png")],
        flag="--preview-image", repeat=True, help="Photo of the preview grids (repeat; default: two demo photos).")
    resume: str | None = setting(None, help=HELP_RESUME)
    half: bool = setting(True, help="Store the final weights as float16 (half the size, same pictures).")
    notes: str | None = setting(None, help="Free text for the model card (how and why it was trained this way).")

    def with_loss_defaults(self) -> "StyleTrainConfig":
        """A copy where every loss option left out (None) holds the `loss` recipe's value."""
        recipe = loss_recipe(self.loss)
        return replace(
            self,
            content_weight=recipe.weights.content if self.content_weight is None else self.content_weight,
            style_weight=recipe.weights.style if self.style_weight is None else self.style_weight,
            tv_weight=recipe.weights.tv if self.tv_weight is None else self.tv_weight,
            content_layer=self.content_layer or recipe.content_layer,
            style_layers=list(self.style_layers or recipe.style_layers),
        )


def check_strength(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise StylenormError(f"--strength {value} is outside 0..1; use 1 for full style, 0.5 for half")
    return value


def check_style_scale(value: float) -> float:
    if not 0.1 <= value <= 10:
        raise StylenormError(f"--style-scale {value} is outside 0.1..10; 2 gives strokes twice as big, 0.5 half as big")
    return value


def check_vgg_format(value: str) -> str:
    """--vgg-format is one of VGG_FORMATS, checked where it is read, also when no VGG is loaded
    (--vgg-format banana was accepted wherever the loss network was not needed)."""
    if value not in VGG_FORMATS:
        raise StylenormError(f"--vgg-format {value!r} is not a VGG16 format; use {', '.join(VGG_FORMATS)}")
    return value
