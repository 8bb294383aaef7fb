"""`stylenorm diffusion train|sample|export` and `stylenorm bench diffusion`, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from stylenorm.checkpoints import save_model, shipped_weights

TINY = ["--data", "mnist5k", "--image-size", "8", "--holdout", "16", "--base-channels", "8",
        "--channel-mults", "1,2", "--num-res-blocks", "1", "--attention-resolutions", "4", "--num-heads", "2",
        "--diffusion-steps", "20", "--batch-size", "8", "--eval-every", "2", "--preview-every", "2",
        "--checkpoint-every", "2", "--cpu"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A 2-step run trained through the CLI, shared by the sampling tests."""
    import sys

    from stylenorm import cli

    run = tmp_path_factory.mktemp("run")
    old = sys.argv
    sys.argv = ["stylenorm", "diffusion", "train", *TINY, "--steps", "2", "--run-dir", str(run)]
    try:
        with pytest.raises(SystemExit) as exit_info:
            cli.main()
    finally:
        sys.argv = old
    assert exit_info.value.code in (0, None)
    return run


def test_train_writes_model_card_checkpoints_and_grids(tiny_run: Path) -> None:
    card = json.loads((tiny_run / "model.json").read_text())
    assert card["unet"]["base_channels"] == 8 and card["training"]["steps"] == 2
    assert card["data"]["source"].startswith("mnist5k") and card["group_counts"]
    assert (tiny_run / "checkpoints" / "step_0000002" / "state.pt").is_file()
    assert (tiny_run / "samples" / "step_0000002.png").is_file()


def test_config_preset_with_overrides(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("diffusion", "train", "-c", "diffusion_mnist", *TINY, "--steps", "1",
                             "--channel-mults", "1", "--attention-resolutions", "8", "--run-dir", tmp_path)
    assert code == 0, err
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["unet"]["channel_mults"] == [1] and card["training"]["lr"] == 0.001  # lr from the preset


def test_sample_grid_and_folder_from_a_trained_run(run_cli, tiny_run: Path, tmp_path: Path) -> None:
    code, out, err = run_cli("diffusion", "sample", "--weights", tiny_run / "model.safetensors", "-n", "6",
                             "--steps", "3", "--labels", "1,2", "-o", tmp_path / "grid.png")
    assert code == 0, err
    assert Image.open(tmp_path / "grid.png").size == (3 * 10 + 2, 2 * 10 + 2)  # 6 images of 8 px in a 3×2 grid
    code, out, err = run_cli("diffusion", "sample", "--weights", tiny_run, "-n", "3", "--sampler", "ddpm",
                             "-o", f"{tmp_path / 'many'}/")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "many").iterdir()) == [
        "grid.png", "sample_0000.png", "sample_0001.png", "sample_0002.png"]
    assert Image.open(tmp_path / "many" / "sample_0000.png").size == (8, 8)


def test_same_seed_same_samples(run_cli, tiny_run: Path, tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        assert run_cli("diffusion", "sample", "--weights", tiny_run, "-n", "4", "--steps", "2", "--seed", "3",
                       "-o", tmp_path / name)[0] == 0
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_sample_from_the_shipped_model_offline(run_cli, tmp_path: Path) -> None:
    assert shipped_weights("mnist").is_file(), "weights/mnist.safetensors must ship with the project"
    code, out, err = run_cli("diffusion", "sample", "-n", "2", "--steps", "4", "--labels", "7", "-o", tmp_path / "s.png")
    assert code == 0, err
    image = Image.open(tmp_path / "s.png")
    assert image.size == (2 * 30 + 2, 30 + 2) and image.mode == "L"


def test_export_writes_half_precision_weights_that_sample(run_cli, tiny_run: Path, tmp_path: Path) -> None:
    code, out, err = run_cli("diffusion", "export", tiny_run, "-o", tmp_path / "m.safetensors", "--half")
    assert code == 0, err
    card = json.loads((tmp_path / "m.json").read_text())
    assert card["dtype"] == "float16" and card["training"]["steps"] == 2
    code, out, err = run_cli("diffusion", "sample", "--weights", tmp_path / "m.safetensors", "-n", "2",
                             "--steps", "2", "-o", tmp_path / "g.png")
    assert code == 0, err


def _assert_clean_error(result: tuple[int, str, str], pattern: str) -> None:
    code, out, err = result
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and pattern in lines[0], err


def test_bad_inputs_give_one_clear_line_and_write_nothing(run_cli, tiny_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    _assert_clean_error(run_cli("diffusion", "train", *TINY, "--data", empty, "--run-dir", out), "holds no images")
    _assert_clean_error(run_cli("diffusion", "train", *TINY, "--data", "cifar100", "--run-dir", out), "unknown dataset 'cifar100'")
    _assert_clean_error(run_cli("diffusion", "train", *TINY, "--norm", "bn", "--batch-size", "1", "--run-dir", out),
                        "--batch-size 2")
    _assert_clean_error(run_cli("diffusion", "train", *TINY, "--norm", "layernorm", "--run-dir", out), "unknown norm spec")
    assert not out.exists()
    # a checkpoint trained at 8 px cannot continue at 16 px
    _assert_clean_error(run_cli("diffusion", "train", *TINY, "--image-size", "16", "--attention-resolutions", "8", "--steps", "4",
                                "--resume", tiny_run, "--run-dir", tiny_run), "image_size=8")
    # weights of another architecture: shapes that do not fit, or not a diffusion model at all
    tensors = {k: torch.zeros(1) for k in ("input_conv.weight", "out_conv.weight")}
    save_model(tmp_path / "other.safetensors", tensors, json.loads((tiny_run / "model.json").read_text()))
    _assert_clean_error(run_cli("diffusion", "sample", "--weights", tmp_path / "other.safetensors", "-o",
                                tmp_path / "x.png"), "different architecture")
    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    _assert_clean_error(run_cli("diffusion", "sample", "--weights", tmp_path / "plain.safetensors", "-o",
                                tmp_path / "x.png"), "not a stylenorm diffusion model")
    _assert_clean_error(run_cli("diffusion", "sample", "--weights", tiny_run, "--labels", "12", "-o",
                                tmp_path / "x.png"), "0..9")
    _assert_clean_error(run_cli("diffusion", "sample", "--weights", tiny_run, "-o", tmp_path / "x.txt"),
                        "neither an image file")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.txt").exists()


def test_bench_quick_runs_and_reports_the_diffusers_row_or_its_skip(tmp_path: Path, monkeypatch) -> None:
    from stylenorm.bench.diffusion import run_diffusion_benchmark

    text = run_diffusion_benchmark(tmp_path / "b.md", device="cpu", quick=True, echo=None)
    assert "| stylenorm UNet | cpu |" in text and (tmp_path / "b.md").read_text() == text
    try:
        import diffusers  # noqa: F401

        assert "| diffusers UNet2DModel | cpu |" in text
    except ImportError:
        assert "skipped" in text
    monkeypatch.setitem(__import__("sys").modules, "diffusers", None)  # as if not installed
    text = run_diffusion_benchmark(tmp_path / "c.md", device="cpu", quick=True, echo=None)
    assert "skipped" in text and "diffusers UNet2DModel" not in text.split("|", 1)[1]


def test_resume_from_the_cli_needs_only_the_run_directory(run_cli, tmp_path: Path) -> None:
    assert run_cli("diffusion", "train", *TINY, "--steps", "2", "--lr", "0.002", "--run-dir", tmp_path)[0] == 0
    code, out, err = run_cli("diffusion", "train", "--resume", tmp_path, "--steps", "4")
    assert code == 0, err
    card = json.loads((tmp_path / "model.json").read_text())
    assert card["training"]["steps"] == 4 and card["training"]["lr"] == 0.002 and card["unet"]["image_size"] == 8
    assert [h["step"] for h in card["losses"]["heldout"]] == [2, 4]


def test_weights_whose_header_length_starts_with_0x80_are_not_taken_for_pickles(tmp_path: Path) -> None:
    # Regression: a safetensors header length like 0x...80 made load_model refuse valid weights.
    from stylenorm.checkpoints import load_model

    path = tmp_path / "w.safetensors"
    for pad in range(256):
        save_file({"w": torch.zeros(2)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    tensors, _ = load_model(path)
    assert torch.equal(tensors["w"], torch.zeros(2))


def test_dpmpp_sampler_from_the_command_line(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("diffusion", "sample", "-n", "2", "--sampler", "dpm++", "--steps", "4", "--labels", "3",
                             "-o", tmp_path / "s.png")
    assert code == 0, err
    assert (tmp_path / "s.png").is_file()
    code, out, err = run_cli("diffusion", "sample", "--sampler", "euler", "-o", tmp_path / "e.png")
    assert code == 2 and "dpm++" in err and not (tmp_path / "e.png").exists()


def test_bench_sampling_scores_every_sampler_and_step_count(run_cli, tmp_path: Path) -> None:
    code, out, err = run_cli("bench", "sampling", "-n", "10", "--steps", "1,2", "--samplers", "ddim,dpm++",
                             "-o", tmp_path / "s.md", "--plot", tmp_path / "s.png")
    assert code == 0, err
    table = (tmp_path / "s.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ddim") or line.startswith("| dpm++")]
    assert len(rows) == 4 and "real digits" in table
    assert Image.open(tmp_path / "s.png").size[0] > 100
    code, out, err = run_cli("bench", "sampling", "--samplers", "euler", "-o", tmp_path / "x.md")
    assert code == 2 and "unknown sampler" in err and not (tmp_path / "x.md").exists()


def test_sample_help_states_the_measured_defaults(run_cli) -> None:
    from stylenorm.diffusion.sample import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS

    code, out, err = run_cli("diffusion", "sample", "--help")
    text = " ".join(out.replace("│", " ").split())  # rich wraps help in a box
    assert f"{DEFAULT_SAMPLER} (DPM-Solver++ 2M SDE; default)" in text
    assert f"default {DEFAULT_STEPS};" in text
    assert f"default {DEFAULT_GUIDANCE['dpm++sde']} for dpm++sde, {DEFAULT_GUIDANCE['ddim']:g} for the others" in text
    assert len(set(DEFAULT_GUIDANCE.values()) - {DEFAULT_GUIDANCE["dpm++sde"]}) == 1
    card = json.loads(shipped_weights("mnist").with_suffix(".json").read_text())
    assert card["sampling_default"]["sampler"] == DEFAULT_SAMPLER
    assert card["sampling_default"]["steps"] == DEFAULT_STEPS and card["sampling_default"]["guidance_by_sampler"] == DEFAULT_GUIDANCE


@pytest.mark.parametrize("option,value,words", [("--steps", "0", "--steps"), ("--guidance", "-1", "--guidance"),
                                                ("--eta", "-1", "--eta"), ("--sampler", "euler", "dpm++")])
def test_sample_refuses_out_of_range_options(run_cli, tmp_path: Path, option: str, value: str, words: str) -> None:
    code, out, err = run_cli("diffusion", "sample", "-n", "2", option, value, "-o", tmp_path / "s.png")
    assert code == 2 and err.startswith("error:") and words in err and err.count("\n") == 1
    assert not (tmp_path / "s.png").exists()


def test_many_samples_go_in_batches_with_one_bar_and_a_grid_of_at_most_max(tiny_run: Path, tmp_path: Path,
                                                                           monkeypatch, capsys) -> None:
    from stylenorm.diffusion import sample

    monkeypatch.setattr(sample, "MAX_GRID_IMAGES", 4)
    loaded = sample.load_diffusion_model(tiny_run / "model.safetensors")
    images = sample.generate(loaded, 6, steps=2, batch_size=4, progress=True)
    assert images.shape[0] == 6
    err = capsys.readouterr().err
    assert "samples: 100%" in err and "6/6" in err  # the bar over all images, beside each batch's step bar
    with pytest.raises(sample.StylenormError, match="-n 6 would make one grid picture of 6 samples; write one PNG "
                                                    "per sample with -o DIR/, or ask for at most 4"):
        sample.check_output(tmp_path / "grid.png", 6)
    sample.save_samples(images, f"{tmp_path / 'many'}/")
    assert len(list((tmp_path / "many").glob("sample_*.png"))) == 6
    assert Image.open(tmp_path / "many" / "grid.png").size == (2 * 10 + 2, 2 * 10 + 2)  # the first 4 samples
