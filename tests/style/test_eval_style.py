"""eval-style: each measure means what it says, and the command writes its report and cards."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from style_testlib import smooth_photo

from stylenorm.images import to_tensor
from stylenorm.style.evaluate import (
    EVAL_LAYERS,
    StyleScorer,
    cover_crop,
    palette_distance,
    resize_to_width,
    srgb_to_lab,
    structure_scores,
)
from stylenorm.style.loss import load_vgg


@pytest.fixture(scope="module")
def vgg(tiny_vgg):
    return load_vgg(tiny_vgg, layers=EVAL_LAYERS)[0]


def stripes(h: int, w: int, period: float) -> torch.Tensor:
    y, x = np.mgrid[0:h, 0:w]
    v = (np.sin(2 * np.pi * (x + 0.5 * y) / period) * 0.4 + 0.5).astype(np.float32)
    return torch.from_numpy(np.stack([v, 1 - v, v * 0.5])).unsqueeze(0)


def test_structure_is_one_for_the_photo_and_low_for_another(vgg):
    photo = to_tensor(smooth_photo(128, 192, 0))
    assert structure_scores(photo, photo) == pytest.approx((1.0, 1.0))
    other = to_tensor(smooth_photo(128, 192, 5))
    luma, edges = structure_scores(other, photo)
    assert luma < 0.9 and edges < 0.9
    # a colour cast keeps the layout
    assert structure_scores((photo * torch.tensor([0.6, 0.8, 1.2]).view(1, 3, 1, 1)).clamp(0, 1), photo)[0] > 0.9


def test_strength_is_zero_for_the_photo_and_grows_with_the_change(vgg):
    painting = stripes(200, 300, 12)
    scorer = StyleScorer(vgg, {"stripes": painting})
    photo = resize_to_width(to_tensor(smooth_photo(256, 384, 1)), 512)
    assert scorer.score(photo, photo, "stripes").strength == pytest.approx(0.0, abs=1e-6)
    texture = resize_to_width(stripes(256, 384, 12), 512)
    weak = scorer.score(0.8 * photo + 0.2 * texture, photo, "stripes")
    strong = scorer.score(0.2 * photo + 0.8 * texture, photo, "stripes")
    assert 0 < weak.strength < strong.strength


def test_the_paintings_own_strength_is_the_painting_in_the_photos_place(vgg):
    """painting_strength scores the painting itself (cover-resized, centre crop), whatever the output."""
    painting = stripes(300, 300, 12)
    scorer = StyleScorer(vgg, {"stripes": painting})
    photo = resize_to_width(to_tensor(smooth_photo(256, 384, 3)), 512)
    in_place = cover_crop(painting, tuple(photo.shape[-2:]))
    assert in_place.shape[-2:] == photo.shape[-2:]
    itself = scorer.score(in_place, photo, "stripes")
    assert itself.painting_strength == pytest.approx(itself.strength, rel=1e-5)
    assert scorer.score(photo, photo, "stripes").painting_strength == pytest.approx(itself.strength, rel=1e-5)
    assert itself.painting_strength > scorer.score(0.5 * photo + 0.5 * in_place, photo, "stripes").strength


def test_style_match_sees_the_motif_scale(vgg):
    """The painting's own texture scores best; the same texture at the wrong scale scores worse,
    most at the 256 px analysis width."""
    painting = stripes(400, 600, 40)  # large motifs
    scorer = StyleScorer(vgg, {"big": painting})
    photo = resize_to_width(to_tensor(smooth_photo(256, 384, 2)), 512)
    same = scorer.score(resize_to_width(stripes(400, 600, 40), 512), photo, "big")
    fine = scorer.score(resize_to_width(stripes(400, 600, 8), 512), photo, "big")
    assert same.style_match < fine.style_match
    assert same.style_match_256 < fine.style_match_256


def test_lab_of_known_colours():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]]).view(3, 3, 1, 1)
    lab = srgb_to_lab(rgb).view(3, 3)
    torch.testing.assert_close(lab[0], torch.tensor([100.0, 0.0, 0.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(lab[1], torch.tensor([0.0, 0.0, 0.0]), atol=0.05, rtol=0)
    torch.testing.assert_close(lab[2], torch.tensor([53.24, 80.09, 67.20]), atol=0.3, rtol=0)  # sRGB red


def test_palette_distance_sees_colours_not_where_they_are():
    painting = to_tensor(smooth_photo(96, 128, 0))
    shuffled = painting.flatten(2)[..., torch.randperm(96 * 128, generator=torch.Generator().manual_seed(1))]
    assert palette_distance(shuffled.view_as(painting), painting) < 1.0  # same colours elsewhere: ~0
    grey = painting.mean(dim=1, keepdim=True).expand_as(painting)
    darker = painting * 0.6
    assert palette_distance(grey, painting) > 3 and palette_distance(darker, painting) > 10
    assert palette_distance(painting * 0.9, painting) < palette_distance(darker, painting)


def test_eval_style_command_writes_report_sheet_and_card(tmp_path, tiny_vgg, tiny_data, run):
    weights = tmp_path / "mine.safetensors"
    r = run("train-style", "--style", str(tiny_data["style_a"]), "--style", str(tiny_data["style_b"]),
            "--data", str(tiny_data["content"]), "--vgg-weights", str(tiny_vgg), "--image-size", "32",
            "--style-size", "48", "--steps", "2", "--checkpoint-every", "0", "--preview-every", "0",
            "-o", str(weights), "--run-dir", str(tmp_path / "run"))
    assert r.returncode == 0, r.stderr
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(smooth_photo(60, 80, 10 + i)).save(photos / f"p{i}.png")
    out = tmp_path / "eval"
    r = run("eval-style", str(weights), "--paintings", str(tiny_data["style_a"].parent), "--photos", str(photos),
            "--no-demo", "--vgg-weights", str(tiny_vgg), "-o", str(out), "--update-card")
    assert r.returncode == 0, r.stderr
    record = json.loads((out / "eval.json").read_text())
    assert record["photos"] == ["p0.png", "p1.png"]
    scores = record["results"]["mine"]
    assert set(scores) == {"stripes", "dots"}
    for s in scores.values():
        assert s["style_match"] == pytest.approx((s["style_match_512"] + s["style_match_256"]) / 2, abs=1e-3)
        assert s["strength"] > 0 and s["painting_strength"] > 0 and -1 <= s["structure_luma"] <= 1
        assert s["palette"] > 0 and s["photo_palette"] > 0 and s["deep_style"] > 0 and -1 <= s["structure_fine"] <= 1
    assert "| mine | stripes |" in (out / "eval.md").read_text()
    sheet = Image.open(out / "contact_sheet_mine.png")
    assert sheet.size == (256 * 3, 256 * 3)  # paintings row + 2 photos; photo + 2 styles
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["eval"]["styles"] == scores and card["eval"]["photos"] == 2
    from stylenorm.checkpoints import load_model

    assert load_model(weights)[1]["eval"]["styles"] == scores  # the safetensors copy too


def test_eval_style_explains_missing_paintings_and_photos(tmp_path, run):
    r = run("eval-style", "--paintings", str(tmp_path / "nowhere"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--paintings" in r.stderr
    r = run("eval-style", "--paintings", str(tmp_path), "--no-demo")
    assert r.returncode == 2 and "no photos" in r.stderr
    r = run("eval-style", "--paintings", str(tmp_path))  # the demo photos, the shipped styles
    assert r.returncode == 2 and "no painting for starry_night.jpg" in r.stderr and "--paintings" not in r.stderr


def test_eval_style_scores_the_optimisation_bound_beside_the_network(tmp_path, tiny_vgg, tiny_data, run, monkeypatch):
    """--against-optimized: each style's painting in the optimisation mode on the same photos,
    scored the same way, as `optimize:<weights>` (the networks' upper bound)."""
    from stylenorm.style import evaluate

    weights = tmp_path / "mine.safetensors"
    r = run("train-style", "--style", str(tiny_data["style_a"]), "--style", str(tiny_data["style_b"]),
            "--data", str(tiny_data["content"]), "--vgg-weights", str(tiny_vgg), "--image-size", "32",
            "--style-size", "48", "--steps", "1", "--checkpoint-every", "0", "--preview-every", "0", "-o", str(weights))
    assert r.returncode == 0, r.stderr
    sizes = []
    real = evaluate.optimize_image
    monkeypatch.setattr(evaluate, "optimize_image", lambda *a, **k: sizes.append(k["work_size"]) or real(*a, **k))
    photo = tmp_path / "p.png"
    Image.fromarray(smooth_photo(60, 80, 7)).save(photo)
    results = evaluate.evaluate_styles([weights], tiny_data["style_a"].parent, photos=[photo], demo=False,
                                       vgg_weights=tiny_vgg, output=tmp_path / "eval", against_optimized=True,
                                       bound_iterations=2, report=lambda line: None)
    assert set(results) == {"mine", "optimize:mine"}
    assert set(results["optimize:mine"]) == {"stripes", "dots"}
    assert results["optimize:mine"]["stripes"] != results["mine"]["stripes"]
    assert (tmp_path / "eval" / "contact_sheet_optimize_mine.png").is_file()
    assert sizes == [evaluate.EVAL_WIDTH] * 2  # optimized at the size it is scored at, not enlarged to it
