"""Faults through the shared training loop: a killed run resumes exactly, a failed checkpoint write
keeps the previous one, runs are never mixed, and one bad image in a training folder is skipped."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stylenorm import checkpoints
from stylenorm.atomic import atomic_output
from stylenorm.errors import StylenormError

sys.path.insert(0, str(Path(__file__).parent / "diffusion"))
from diffusion_testlib import tiny_train_config  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def diffusion_fit(run_dir: Path, steps: int, **options):
    from stylenorm.diffusion.task import DiffusionTask
    from stylenorm.training import FitConfig, fit

    task = DiffusionTask(tiny_train_config(run_dir, dropout=0.0))
    config = {"steps": steps, "lr": 2e-3, "run_dir": run_dir, "seed": 1, "cpu": True, "progress": False,
              "checkpoint_every": 2, "ema_decay": 0.9, **options}
    return fit(task, FitConfig(**config))


# The training a subprocess runs until it is killed: the same task and options as diffusion_fit.
KILLED_RUN = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {testlib!r})
    torch.set_num_threads(1)
    from diffusion_testlib import tiny_train_config
    from stylenorm.diffusion.task import DiffusionTask
    from stylenorm.training import FitConfig, fit
    run_dir = {run_dir!r}
    fit(DiffusionTask(tiny_train_config(run_dir, dropout=0.0)), FitConfig(
        steps=100000, lr=2e-3, run_dir=run_dir, seed=1, cpu=True, progress=False, checkpoint_every=2, ema_decay=0.9))
""")


def test_a_sigkilled_run_resumes_exactly_like_an_uninterrupted_one(tmp_path, one_thread):
    run_dir = tmp_path / "killed"
    script = KILLED_RUN.format(testlib=str(REPO / "tests" / "diffusion"), run_dir=str(run_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(checkpoints.saved_checkpoints(run_dir)) < 2:  # mid-run: a few checkpoints written
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the training subprocess wrote no checkpoints"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    last = int(checkpoints.saved_checkpoints(run_dir)[-1].name.split("_")[1])
    resumed = diffusion_fit(run_dir, last + 2, resume=run_dir)
    straight = diffusion_fit(tmp_path / "straight", last + 2)
    for a, b in ((straight.model, resumed.model), (straight.ema, resumed.ema)):
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), key


def test_a_failed_checkpoint_write_leaves_the_previous_checkpoint(tmp_path, one_thread, monkeypatch):
    diffusion_fit(tmp_path, 2)
    before = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints" / "step_0000002").iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoints.torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        diffusion_fit(tmp_path, 4, resume=tmp_path)
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["step_0000002"]  # no half-written one
    assert {p.name: p.read_bytes() for p in (tmp_path / "checkpoints" / "step_0000002").iterdir()} == before
    checkpoints.load_training_state(checkpoints.latest_checkpoint(tmp_path))


def test_a_fresh_run_into_a_run_directory_with_checkpoints_is_refused(tmp_path, one_thread):
    diffusion_fit(tmp_path, 2)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(StylenormError, match="already holds the checkpoints of a run .*--resume"):
        diffusion_fit(tmp_path, 2, output=tmp_path / "model.safetensors")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_resume_with_steps_below_the_saved_step_is_refused(tmp_path, one_thread):
    diffusion_fit(tmp_path, 4)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    with pytest.raises(StylenormError, match="at step 4, past --steps 3"):
        diffusion_fit(tmp_path, 3, resume=tmp_path, output=tmp_path / "model.safetensors")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_moved_run_resumes_where_it_is_now(tmp_path, run, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    config = tiny_train_config(Path("first"), dropout=0.0).to_dict()
    Path("tiny.yaml").write_text(json.dumps({k: v for k, v in config.items() if k != "run_dir"}))
    assert run("diffusion", "train", "-c", "tiny.yaml", "--run-dir", "first", "--steps", "2").returncode == 0
    os.rename("first", "moved")
    result = run("diffusion", "train", "--resume", "moved", "--steps", "4")
    assert result.returncode == 0, result.stderr
    assert not Path("first").exists()
    assert [p.name for p in checkpoints.saved_checkpoints("moved")] == ["step_0000002", "step_0000004"]
    assert json.loads(Path("moved/model.json").read_text())["training"]["steps"] == 4


def test_a_moved_run_resumed_with_its_preset_writes_where_it_is_now(tmp_path, run, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    Path("tiny.yaml").write_text(json.dumps(tiny_train_config(Path("first"), dropout=0.0).to_dict()))  # run_dir: first
    assert run("diffusion", "train", "-c", "tiny.yaml", "--steps", "2").returncode == 0
    os.rename("first", "moved")
    result = run("diffusion", "train", "-c", "tiny.yaml", "--resume", "moved", "--steps", "4")
    assert result.returncode == 0, result.stderr
    assert not Path("first").exists()
    assert [p.name for p in checkpoints.saved_checkpoints("moved")] == ["step_0000002", "step_0000004"]


def test_an_export_never_replaces_a_model_silently(tmp_path, run, monkeypatch, one_thread):
    monkeypatch.chdir(tmp_path)
    diffusion_fit(tmp_path / "run", 2)
    assert run("diffusion", "export", "run", "-o", "m.safetensors").returncode == 0
    before = {p: p.read_bytes() for p in tmp_path.glob("m.*")}
    r = run("diffusion", "export", "run", "-o", "m.safetensors", "--half")
    assert r.returncode == 2 and r.stderr.count("error:") == 1
    assert "error: m.safetensors already exists; pass --force to replace it or another -o" in r.stderr
    assert {p: p.read_bytes() for p in tmp_path.glob("m.*")} == before
    r = run("diffusion", "export", "run", "-o", "m.safetensors", "--half", "--force")
    assert r.returncode == 0, r.stderr
    assert json.loads(Path("m.json").read_text())["dtype"] == "float16"


def test_a_resume_from_a_checkpoint_directory_writes_into_its_run(tmp_path):
    run_dir = tmp_path / "run"
    checkpoints.save_training_state(checkpoints.checkpoint_dir(run_dir, 2), model={}, ema=None, state={"step": 2})
    assert checkpoints.run_directory(run_dir / "checkpoints" / "step_0000002") == run_dir
    assert checkpoints.run_directory(run_dir) == run_dir


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A small PNG whose header claims width x height pixels (a decompression bomb's signature)."""
    Image.new("RGB", (8, 8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    path.write_bytes(bytes(data))


@pytest.fixture()
def folder_with_bad_images(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"good{i}.png")
    (folder / "notes.jpg").write_text("not an image")
    _png_claiming(folder / "bomb.png", 30000, 30000)
    good = (folder / "good0.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[:len(good) // 2])
    return folder


def test_content_photos_skip_bad_files_with_one_warning(folder_with_bad_images, capsys):
    from stylenorm.style.data import ContentPhotos

    started = time.perf_counter()
    photos = ContentPhotos(folder_with_bad_images)
    assert time.perf_counter() - started < 2
    assert len(photos) + len(photos.skipped) == 8
    assert {"notes.jpg", "bomb.png"} <= {p.name for p in photos.skipped}
    # a file that passed the scan but does not decode is replaced by the next photo, not the end of the run
    batch = photos.batch(torch.arange(len(photos)), 16, seed=0, micro_step=0)
    assert batch.shape == (len(photos), 3, 16, 16)
    assert {p.name for p in photos.skipped} == {"notes.jpg", "bomb.png", "truncated.png"}
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: skipped")]
    assert 1 <= len(warnings) <= 2 and "bomb.png" in warnings[0]


def test_diffusion_image_folders_skip_bad_files_and_the_card_says_so(folder_with_bad_images, capsys):
    from stylenorm.diffusion.data import load_images

    data = load_images(str(folder_with_bad_images), 8, 1)
    assert len(data.images) == 5
    assert sorted(p.name for p in data.skipped) == ["bomb.png", "notes.jpg", "truncated.png"]
    assert capsys.readouterr().err.count("warning: skipped") <= 2


def test_a_folder_without_one_usable_image_is_refused(tmp_path):
    from stylenorm.diffusion.data import load_images
    from stylenorm.style.data import ContentPhotos

    (tmp_path / "a.png").write_text("not an image")
    with pytest.raises(StylenormError, match="no usable images"):
        ContentPhotos(tmp_path)
    with pytest.raises(StylenormError, match="none of the images"):
        load_images(str(tmp_path), 8, 1)


def test_concurrent_writers_to_one_output_leave_one_complete_file(tmp_path):
    target = tmp_path / "out.bin"
    contents = [bytes([i]) * 2_000_000 for i in range(6)]

    def write(data: bytes) -> None:
        with atomic_output(target) as tmp:
            with open(tmp, "wb") as f:
                for start in range(0, len(data), 100_000):  # slowly, so the writers overlap
                    f.write(data[start:start + 100_000])

    threads = [threading.Thread(target=write, args=(c,)) for c in contents]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left behind


def test_an_ablation_where_every_run_failed_is_an_error(tmp_path):
    from stylenorm.ablation.grid import Grid, run_grid

    def crash(norm, bs, seed, run_dir):
        raise RuntimeError("out of memory")

    grid = Grid(task="diffusion", preset="small", norms=("gn8", "ln"), batch_sizes=(8,), seeds=(0,))
    with pytest.raises(StylenormError, match="every run of the grid failed"):
        run_grid(grid, tmp_path, progress=False, runner=crash)
    assert (tmp_path / "report.md").is_file()  # the failures are still reported
