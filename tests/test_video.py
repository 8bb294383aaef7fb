"""Video I/O: frames, timestamps, size, rotation and audio survive a round trip; every bad clip is one clear error."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from stylenorm import video  # noqa: E402
from stylenorm.bench.video import write_clip  # noqa: E402
from stylenorm.errors import StylenormError  # noqa: E402


def _mux_silence(out) -> None:
    """A short silent AAC track into an open PyAV output container."""
    s = out.add_stream("aac", rate=16000)
    s.layout = "mono"
    chunk = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="flt", layout="mono")
    chunk.sample_rate = 16000
    out.mux(s.encode(chunk))
    out.mux(s.encode())

def frames_of(n: int, h: int, w: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h, w, 3)).astype(np.float32)
    return [np.clip(base + 10 * i, 0, 255).astype(np.uint8) for i in range(n)]


def decoded(path: Path) -> dict:
    """What a player sees: frame times, size, rotation, audio codec and packets."""
    with av.open(str(path)) as clip:
        v = clip.streams.video[0]
        frames = list(clip.decode(v))
        times = [round(float(f.time), 4) for f in frames]
        rotation = frames[0].rotation if frames else 0
        size = (v.codec_context.width, v.codec_context.height)
    with av.open(str(path)) as clip:
        audio = [s.codec_context.name for s in clip.streams.audio]
        packets = [bytes(p) for p in clip.demux(audio=0) if p.size] if audio else []
    return {"times": times, "size": size, "rotation": rotation, "audio": audio, "packets": packets,
            "rgb": [f.to_ndarray(format="rgb24") for f in frames]}


def invert(frame: video.Frame) -> np.ndarray:
    return 255 - frame.rgb


def test_round_trip_keeps_frames_timing_size_and_copies_the_audio(tmp_path):
    src = write_clip(tmp_path / "in.mp4", frames_of(16, 48, 64), rate=24)
    dst = tmp_path / "out.mp4"
    assert video.transcode(src, dst, invert) == 16
    a, b = decoded(src), decoded(dst)
    assert b["times"] == a["times"] and len(b["times"]) == 16
    assert b["size"] == (64, 48)
    assert b["audio"] == ["aac"] and b["packets"] == a["packets"] and len(a["packets"]) > 5  # copied, not re-encoded
    # the pictures went through `process` (inverted), within the codec's loss
    assert np.abs(b["rgb"][3].astype(int) - (255 - a["rgb"][3].astype(int))).mean() < 6


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".mov"])
def test_odd_size_rotation_and_variable_frame_rate(tmp_path, suffix):
    pts = [0, 40, 90, 100, 200, 230, 300, 400, 410, 500, 620, 700]
    src = write_clip(tmp_path / f"in{suffix}", frames_of(12, 47, 65), rate=24, pts=pts, time_base=Fraction(1, 1000),
                     rotation=90)
    seen = []

    def check(frame: video.Frame) -> np.ndarray:
        seen.append(frame.rgb.shape)
        return frame.rgb

    dst = tmp_path / f"out{suffix}"
    video.transcode(src, dst, check)
    assert set(seen) == {(65, 47, 3)}  # handed over upright: a quarter turn of the stored 65x47
    a, b = decoded(src), decoded(dst)
    assert b["times"] == a["times"] == [t / 1000 for t in pts]
    assert b["size"] == (65, 47) and b["rotation"] == a["rotation"] == 90
    assert b["audio"] == ["aac"]
    # stored orientation written back: the unchanged frames come out as they went in
    # (random pixels lose ~5 grey levels to a second lossy encoding; a half-turn off would be ~85)
    assert np.abs(b["rgb"][5].astype(int) - a["rgb"][5].astype(int)).mean() < 8


def test_audio_the_output_container_refuses_is_re_encoded(tmp_path):
    src = write_clip(tmp_path / "in.mp4", frames_of(12, 48, 64), rate=24)
    dst = tmp_path / "out.webm"
    video.transcode(src, dst, invert)
    out = decoded(dst)
    assert out["audio"] == ["opus"] and len(out["times"]) == 12
    with av.open(str(dst)) as clip:
        audio_seconds = sum(f.samples for f in clip.decode(audio=0)) / clip.streams.audio[0].rate
    assert audio_seconds == pytest.approx(0.5, abs=0.08)  # the tone is as long as the 12 frames at 24 fps


def test_frame_folders_in_and_out(tmp_path):
    src = write_clip(tmp_path / "in.mp4", frames_of(5, 48, 64), rate=24)
    folder = tmp_path / "frames"
    assert video.transcode(src, folder, invert) == 5
    assert sorted(p.name for p in folder.iterdir()) == [video.FRAME_NAME.format(i) for i in range(1, 6)]
    assert video.numbered_frames(folder) is not None and video.is_video(folder)
    clip = tmp_path / "back.mp4"
    video.transcode(folder, clip, invert, rate=Fraction(10))
    assert decoded(clip)["times"] == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_the_container_not_the_extension_says_video(tmp_path):
    src = write_clip(tmp_path / "in.mp4", frames_of(3, 48, 64), rate=24)
    disguised = tmp_path / "clip.bin"
    disguised.write_bytes(src.read_bytes())
    assert video.is_video(disguised)
    from PIL import Image

    Image.fromarray(frames_of(1, 8, 8)[0]).save(tmp_path / "picture.dat", format="PNG")
    assert not video.is_video(tmp_path / "picture.dat")


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir() if p.is_file()}


def bad_clip(kind: str, folder: Path) -> Path:
    if kind == "not a video":
        path = folder / "notes.mp4"
        path.write_text("these are not pictures\n" * 50)
    elif kind == "no video stream":
        path = folder / "sound.m4a"
        with av.open(str(path), "w", format="mp4") as out:
            _mux_silence(out)
    elif kind == "zero frames":
        path = folder / "empty.mkv"
        with av.open(str(path), "w") as out:
            v = out.add_stream("libx264", rate=24)
            v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
            _mux_silence(out)
    elif kind == "truncated":
        whole = write_clip(folder / "whole.mp4", frames_of(16, 48, 64), rate=24)
        path = folder / "cut.mp4"
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
        whole.unlink()
    elif kind == "unsupported codec":
        clip = write_clip(folder / "good.avi", frames_of(4, 48, 64), rate=24, audio=False)
        path = folder / "odd.avi"
        path.write_bytes(clip.read_bytes().replace(b"H264", b"ZZZZ"))  # a FOURCC no decoder knows
        clip.unlink()
    else:
        raise AssertionError(kind)
    return path


BAD = ["not a video", "no video stream", "zero frames", "truncated", "unsupported codec"]
MESSAGES = {"not a video": "not a video", "no video stream": "no video stream", "zero frames": "no frames",
            "truncated": "truncated", "unsupported codec": "cannot decode"}


@pytest.mark.parametrize("kind", BAD)
def test_bad_clips_are_one_clear_error_and_leave_nothing_behind(tmp_path, kind):
    src = bad_clip(kind, tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(video.VideoError, match=MESSAGES[kind]) as info:
        video.transcode(src, tmp_path / "out.mp4", invert)
    assert "\n" not in str(info.value)
    assert snapshot(tmp_path) == before  # no output, no temporary file, the input untouched


def test_pixel_limit_same_path_unwritable_and_unknown_container(tmp_path):
    src = write_clip(tmp_path / "in.mp4", frames_of(4, 48, 64), rate=24)
    before = snapshot(tmp_path)
    with pytest.raises(video.VideoError, match="limit"):
        video.transcode(src, tmp_path / "out.mp4", invert, max_pixels=1000)
    with pytest.raises(video.VideoError, match="overwrite the input"):
        video.transcode(src, src, invert)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    before["file"] = snapshot(tmp_path)["file"]
    with pytest.raises(StylenormError, match="cannot create the folder"):
        video.transcode(src, blocker / "out.mp4", invert)
    with pytest.raises(video.VideoError, match=".mp4"):
        video.transcode(src, tmp_path / "out.gif", invert)
    assert snapshot(tmp_path) == before


def test_ctrl_c_leaves_no_partial_file(tmp_path):
    src = write_clip(tmp_path / "in.mp4", frames_of(12, 48, 64), rate=24)
    before = snapshot(tmp_path)
    count = 0

    def interrupted(frame: video.Frame) -> np.ndarray:
        nonlocal count
        count += 1
        if count == 6:
            raise KeyboardInterrupt
        return frame.rgb

    with pytest.raises(KeyboardInterrupt):
        video.transcode(src, tmp_path / "out.mp4", interrupted)
    with pytest.raises(KeyboardInterrupt):
        count = 0
        video.transcode(src, tmp_path / "frames", interrupted)
    assert snapshot(tmp_path) == before and [p.name for p in tmp_path.iterdir()] == ["in.mp4"]
