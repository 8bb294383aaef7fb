"""`stylenorm export onnx`: the exported network runs in onnxruntime at any size and matches `stylize`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from stylenorm.bench.stylize import photo, psnr_db
from stylenorm.export import bake_style, stylizer_module
from stylenorm.images import load_image, to_tensor
from stylenorm.style.net import TransformerNet
from stylenorm.style.stylize import StyleChoice, StyleModel, resolve_style

DEMO = Path(__file__).resolve().parents[1] / "stylenorm" / "data" / "demo"
BLEND = "starry_night:0.6,wave:0.4"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    """The blend exported once through the CLI, in float32 and float16 (each export takes ~10 s)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from stylenorm import cli

    folder = tmp_path_factory.mktemp("onnx")
    paths = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name, extra in (("fp32", []), ("fp16", ["--fp16"])):
            paths[name] = folder / f"blend_{name}.onnx"
            sys_argv = sys.argv
            sys.argv = ["stylenorm", "export", "onnx", "--style", BLEND, "-o", str(paths[name]), *extra]
            try:
                cli.main()
            except SystemExit as exc:
                assert not exc.code, f"export failed with {exc.code}"
            finally:
                sys.argv = sys_argv
    finally:
        torch.set_num_threads(threads)
    return paths


def _session(path: Path):
    from stylenorm.export import onnx_session

    return onnx_session(path, threads=1)


def test_onnx_matches_stylize_fp32_on_a_photo_at_its_own_size(exported, tmp_path, run, one_thread):
    # rocket.jpg is 640x427: 427 is not divisible by 4, so padding and cropping are exercised
    src = DEMO / "rocket.jpg"
    dst = tmp_path / "rocket_stylized.png"
    from stylenorm.style import stylize as sty

    # stylize paints at STYLE_REFERENCE_SIZE / --style-scale on the long side: this scale is the photo's own size
    scale = sty.STYLE_REFERENCE_SIZE / 640
    result = run("stylize", str(src), "--style", BLEND, "--precision", "fp32", "--style-scale", str(scale), "-o", str(dst))
    assert result.returncode == 0, result.stderr
    reference = to_tensor(load_image(dst).rgb)
    x = to_tensor(load_image(src).rgb)
    from stylenorm.export import run_onnx

    y = run_onnx(_session(exported["fp32"]), x)
    assert y.shape == x.shape == reference.shape
    assert psnr_db(y, reference) >= 40


@pytest.mark.parametrize("size", [(37, 29), (64, 48), (5, 130)])
def test_onnx_handles_any_size_and_batch_like_the_torch_forward(exported, size, one_thread):
    from stylenorm.export import run_onnx

    choice = resolve_style(BLEND)
    h, w = size
    x = torch.cat([photo(w, h), photo(w, h, "coffee.png")])
    with torch.no_grad():
        expected = choice.model.net(x, choice.style_arg()).clamp(0, 1)
    y = run_onnx(_session(exported["fp32"]), x)
    assert y.shape == (2, 3, h, w)
    assert float(y.min()) >= 0 and float(y.max()) <= 1
    torch.testing.assert_close(y, expected, atol=2e-5, rtol=0)


def test_fp16_export_is_smaller_and_faithful(exported, one_thread):
    from stylenorm.export import run_onnx

    assert exported["fp16"].stat().st_size < 0.6 * exported["fp32"].stat().st_size
    x = photo(96, 75, "chelsea.png")
    full = run_onnx(_session(exported["fp32"]), x)
    half = run_onnx(_session(exported["fp16"]), x)
    assert half.dtype == torch.float32 and half.shape == x.shape
    assert psnr_db(half, full) >= 40


def test_the_model_says_what_it_holds(exported):
    import onnx

    model = onnx.load(str(exported["fp32"]))
    props = {p.key: p.value for p in model.metadata_props}
    assert props["style"] == resolve_style(BLEND).label
    assert props["blend"] == "starry_night:0.6,wave:0.4"
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["stylized"]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims][1] == 3
    assert all(d.dim_param for i, d in enumerate(dims) if i != 1)  # N, H, W symbolic


def test_baked_blend_equals_the_conditional_network(one_thread):
    choice = resolve_style(BLEND)
    baked = bake_style(choice)
    assert baked.num_styles == 1 and choice.model.net.num_styles > 1
    assert not any("layer.weight" in k and v.dim() == 2 for k, v in baked.state_dict().items())
    x = photo(45, 38)
    with torch.no_grad():
        torch.testing.assert_close(stylizer_module(choice)(x), choice.model.net(x, choice.style_arg()).clamp(0, 1),
                                   atol=1e-6, rtol=0)


def test_one_style_network_exports_as_it_is(one_thread):
    torch.manual_seed(0)
    net = TransformerNet(norm="in", num_styles=1).eval()
    choice = StyleChoice(StyleModel(net, ["mine"], "mine.safetensors", "mine"), [1.0], "mine")
    x = photo(33, 27)
    with torch.no_grad():
        torch.testing.assert_close(stylizer_module(choice)(x), net(x).clamp(0, 1), atol=1e-6, rtol=0)


def test_bad_output_name_fails_before_any_work(tmp_path, run):
    result = run("export", "onnx", "--style", "wave", "-o", str(tmp_path / "model.txt"))
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and ".onnx" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_missing_extra_names_it(tmp_path, run, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes `import onnxscript` fail
    result = run("export", "onnx", "--style", "wave", "-o", str(tmp_path / "m.onnx"))
    assert result.returncode == 2
    assert "stylenorm[onnx]" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_unknown_style_is_one_error_line(tmp_path, run):
    result = run("export", "onnx", "--style", "nope", "-o", str(tmp_path / "m.onnx"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "known styles" in result.stderr
    assert list(tmp_path.iterdir()) == []
