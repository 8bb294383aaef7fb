"""`stylenorm eval-style`: how much a style network looks like its paintings, measured.

A per-layer Gram loss on the training VGG does not tell a painting from a fine
texture with the painting's statistics, so every style is scored three ways on
photos the network never trained on, each photo resized to EVAL_WIDTH px wide:

- style match: each VGG layer's Gram error relative to the painting's Gram
  (relu1_2 ... relu4_3), averaged over the layers and over two analysis widths
  (the output and the painting both resized to 512 and to 256 px wide), so the
  painting's large motifs count as much as its fine texture. Lower is better.
- strength: how far the output moved from the photo in VGG features: the
  relative distance ||F(out) - F(photo)|| / ||F(photo)|| at relu2_2 and relu3_3,
  averaged. 0 is the photo itself. Beside it, the painting's own strength: the
  same distance with the painting itself (resized to cover the photo, centre
  crop) in the photo's place, the strength of a total replacement. An output
  whose Gram matrices match the painting's has the painting's feature energy,
  so this is about as far as a faithful style moves a photo on this measure.
- structure kept: Pearson correlation with the photo, at 32 px wide, of the
  luminance and of the luminance edges (Sobel gradient magnitude). 1 is the
  photo's layout exactly; published feed-forward outputs sit at about 0.5-0.9.

Three more that no training loss here optimises, so a network cannot game them:

- palette: sliced Wasserstein distance between the output's colours and the
  painting's in CIE Lab (Lab units; lower is closer), beside the photo's own
  distance. A texture filter that keeps the photo's colours stays near the latter.
- deep style: the relu5_1 Gram error relative to the painting's, at 256 px wide
  (motifs at the scale of objects; the losses stop at relu4_3 or use relu5_1 from
  another photo entirely).
- fine structure: the edge correlation with the photo at 128 px wide (faces,
  windows), where the 32 px one only sees the layout.

Plus a contact sheet: one row per photo (the photo, then each style), the
paintings on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from stylenorm.devices import set_threads
from stylenorm.errors import StylenormError
from stylenorm.images import list_images, load_image, to_tensor, to_uint8
from stylenorm.style.config import DEMO_DIR
from stylenorm.style.data import ContentPhotos, load_style_image
from stylenorm.style.loss import VGGFeatures, gram_matrix
from stylenorm.style.loss_recipes import OPTIMIZE_ITERATIONS
from stylenorm.style.optimize import OPTIMIZE_SIZE, OptimizeOptions, is_painting_file, load_loss_network, optimize_image

EVAL_WIDTH = 512  # photos are stylized at this width
ANALYSIS_WIDTHS = (512, 256)
GRAM_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
DEEP_LAYER = "relu5_1"  # no training loss of ours uses it: motifs at the scale of objects
EVAL_LAYERS = GRAM_LAYERS + (DEEP_LAYER,)
STRENGTH_LAYERS = ("relu2_2", "relu3_3")
STRUCTURE_WIDTH = 32
FINE_STRUCTURE_WIDTH = 128  # edges at this width: eyes, windows, lettering
METRICS = ("style_match", "style_match_512", "style_match_256", "deep_style", "palette", "photo_palette", "strength",
           "painting_strength", "structure_luma", "structure_edges", "structure_fine")


@dataclass
class PhotoScore:
    style_match_512: float
    style_match_256: float
    strength: float
    painting_strength: float  # the painting itself in the photo's place (a reference, not the output's)
    structure_luma: float
    structure_edges: float
    deep_style: float  # relu5_1 Gram error relative to the painting's, at 256 px wide
    palette: float  # sliced Wasserstein distance to the painting's colours in Lab
    photo_palette: float  # the photo's own distance to them (where the output started)
    structure_fine: float  # edge correlation with the photo at FINE_STRUCTURE_WIDTH

    @property
    def style_match(self) -> float:
        return (self.style_match_512 + self.style_match_256) / 2


def resize_to_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """(N, C, H, W) to `width` px wide, aspect kept, antialiased."""
    h, w = x.shape[-2:]
    if w == width:
        return x
    height = max(1, round(h * width / w))
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def load_photo(path: str | Path, width: int = EVAL_WIDTH) -> torch.Tensor:
    """A photo as (1, 3, H, width) in [0, 1]."""
    rgb = load_image(path).rgb
    h, w = rgb.shape[:2]
    img = Image.fromarray(rgb).resize((width, max(1, round(h * width / w))), Image.LANCZOS)
    return to_tensor(np.asarray(img))


def _edges(luma: torch.Tensor) -> torch.Tensor:
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    padded = F.pad(luma, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx)
    gy = F.conv2d(padded, kx.transpose(-1, -2))
    return (gx.square() + gy.square()).sqrt()


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = (a.norm() * b.norm()).item()
    return float((a @ b).item() / denom) if denom > 0 else 0.0


def srgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) sRGB in [0, 1] -> CIE Lab (D65), L in 0..100."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = torch.tensor([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], dtype=rgb.dtype)
    xyz = torch.einsum("ij,njhw->nihw", m, linear) / torch.tensor([0.95047, 1.0, 1.08883], dtype=rgb.dtype).view(1, 3, 1, 1)
    f = torch.where(xyz > (6 / 29) ** 3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], dim=1)


def palette_distance(a: torch.Tensor, b: torch.Tensor, projections: int = 64, samples: int = 4096) -> float:
    """Sliced Wasserstein-1 distance between the colours of two pictures in CIE Lab (Lab units).

    Each picture's pixels are a cloud of colours; the distance is the mean, over fixed random
    directions, of the gap between the two clouds' sorted projections. Position-free, so it
    measures the palette, darks and lights included, and nothing the Gram loss optimises directly."""
    g = torch.Generator().manual_seed(0)  # the same directions and samples for every call: comparable numbers

    def cloud(x: torch.Tensor) -> torch.Tensor:
        lab = srgb_to_lab(x.double().clamp(0, 1)).permute(0, 2, 3, 1).reshape(-1, 3)
        index = torch.randint(0, len(lab), (samples,), generator=g)
        return lab[index]

    ca, cb = cloud(a), cloud(b)
    directions = F.normalize(torch.randn(3, projections, generator=g, dtype=torch.float64), dim=0)
    pa, pb = (ca @ directions).sort(dim=0).values, (cb @ directions).sort(dim=0).values
    return float((pa - pb).abs().mean())


def structure_scores(output: torch.Tensor, photo: torch.Tensor, width: int = STRUCTURE_WIDTH) -> tuple[float, float]:
    """(luminance correlation, edge correlation) with the photo at `width` px wide."""
    from stylenorm.style.stylize import luminance

    lo, lp = luminance(resize_to_width(output, width)), luminance(resize_to_width(photo, width))
    return _correlation(lo, lp), _correlation(_edges(lo), _edges(lp))


def cover_crop(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) resized to cover `size` (aspect kept) and centre-cropped to it."""
    height, width = size
    h, w = image.shape[-2:]
    scale = max(height / h, width / w)
    resized = F.interpolate(image, size=(max(height, round(h * scale)), max(width, round(w * scale))),
                            mode="bilinear", align_corners=False, antialias=True)
    top, left = (resized.shape[-2] - height) // 2, (resized.shape[-1] - width) // 2
    return resized[..., top:top + height, left:left + width]


def feature_distance(feats: dict[str, torch.Tensor], photo_feats: dict[str, torch.Tensor]) -> float:
    """Strength: ||F(x) - F(photo)|| / ||F(photo)|| averaged over STRENGTH_LAYERS."""
    return float(np.mean([float((feats[k] - photo_feats[k]).norm() / photo_feats[k].norm().clamp_min(1e-12))
                          for k in STRENGTH_LAYERS]))


class StyleScorer:
    """Scores outputs against one set of paintings with one loss network (VGGFeatures)."""

    def __init__(self, vgg: VGGFeatures, paintings: dict[str, torch.Tensor]) -> None:
        missing = [name for name in EVAL_LAYERS if name not in vgg.layers]
        if missing:
            raise StylenormError(f"the evaluation VGG lacks {missing}; build it with layers {list(EVAL_LAYERS)}")
        self.vgg = vgg
        self.paintings = paintings
        self.targets: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
        with torch.no_grad():
            for name, painting in paintings.items():
                for width in ANALYSIS_WIDTHS:
                    feats = vgg(resize_to_width(painting, width), upto=EVAL_LAYERS)
                    self.targets[(name, width)] = {k: gram_matrix(v.float())[0] for k, v in feats.items()}

    def _gram_error(self, feats: dict[str, torch.Tensor], style: str, width: int,
                    layers: Sequence[str] = GRAM_LAYERS) -> float:
        errors = []
        for layer in layers:
            target = self.targets[(style, width)][layer]
            g = gram_matrix(feats[layer].float())[0]
            errors.append(float((g - target).pow(2).mean() / target.pow(2).mean().clamp_min(1e-30)))
        return float(np.mean(errors))

    def photo_features(self, photo: torch.Tensor) -> dict[str, torch.Tensor]:
        """The photo's features for `score` (computed once per photo, reused for every style)."""
        return self.vgg(photo, upto=STRENGTH_LAYERS)

    @torch.no_grad()
    def score(self, output: torch.Tensor, photo: torch.Tensor, style: str,
              photo_feats: dict[str, torch.Tensor] | None = None) -> PhotoScore:
        """`output` and `photo` at the same size, EVAL_WIDTH px wide."""
        if photo_feats is None:
            photo_feats = self.photo_features(photo)
        feats = self.vgg(resize_to_width(output, 512), upto=GRAM_LAYERS)
        half = self.vgg(resize_to_width(output, 256), upto=EVAL_LAYERS)
        in_place = self.vgg(cover_crop(self.paintings[style], tuple(photo.shape[-2:])), upto=STRENGTH_LAYERS)
        luma, edges = structure_scores(output, photo)
        return PhotoScore(
            style_match_512=self._gram_error(feats, style, 512),
            style_match_256=self._gram_error(half, style, 256),
            strength=feature_distance(feats, photo_feats),
            painting_strength=feature_distance(in_place, photo_feats),
            structure_luma=luma,
            structure_edges=edges,
            deep_style=self._gram_error(half, style, 256, (DEEP_LAYER,)),
            palette=palette_distance(output, self.paintings[style]),
            photo_palette=palette_distance(photo, self.paintings[style]),
            structure_fine=structure_scores(output, photo, FINE_STRUCTURE_WIDTH)[1],
        )


def summarize(scores: Sequence[PhotoScore]) -> dict[str, float]:
    """Mean of each metric over photos, rounded for cards and tables."""
    if not scores:
        raise StylenormError("no photos were scored; pass photos with --photos or --data")
    return {m: round(float(np.mean([getattr(s, m) for s in scores])), 4) for m in METRICS}


def contact_sheet(photos: Sequence[torch.Tensor], outputs: Sequence[Sequence[torch.Tensor]],
                  paintings: Sequence[torch.Tensor | None], cell: int = 256) -> np.ndarray:
    """Paintings on top, then one row per photo: the photo and its output per style."""

    def fit(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        scale = cell / max(h, w)
        x = F.interpolate(x, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="bilinear",
                          align_corners=False, antialias=True)
        canvas = torch.ones(1, 3, cell, cell)
        top, left = (cell - x.shape[-2]) // 2, (cell - x.shape[-1]) // 2
        canvas[..., top:top + x.shape[-2], left:left + x.shape[-1]] = x.clamp(0, 1)
        return canvas

    blank = torch.ones(1, 3, cell, cell)
    rows = [torch.cat([blank] + [fit(p) if p is not None else blank for p in paintings], dim=-1)]
    for photo, row in zip(photos, outputs):
        rows.append(torch.cat([fit(photo)] + [fit(o) for o in row], dim=-1))
    return to_uint8(torch.cat(rows, dim=-2))


def find_paintings(weights: Path, folder: str | Path) -> dict[str, Path]:
    """The painting of every style of a network, by the file names its card records (else by style name)."""
    from stylenorm.style.stylize import read_card

    folder = Path(folder)
    if not folder.is_dir():
        raise StylenormError(f"paintings folder not found: {folder}; pass the folder holding the style images with --paintings")
    if not weights.is_file():
        raise StylenormError(f"weights file not found: {weights}; pass a .safetensors file made by train-style")
    card = read_card(weights)
    names = list(card.get("styles") or [weights.stem])
    files = list(card.get("style_images") or [])
    found, missing = {}, []
    for i, name in enumerate(names):
        candidates = [folder / files[i]] if i < len(files) else []
        candidates += sorted(folder.glob(f"{name}.*"))
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            missing.append(files[i] if i < len(files) else name)
        else:
            found[name] = path
    if missing:
        raise StylenormError(f"no painting for {', '.join(missing)} in {folder}; put the style images there (named as in the model card)")
    return found


def evaluate_network(weights: str | Path, painting_files: dict[str, Path], photos: Sequence[Path], vgg: VGGFeatures, *,
                     precision: str = "auto", progress: bool = True) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """Score every style of a weights file on `photos` against its paintings (`find_paintings`);
    return ({style: summary}, contact sheet)."""
    from tqdm.auto import tqdm

    from stylenorm.style.stylize import _choice, load_style_model, stylize_tensor

    if not photos:
        raise StylenormError("no photos to evaluate on; pass --photos and/or --data with --holdout")
    model = load_style_model(weights)
    paintings = {name: load_style_image(path, 1024).unsqueeze(0) for name, path in painting_files.items()}
    scorer = StyleScorer(vgg, paintings)
    images = [load_photo(p) for p in photos]
    per_style: dict[str, list[PhotoScore]] = {name: [] for name in model.names}
    rows: list[list[torch.Tensor]] = []
    bar = tqdm(total=len(images) * len(model.names), desc="eval-style", disable=not progress, dynamic_ncols=True)
    for photo in images:
        row = []
        photo_feats = scorer.photo_features(photo)
        for name in model.names:
            out = stylize_tensor(_choice(model, [(name, 1.0)]), photo, precision=precision)
            per_style[name].append(scorer.score(out, photo, name, photo_feats))
            row.append(out)
            bar.update(1)
        rows.append(row)
    bar.close()
    summary = {name: summarize(scores) for name, scores in per_style.items()}
    sheet = contact_sheet(images, rows, [paintings[n] for n in model.names])
    return summary, sheet


def evaluate_painting(painting: Path, photos: Sequence[Path], vgg: VGGFeatures, loss_vgg: VGGFeatures,
                      opts: OptimizeOptions | None = None, *, work_size: int | None = OPTIMIZE_SIZE, name: str | None = None,
                      progress: bool = True) -> tuple[dict[str, dict[str, float]], np.ndarray]:
    """eval-style for the optimization mode: every photo stylized with `painting` by optimize_image and
    scored like a network's outputs (`vgg` is eval-style's VGG, `loss_vgg` the optimization's);
    `name`: the style's name in the summary (default the painting's file name); `work_size` None: each photo
    optimized at the size it is scored at (EVAL_WIDTH wide), so the Gram scores see the textures it made.

    Here rather than in optimize.py: it scores with this module's StyleScorer, and the
    any-painting mode itself has no need of eval-style."""
    if not photos:
        raise StylenormError("no photos to evaluate on; pass --photos and/or --data with --holdout")
    name = name or painting.stem
    reference = load_style_image(painting, 1024).unsqueeze(0)  # as evaluate_network loads paintings
    scorer = StyleScorer(vgg, {name: reference})
    images = [load_photo(p) for p in photos]
    scores, rows = [], []
    for photo in images:
        size = work_size or max(photo.shape[-2:])
        out = optimize_image(photo, painting, loss_vgg, opts, work_size=size, progress=progress)
        scores.append(scorer.score(out, photo, name))
        rows.append([out])
    return {name: summarize(scores)}, contact_sheet(images, rows, [reference])


def markdown_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """{label: {style: summary}} as one Markdown table."""
    from stylenorm.bench.common import markdown_table as table

    rows = [[label, style, f"{s['palette']:.1f} ({s['photo_palette']:.1f})", f"{s['deep_style']:.3f}",
             f"{s['style_match']:.3f} ({s['style_match_512']:.3f} / {s['style_match_256']:.3f})",
             f"{s['strength']:.3f} ({s['painting_strength']:.3f})",
             f"{s['structure_luma']:.2f} / {s['structure_edges']:.2f} / {s['structure_fine']:.2f}"]
            for label, styles in results.items() for style, s in styles.items()]
    columns = ["weights", "style", "palette distance (the photo's)", "deep style (relu5_1)", "style match (512 / 256 px)",
               "strength (the painting itself)", "structure (luma / edges / fine edges)"]
    return table(columns, rows) + "\n"


def eval_photos(photos: Sequence[Path], data: Path | None, holdout: int, demo: bool) -> list[Path]:
    """The photos to score: those given, the fixed held-out split of a training folder, the demo photos."""
    from stylenorm.style.stylize import expand_inputs

    chosen = expand_inputs(list(photos))[0]
    if data is not None:
        if holdout <= 0:
            raise StylenormError("--data needs --holdout N (the size of its held-out split, as in train-style)")
        chosen += ContentPhotos(data, holdout).held_out
    if demo:
        chosen += list_images(DEMO_DIR)
    return chosen


def evaluate_styles(weights: Sequence[Path], paintings: Path, *, photos: Sequence[Path] = (), data: Path | None = None,
                    holdout: int = 0, demo: bool = True, vgg_weights: Path | None = None, vgg_format: str = "auto",
                    output: Path = Path("results/eval_style"), update_card: bool = False, threads: int | None = None,
                    against_optimized: bool = False, bound_iterations: int = OPTIMIZE_ITERATIONS,
                    report=print) -> dict[str, dict[str, dict[str, float]]]:
    """`stylenorm eval-style`: score, write eval.json / eval.md / contact sheets, optionally the cards.

    against_optimized: also score, for every style of every network, the optimization mode with the
    network's own loss (its card's `loss`) at the scoring size on the same photos, labelled
    `optimize:<weights>`: the upper bound of what training on that loss can reach."""
    import json

    from stylenorm.atomic import atomic_output
    from stylenorm.images import save_image
    from stylenorm.style.loss import load_vgg
    from stylenorm.style.stylize import read_card, shipped_style_files

    set_threads(threads)
    files = [Path(w) for w in weights] or shipped_style_files()
    if not files:
        raise StylenormError("no style weights to evaluate; pass weights files")
    chosen = eval_photos(photos, data, holdout, demo)
    if not chosen:
        raise StylenormError("no photos to evaluate on; pass --photos, --data with --holdout, or keep --demo")
    # an image instead of weights is scored in the any-painting mode (stylize --style PAINTING.jpg)
    optimized = {path for path in files if is_painting_file(path)}
    painting_files = {path: find_paintings(path, paintings) for path in files if path not in optimized}  # checked before the VGG loads
    vgg, source = load_vgg(vgg_weights, vgg_format, EVAL_LAYERS)
    loss_vgg = load_loss_network(vgg_weights, vgg_format)[0] if optimized or against_optimized else None
    output.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for path in files:
        if path in optimized:
            summary, sheet = evaluate_painting(path, chosen, vgg, loss_vgg)
            label = f"optimize:{path.stem}"
        else:
            summary, sheet = evaluate_network(path, painting_files[path], chosen, vgg)
            label = path.stem
        results[label] = summary
        save_image(output / f"contact_sheet_{label.replace(':', '_')}.png", sheet)
        if against_optimized and path not in optimized:
            # the network's own loss, optimized directly: what its training could reach at best
            bound_options = OptimizeOptions(loss=read_card(path).get("loss", "relative"), iterations=bound_iterations)
            bound, sheets = {}, []
            for name, painting in painting_files[path].items():
                summary_, sheet_ = evaluate_painting(painting, chosen, vgg, loss_vgg, bound_options,
                                                     work_size=None, name=name)
                bound.update(summary_)
                sheets.append(sheet_)
            results[f"optimize:{path.stem}"] = bound
            save_image(output / f"contact_sheet_optimize_{path.stem}.png", np.concatenate(sheets, axis=1))
        if update_card and path not in optimized:
            write_eval_to_card(path, summary, photos=len(chosen), loss_network=source)
    record = {"photos": [p.name for p in chosen], "photo_width": EVAL_WIDTH, "analysis_widths": list(ANALYSIS_WIDTHS),
              "loss_network": source, "results": results}
    with atomic_output(output / "eval.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    table = markdown_table(results)
    with atomic_output(output / "eval.md") as tmp:
        tmp.write_text(f"{len(chosen)} photos at {EVAL_WIDTH} px wide; loss network: {source}\n\n{table}")
    report(table)
    report(f"wrote {output / 'eval.json'}, {output / 'eval.md'} and the contact sheets")
    return results


def write_eval_to_card(path: Path, summary: dict[str, dict[str, float]], **facts) -> None:
    """Rewrite a weights file with `eval` in its card (tensors unchanged; both files atomically)."""
    import datetime as _dt

    from stylenorm.checkpoints import load_model, save_model

    tensors, card = load_model(path)
    card["eval"] = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), "photo_width": EVAL_WIDTH,
                    "analysis_widths": list(ANALYSIS_WIDTHS), **facts, "styles": summary}
    save_model(path, tensors, card)
