"""Video stylization: scene cuts, flow blending, the --stabilize modes, and `stylize` on clips end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
pytest.importorskip("cv2")

from stylenorm.bench.video import bench_clips, camera_clip, read_frames, run_video_benchmark, strength, warping_error, write_clip  # noqa: E402
from stylenorm.style import temporal  # noqa: E402
from stylenorm.style.config import STABILIZE_MODES, StylizeOptions  # noqa: E402
from stylenorm.style.stylize import resolve_style  # noqa: E402


def test_scene_cuts_are_found_at_the_cut_and_not_during_a_pan():
    for name, frames, _, cuts in bench_clips((64, 36), 8):
        detector = temporal.SceneCuts()
        assert {t for t, f in enumerate(frames) if detector(f)} == cuts, name


def test_the_exact_camera_flow_aligns_the_input():
    frames, maps = camera_clip("astronaut.png", (80, 48), 5, noise=0)
    still = [frames[0]] * 5
    assert warping_error(frames, maps) < 0.2 * warping_error(still, maps)  # aligned, unlike a frozen picture
    assert warping_error(still, [maps[0]] * 5) == 0


def test_flow_blending_mixes_in_the_previous_result_only_where_the_flow_holds():
    frames, _ = camera_clip("coffee.png", (80, 48), 2, noise=0)
    blender = temporal.FlowBlender(blend=0.5)
    first = np.full((48, 80, 3), 0.2, np.float32)
    assert blender(frames[0], first) is first  # nothing to blend with yet
    second = np.full((48, 80, 3), 0.8, np.float32)
    out = blender(frames[0], second)  # same picture: the flow is zero and reliable everywhere
    np.testing.assert_allclose(out, 0.5, atol=1e-5)
    blender.reset()
    assert blender(frames[1], second) is second
    # a flow that the backward check refuses is not used
    backward = np.zeros((4, 4, 2), np.float32)
    forward = np.full((4, 4, 2), 3.0, np.float32)
    assert not temporal.reliable(backward, forward).any() and temporal.reliable(backward, -forward * 0).all()


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, list[np.ndarray], list[np.ndarray]]:
    frames, maps = camera_clip("astronaut.png", (96, 54), 8, seed=0)
    path = write_clip(tmp_path_factory.mktemp("clip") / "pan.mp4", frames, rate=24)
    return path, read_frames(path), maps


def test_flow_removes_flicker_and_keeps_the_style(clip, tmp_path, one_thread):
    src, inputs, maps = clip
    choice = resolve_style("wave")
    outputs = {}
    for mode in STABILIZE_MODES:
        temporal.stylize_video(choice, src, tmp_path / f"{mode}.mp4", StylizeOptions(stabilize=mode))
        outputs[mode] = read_frames(tmp_path / f"{mode}.mp4")
    none = warping_error(outputs["none"], maps)
    assert warping_error(outputs["flow"], maps) < 0.6 * none
    assert abs(strength(inputs, outputs["flow"]) / strength(inputs, outputs["none"]) - 1) < 0.1
    assert not np.array_equal(outputs["norm"][-1], outputs["none"][-1])  # carried statistics changed the frames


def test_stylize_a_clip_keeps_frames_fps_size_and_sound(run, tmp_path):
    pts = [0, 1, 2, 4, 5, 7, 8, 9]  # variable rate: frames missing at 3 and 6
    frames, _ = camera_clip("chelsea.png", (65, 47), len(pts), seed=4)
    src = write_clip(tmp_path / "clip.mov", frames, rate=12, pts=pts, rotation=270)
    result = run("stylize", str(src), "--style", "udnie", "--stabilize", "flow", "--strength", "0.8")
    assert result.returncode == 0, result.stderr
    out = tmp_path / "clip_udnie.mov"
    with av.open(str(src)) as a, av.open(str(out)) as b:
        fa, fb = list(a.decode(video=0)), list(b.decode(video=0))
        assert [f.time for f in fb] == [f.time for f in fa] and len(fb) == len(pts)
        assert (b.streams.video[0].width, b.streams.video[0].height) == (65, 47)
        assert fb[0].rotation == fa[0].rotation and fa[0].rotation % 360 == 270
        assert [s.codec_context.name for s in b.streams.audio] == ["aac"]
    assert np.abs(read_frames(out)[2].astype(float) - read_frames(src)[2]).mean() > 10  # stylized


@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
                    reason="FFmpeg's command-line tools are not installed (.ci/run installs them)")
@pytest.mark.parametrize("suffix, codecs", [(".mp4", ["h264", "aac"]), (".webm", ["vp9", "opus"])])
def test_a_stylized_clip_plays_in_ffmpegs_own_player_with_its_sound(run, tmp_path, suffix, codecs):
    """ffplay, VLC and mpv decode with FFmpeg's libraries: ffmpeg's decoder must read every packet of both
    streams without an error, and ffprobe must find the picture and the sound lasting as long as each other."""
    frames, _ = camera_clip("astronaut.png", (64, 48), 12, seed=2)
    src = write_clip(tmp_path / f"clip{suffix}", frames, rate=12)
    out = tmp_path / f"out{suffix}"
    assert run("stylize", src, "-o", out, "--style", "wave").returncode == 0
    decode = subprocess.run(["ffmpeg", "-v", "error", "-xerror", "-i", str(out), "-map", "0", "-f", "null", "-"],
                            capture_output=True, text=True)
    assert decode.returncode == 0 and decode.stderr == "", decode.stderr
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(out)],
                                      capture_output=True, text=True, check=True).stdout)
    streams = {s["codec_type"]: s for s in probe["streams"]}
    assert [streams["video"]["codec_name"], streams["audio"]["codec_name"]] == codecs
    assert streams["video"]["pix_fmt"] == "yuv420p"  # even sides: what browsers and QuickTime play too
    assert int(streams["video"].get("nb_frames", 12)) == 12  # WebM does not count its frames

    def seconds(stream: dict) -> float:  # MP4 states a stream's duration; WebM as a tag, hh:mm:ss.fraction
        if "duration" in stream:
            return float(stream["duration"])
        hours, minutes, rest = stream["tags"]["DURATION"].split(":")
        return 3600 * int(hours) + 60 * int(minutes) + float(rest)

    durations = [seconds(streams["video"]), seconds(streams["audio"])]
    assert all(abs(d - 1.0) < 0.1 for d in durations), durations  # 12 frames at 12 fps and the tone with them


def test_frame_folders_through_the_cli(run, tmp_path):
    frames, _ = camera_clip("coffee.png", (48, 32), 4)
    src = write_clip(tmp_path / "clip.mp4", frames, rate=24, audio=False)
    result = run("stylize", str(src), "--frames", "--stabilize", "none")
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "clip_starry_night"
    assert len(list(folder.glob("frame_*.png"))) == 4
    result = run("stylize", str(folder), "--frames", "--fps", "8", "-o", str(tmp_path / "again.mkv"))
    assert result.returncode == 0, result.stderr
    with av.open(str(tmp_path / "again.mkv")) as clip:
        assert [round(f.time, 3) for f in clip.decode(video=0)] == [0, 0.125, 0.25, 0.375]


@pytest.mark.parametrize("make", ["text", "same-output", "bad-mode", "max-size"])
def test_bad_video_input_is_one_error_line_and_no_file(run, tmp_path, make):
    frames, _ = camera_clip("coffee.png", (48, 32), 3)
    src = write_clip(tmp_path / "clip.mp4", frames, rate=24)
    args = {"text": [str(tmp_path / "notes.mp4")], "same-output": [str(src), "-o", str(src)],
            "bad-mode": [str(src), "--stabilize", "smooth"], "max-size": [str(src), "--max-size", "20"]}[make]
    (tmp_path / "notes.mp4").write_text("no pictures here")
    before = sorted(p.name for p in tmp_path.iterdir())
    data = src.read_bytes()
    result = run("stylize", *args)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) >= 1 and all("Traceback" not in line for line in result.stderr.splitlines())
    assert sorted(p.name for p in tmp_path.iterdir()) == before and src.read_bytes() == data


def test_the_bench_writes_its_table(tmp_path, one_thread):
    text = run_video_benchmark(tmp_path / "video.md", device="cpu", quick=True, echo=None)
    assert (tmp_path / "video.md").read_text() == text
    for mode in STABILIZE_MODES:
        assert f"| {mode} |" in text
    assert "cuts found at [3], made at [3]" in text
