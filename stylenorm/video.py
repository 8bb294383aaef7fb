"""Safe video I/O: decode a clip's frames and write a processed clip that keeps what the input had.

PyAV (FFmpeg) decodes and encodes; it is the optional extra `stylenorm[video]`.
What a written clip keeps from its input:

- every frame, with its own timestamp (variable frame rate stays variable), so the
  frame count, frame rate and duration are the input's;
- the size, odd sizes too (H.264 in 4:2:0 needs even sides, so odd-sized clips are
  written in 4:4:4, which VLC, mpv and ffplay play; browsers and QuickTime want even
  sides);
- the rotation metadata (display matrix): frames are handed to the caller upright and
  written back in the stored orientation with the same rotation flag;
- the audio tracks, copied packet by packet (not re-encoded) where the output
  container takes their codec, else re-encoded to the container's usual codec.

Output goes to a temporary file beside the target that is renamed once complete, so
an error or Ctrl-C never leaves a partial clip. A folder of numbered frames
(frame_000001.png, ...) can stand in for a clip on either side.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from stylenorm.atomic import atomic_directory, atomic_output
from stylenorm.errors import Cancelled, StylenormError
from stylenorm.images import IMAGE_SUFFIXES, list_images, load_image, save_image

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
# Output container -> video encoder. H.264 plays everywhere; WebM allows only VP8/VP9/AV1.
_VIDEO_ENCODERS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9",
                   ".avi": "libx264"}
# Audio codecs each container takes as they are (None: any); others are re-encoded to _AUDIO_ENCODERS.
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"}
_AUDIO_COPY: dict[str, set[str] | None] = {
    ".mp4": _MP4_AUDIO, ".m4v": _MP4_AUDIO, ".mov": _MP4_AUDIO | {"pcm_s16le", "pcm_s24le", "pcm_f32le"},
    ".mkv": None, ".webm": {"opus", "vorbis"}, ".avi": {"mp3", "ac3", "pcm_s16le", "pcm_u8"},
}
_AUDIO_ENCODERS = {".mp4": "aac", ".m4v": "aac", ".mov": "aac", ".mkv": "aac", ".webm": "libopus", ".avi": "libmp3lame"}
DEFAULT_FOLDER_FPS = Fraction(25)  # frame folders carry no timing
FRAME_NAME = "frame_{:06d}.png"
_NUMBERED = re.compile(r"^(.*?)(\d+)$")


class VideoError(StylenormError, ValueError):
    """A clip we cannot read or write, with what to do about it."""


def require_av():
    """The PyAV module, or an error naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise VideoError("video needs PyAV and OpenCV: pip install 'stylenorm[video]'") from None
    av.logging.set_level(av.logging.PANIC)  # FFmpeg's own log lines would bury our one error line
    return av


@dataclass
class Frame:
    rgb: np.ndarray  # uint8 (H, W, 3), upright
    pts: int  # in VideoInfo.time_base units


@dataclass
class VideoInfo:
    width: int  # as stored (before rotation)
    height: int
    time_base: Fraction
    rate: Fraction  # nominal frame rate (the average for variable-rate clips)
    frames: int  # declared frame count, 0 when the container does not say
    rotation: int = 0  # display rotation, degrees counter-clockwise (PyAV's VideoFrame.rotation)
    audio: list[str] = field(default_factory=list)  # codec of each audio track


def is_video(path: Path) -> bool:
    """Whether `path` is a clip, by its container (probed; not by extension), or a folder of numbered frames."""
    if path.is_dir():
        return numbered_frames(path) is not None
    if not path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES  # the error comes from the reader
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    try:
        av = require_av()
    except VideoError:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            raise
        return False
    try:
        with av.open(str(path)) as container:
            # FFmpeg opens single pictures too, through its image demuxers
            return bool(container.streams.video) and not container.format.name.endswith(("_pipe", "image2"))
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return path.suffix.lower() in VIDEO_SUFFIXES  # a broken clip: let the reader say what is wrong


def numbered_frames(folder: Path) -> list[Path] | None:
    """A folder's images in frame order when all of them are named <prefix><number> with one prefix, else None."""
    images = list_images(folder)
    matches = [_NUMBERED.match(p.stem) for p in images]
    if len(images) < 2 or not all(matches) or len({m.group(1) for m in matches}) != 1:
        return None
    return [p for _, p in sorted(zip((int(m.group(2)) for m in matches), images))]


def _upright_turns(rotation: float) -> int:
    """Quarter turns (np.rot90's k) that show a frame stored with this display rotation upright."""
    turns = round(rotation / 90)
    return turns % 4 if abs(rotation - 90 * turns) < 1 else 0  # other angles: left as stored


class ClipReader:
    """Frames of a clip (upright) interleaved with its audio packets, in file order."""

    def __init__(self, path: Path, max_pixels: int | None) -> None:
        self.av = av = require_av()
        self.path = path
        if not path.exists():
            raise VideoError(f"input not found: {path}; check the path")
        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            raise VideoError(f"{path} is not a video stylenorm can read, or it is damaged or truncated ({_reason(exc)}); "
                             "pass an MP4, MOV, MKV, WebM or AVI clip") from None
        try:
            self._setup(max_pixels)
        except BaseException:
            self.container.close()
            raise

    def _setup(self, max_pixels: int | None) -> None:
        c = self.container
        if not c.streams.video:
            raise VideoError(f"{self.path} has no video stream (only {', '.join(s.type for s in c.streams) or 'nothing'}); "
                             "pass a clip with pictures")
        self.stream = v = c.streams.video[0]
        ctx = v.codec_context
        if ctx is None or not v.codec_context.codec.name or v.codec_context.width <= 0:
            codec = getattr(getattr(ctx, "codec", None), "name", None) or "an unknown codec"
            raise VideoError(f"{self.path}: its video is in {codec}, which this FFmpeg cannot decode; "
                             "convert it to H.264 first (e.g. ffmpeg -i in -c:v libx264 out.mp4)")
        width, height = ctx.width, ctx.height
        if max_pixels and width * height > max_pixels:
            raise VideoError(f"{self.path} is {width}x{height} = {width * height / 1e6:.0f} MP per frame, over the "
                             f"{max_pixels / 1e6:.0f} MP limit; raise --max-pixels if you trust the file, or --max-size")
        self.audio = list(c.streams.audio)
        rate = v.average_rate or v.guessed_rate or v.base_rate or DEFAULT_FOLDER_FPS
        self.info = VideoInfo(width, height, Fraction(v.time_base or Fraction(1, 90000)), Fraction(rate),
                              int(v.frames or 0), audio=[a.codec_context.name for a in self.audio])

    def __iter__(self) -> Iterator[Frame | object]:
        av = self.av
        last = None
        step = max(1, round(1 / (self.info.rate * self.info.time_base))) if self.info.rate else 1
        turns = None
        try:
            for packet in self.container.demux(self.stream, *self.audio):
                if packet.stream is not self.stream:
                    yield packet
                    continue
                for frame in packet.decode():
                    if turns is None:
                        self.info.rotation = int(round(frame.rotation or 0))
                        turns = _upright_turns(self.info.rotation)
                    pts = frame.pts if frame.pts is not None else (0 if last is None else last + step)
                    if last is not None and pts <= last:
                        pts = last + 1  # the muxer needs rising timestamps
                    last = pts
                    rgb = frame.to_ndarray(format="rgb24")
                    yield Frame(np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb, pts)
        except av.FFmpegError as exc:
            raise VideoError(f"{self.path} is damaged or truncated ({_reason(exc)}); re-export or re-download it") from None

    def close(self) -> None:
        self.container.close()


class FolderReader:
    """A folder of numbered frames as a silent clip at DEFAULT_FOLDER_FPS (or the rate given)."""

    def __init__(self, path: Path, max_pixels: int | None, rate: Fraction | None = None) -> None:
        files = numbered_frames(path)
        if files is None:
            raise VideoError(f"{path} is not a folder of numbered frames (name them frame_0001.png, frame_0002.png, ...)")
        self.files = files
        first = load_image(files[0], max_pixels)
        width, height = first.size
        rate = Fraction(rate or DEFAULT_FOLDER_FPS)
        self.info = VideoInfo(width, height, 1 / rate, rate, len(files))
        self.max_pixels = max_pixels

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.files):
            rgb = load_image(path, self.max_pixels).rgb
            if rgb.shape[:2] != (self.info.height, self.info.width):
                raise VideoError(f"{path} is {rgb.shape[1]}x{rgb.shape[0]}, but the first frame is "
                                 f"{self.info.width}x{self.info.height}; give every frame one size")
            yield Frame(rgb, i)

    def close(self) -> None:
        pass


class ClipWriter:
    """Encodes frames with the reader's timing, size and rotation, and copies (or re-encodes) its audio."""

    def __init__(self, path: Path, suffix: str, reader: ClipReader | FolderReader, turns_back: Callable[[], int]) -> None:
        self.av = av = require_av()
        self.suffix = suffix
        self.reader = reader
        self.turns_back = turns_back
        self.container = av.open(str(path), "w", format=_MUXERS[suffix])
        info = reader.info
        self.video = v = self.container.add_stream(_VIDEO_ENCODERS[suffix], rate=info.rate)
        v.width, v.height = info.width, info.height
        even = info.width % 2 == 0 and info.height % 2 == 0
        v.pix_fmt = "yuv420p" if even or suffix == ".webm" else "yuv444p"
        v.codec_context.time_base = info.time_base
        v.time_base = info.time_base
        if suffix != ".webm":
            v.options = {"crf": "18", "preset": "medium"}  # visually lossless: the style's detail survives
        else:
            v.options = {"crf": "24", "b": "0", "row-mt": "1"}
        self.started = False
        self.waiting: list = []  # audio packets that arrive before the first frame (see write_frame)
        self.audio: dict[int, tuple[object, bool]] = {}  # input stream index -> (output stream, copied?)
        allowed = _AUDIO_COPY[suffix]
        for stream in getattr(reader, "audio", []):
            name = stream.codec_context.name
            if allowed is None or name in allowed:
                self.audio[stream.index] = (self.container.add_stream_from_template(stream), True)
            else:
                out = self.container.add_stream(_AUDIO_ENCODERS[suffix], rate=stream.codec_context.sample_rate or 48000)
                out.layout = stream.codec_context.layout
                self.audio[stream.index] = (out, False)

    def write_frame(self, rgb: np.ndarray, pts: int) -> None:
        if not self.started:
            # The rotation is read from the first decoded frame and must be set before the
            # header is written, which the first mux does; audio waits until then.
            rotation = self.reader.info.rotation
            if rotation:
                self.video.set_display_rotation(rotation)
            self.started = True
        turns = self.turns_back()
        stored = np.ascontiguousarray(np.rot90(rgb, -turns)) if turns else rgb
        frame = self.av.VideoFrame.from_ndarray(stored, format="rgb24")
        frame.pts = pts
        frame.time_base = self.reader.info.time_base
        self.container.mux(self.video.encode(frame))
        for packet in self.waiting:
            self.write_audio(packet)
        self.waiting.clear()

    def write_audio(self, packet) -> None:
        if not self.started:
            self.waiting.append(packet)
            return
        out, copied = self.audio[packet.stream.index]
        if copied:
            if packet.dts is None:  # the demuxer's end-of-stream marker, not data
                return
            packet.stream = out
            self.container.mux(packet)
        else:
            for frame in packet.decode():
                frame.pts = None  # the encoder's resampler restamps the re-framed samples
                self.container.mux(out.encode(frame))

    def finish(self) -> None:
        self.container.mux(self.video.encode())
        for out, copied in self.audio.values():
            if not copied:
                self.container.mux(out.encode())
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # the file is being thrown away; its trailer does not matter
            pass


class FolderWriter:
    """Numbered PNG frames (frame_000001.png, ...), upright."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0

    def write_frame(self, rgb: np.ndarray, pts: int) -> None:
        self.count += 1
        save_image(self.path / FRAME_NAME.format(self.count), rgb)

    def write_audio(self, packet) -> None:
        pass  # a folder of pictures has nowhere to keep sound

    def finish(self) -> None:
        pass

    def abort(self) -> None:
        pass


_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def open_reader(src: Path, max_pixels: int | None, rate: Fraction | None = None) -> ClipReader | FolderReader:
    if src.is_dir():
        return FolderReader(src, max_pixels, rate)
    return ClipReader(src, max_pixels)


def output_is_folder(dst: Path) -> bool:
    return dst.is_dir() or not dst.suffix


def check_output(src: Path, dst: Path) -> None:
    """Refuse, before any work, an output that is the input or that no container is known for."""
    if dst.exists() and src.exists() and (dst.resolve() == src.resolve() or os.path.samefile(dst, src)):
        raise VideoError(f"the output {dst} would overwrite the input {src}; pass another -o")
    if not output_is_folder(dst) and dst.suffix.lower() not in VIDEO_SUFFIXES:
        raise VideoError(f"cannot write a clip as {dst.name!r}; end -o with one of {', '.join(VIDEO_SUFFIXES)}, "
                         "or give a folder for numbered frames")


def transcode(src: Path, dst: Path, process: Callable[[Frame], np.ndarray], *, max_pixels: int | None = None,
              progress: bool = False, rate: Fraction | None = None,
              on_start: Callable[[VideoInfo], None] | None = None, stop: threading.Event | None = None) -> int:
    """Read src (a clip or a folder of numbered frames), pass each upright frame through `process`
    (uint8 RGB of the same size out), write dst (a clip, by its extension, or a frame folder).
    `stop`, once set, ends it at the next frame with Cancelled (and nothing written).

    Returns the number of frames written. dst appears only when complete.
    """
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    check_output(src, dst)
    reader = open_reader(src, max_pixels, rate)
    to_folder = output_is_folder(dst)
    count = 0
    try:
        if on_start is not None:
            on_start(reader.info)
        target = atomic_directory(dst) if to_folder else atomic_output(dst)
        try:
            with target as tmp:
                def turns():
                    return _upright_turns(reader.info.rotation)  # known once the first frame is decoded
                writer = FolderWriter(tmp) if to_folder else ClipWriter(tmp, dst.suffix.lower(), reader, turns)
                bar = tqdm(total=reader.info.frames or None, unit="frame", desc=src.name, disable=not progress,
                           leave=False)
                try:
                    for item in reader:
                        if isinstance(item, Frame):
                            if stop is not None and stop.is_set():
                                raise Cancelled(f"cancelled after {count} frames")
                            out = process(item)
                            if out.shape != item.rgb.shape or out.dtype != np.uint8:
                                raise VideoError(f"a frame came back {out.shape} {out.dtype}, not {item.rgb.shape} uint8")
                            writer.write_frame(out, item.pts)
                            count += 1
                            bar.update()
                        else:
                            writer.write_audio(item)
                    if count == 0:
                        raise VideoError(f"{src} has no frames to stylize; pass a clip with at least one frame")
                    declared = reader.info.frames
                    # MP4/MOV sample tables list every frame; AVI counts dropped frames too, so only those
                    if isinstance(reader, ClipReader) and "mp4" in reader.container.format.name and declared and count < declared * 0.9:
                        raise VideoError(f"{src} is damaged or truncated: it declares {declared} frames but only "
                                         f"{count} could be read; re-export or re-download it")
                    writer.finish()
                except BaseException:
                    writer.abort()
                    raise
                finally:
                    bar.close()
        except OSError as exc:
            if isinstance(exc, StylenormError):
                raise
            raise VideoError(f"could not write {dst} ({_reason(exc)}); check the folder exists and is writable") from None
    finally:
        reader.close()
    return count


def probe(path: Path) -> VideoInfo:
    """The clip's size, timing, declared frame count and audio codecs (rotation: from its first frame)."""
    reader = ClipReader(Path(path), None)
    try:
        for item in reader:
            if isinstance(item, Frame):
                break
        return reader.info
    finally:
        reader.close()
