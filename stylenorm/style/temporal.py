"""Stylizing video: frame by frame, with the flicker of per-frame stylization taken out.

--stabilize picks how:
  none  every frame on its own (the baseline; it flickers)
  norm  InstanceNorm statistics carried across frames (`stylenorm.norms.temporal_instance_norm`):
        each IN layer normalises with an exponential moving average of the recent frames'
        per-channel mean and variance, reset at scene cuts, so the tone no longer jumps
  flow  norm, plus each frame blended with the previous output warped by optical flow of
        the input (OpenCV DIS), only where the flow passes a forward-backward check

Scene cuts are found in the input (colour histograms of small thumbnails), and both
the carried statistics and the flow blending start afresh after one.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from stylenorm.errors import StylenormError
from stylenorm.images import to_tensor, to_uint8
from stylenorm.norms import temporal_instance_norm
from stylenorm.style.config import DEFAULT_STABILIZE, STABILIZE_MODES, StylizeOptions, check_strength
from stylenorm.style.stylize import (
    StyleChoice,
    _resample,
    inference_net,
    one_pass_limit,
    preserve_colors,
    resolve_precision,
    working_size,
)

# Share of the current frame in the carried IN statistics (1 = per-frame IN). `stylenorm
# bench video` chose it: see the README's video section.
NORM_MOMENTUM = 0.1
# Weight of the warped previous output where the flow is reliable.
FLOW_BLEND = 0.6
# Half the L1 distance of two thumbnails' colour histograms (0 = same colours, 1 = none shared)
# above which two frames are a cut: a pan or zoom over one scene stays below 0.2 on the
# bench's clips, the cut between two demo photos is above 0.5.
CUT_THRESHOLD = 0.35


def _cv2():
    try:
        import cv2
    except ImportError:
        raise StylenormError("video needs PyAV and OpenCV: pip install 'stylenorm[video]'") from None
    return cv2


class SceneCuts:
    """Says whether each frame starts a new scene: its colour histogram against the previous frame's."""

    def __init__(self, threshold: float = CUT_THRESHOLD, bins: int = 16) -> None:
        self.threshold = threshold
        self.bins = bins
        self.previous: np.ndarray | None = None

    def histogram(self, rgb: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        thumb = cv2.resize(rgb, (64, 36), interpolation=cv2.INTER_AREA)
        hist = np.concatenate([np.bincount(thumb[..., c].ravel().astype(np.int64) * self.bins // 256, minlength=self.bins)
                               for c in range(3)]).astype(np.float64)
        return hist / hist.sum() * 3  # each channel's histogram sums to 1

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        return float(np.abs(a - b).sum() / 6)

    def __call__(self, rgb: np.ndarray) -> bool:
        hist = self.histogram(rgb)
        cut = self.previous is not None and self.distance(hist, self.previous) > self.threshold
        self.previous = hist
        return cut


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """image sampled at p + flow(p) (bilinear; outside the frame: the nearest border pixel)."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    grid = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x, map_y = grid[1] + flow[..., 0], grid[0] + flow[..., 1]
    return cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def reliable(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Pixels of frame t whose flow to t-1 (`backward`) is trusted: the forward flow from t-1 brings
    them back (Sundaram et al. 2010's check, as in Ruder et al. 2016), and they land inside t-1."""
    h, w = backward.shape[:2]
    forward_there = warp(forward, backward)
    mismatch = np.square(backward + forward_there).sum(-1)
    tolerance = 0.01 * (np.square(backward).sum(-1) + np.square(forward_there).sum(-1)) + 0.5
    y, x = np.mgrid[0:h, 0:w]
    tx, ty = x + backward[..., 0], y + backward[..., 1]
    inside = (tx >= 0) & (tx <= w - 1) & (ty >= 0) & (ty <= h - 1)
    return (mismatch <= tolerance) & inside


class FlowBlender:
    """Blends each stylized frame with the previous result warped onto it, where the flow is reliable."""

    def __init__(self, blend: float = FLOW_BLEND) -> None:
        cv2 = _cv2()
        self.blend = blend
        self.dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        self.reset()

    def reset(self) -> None:
        self.gray: np.ndarray | None = None
        self.result: np.ndarray | None = None

    def __call__(self, rgb: np.ndarray, stylized: np.ndarray) -> np.ndarray:
        """rgb: the input frame, uint8 (H, W, 3); stylized: float32 (H, W, 3) in [0, 1]."""
        cv2 = _cv2()
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        out = stylized
        if self.gray is not None:
            backward = self.dis.calc(gray, self.gray, None)
            forward = self.dis.calc(self.gray, gray, None)
            mask = reliable(backward, forward)[..., None]
            carried = warp(self.result, backward)
            out = np.where(mask, self.blend * carried + (1 - self.blend) * stylized, stylized).astype(np.float32)
        self.gray, self.result = gray, out
        return out


class VideoStylizer:
    """Stylizes the frames of one clip in order; use as a context manager around the clip."""

    def __init__(self, choice: StyleChoice, *, stabilize: str = DEFAULT_STABILIZE, strength: float = 1.0,
                 preserve_color: bool = False, style_scale: float | None = 1.0, precision: str = "fp32",
                 momentum: float = NORM_MOMENTUM, blend: float = FLOW_BLEND) -> None:
        if stabilize not in STABILIZE_MODES:
            raise StylenormError(f"--stabilize {stabilize!r} is not a mode; use one of {', '.join(STABILIZE_MODES)}")
        check_strength(strength)
        working_size(1, 1, style_scale)
        self.stabilize = stabilize
        self.strength, self.preserve_color, self.style_scale = strength, preserve_color, style_scale
        self.momentum = momentum
        self.device = next(choice.model.net.parameters()).device
        self.dtype = resolve_precision(precision, self.device)
        # One network for the whole clip: the temporal IN state lives in its layers.
        self.net = inference_net(choice.model.net, self.dtype)
        self.style = choice.style_arg()
        self.cuts = SceneCuts()
        self.flow = FlowBlender(blend) if stabilize == "flow" else None
        self._temporal = None
        self._reset_norm = None
        self.cut_frames: list[int] = []
        self.count = 0

    def __enter__(self) -> "VideoStylizer":
        if self.stabilize in ("norm", "flow"):
            self._temporal = temporal_instance_norm(self.net, self.momentum)
            self._reset_norm = self._temporal.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._temporal is not None:
            self._temporal.__exit__(*exc)
            self._temporal = None

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """One upright input frame, uint8 (H, W, 3) -> its stylized frame, same shape."""
        if self.cuts(rgb):
            self.cut_frames.append(self.count)
            if self._reset_norm is not None:
                self._reset_norm()
            if self.flow is not None:
                self.flow.reset()
        self.count += 1
        x = to_tensor(rgb)
        size = tuple(x.shape[-2:])
        work = working_size(*size, self.style_scale)
        if work[0] * work[1] > one_pass_limit(self.device, self.dtype):
            raise StylenormError(f"frames stylized at {work[1]}x{work[0]} do not fit one pass on {self.device}; "
                                 "raise --style-scale")
        x_dev = _resample(x, work).to(self.device)
        if self.dtype != torch.float32:
            x_dev = x_dev.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = self.net(x_dev, self.style).float().cpu().clamp(0, 1).contiguous()
        y = _resample(y, size)
        if self.flow is not None:
            stylized = y[0].permute(1, 2, 0).numpy()
            y = torch.from_numpy(self.flow(rgb, np.ascontiguousarray(stylized))).permute(2, 0, 1).unsqueeze(0)
        if self.preserve_color:
            y = preserve_colors(y, x)
        if self.strength < 1.0:
            y = self.strength * y + (1 - self.strength) * x
        return to_uint8(y)


def stylize_video(choice: StyleChoice, src: Path, dst: Path, options: StylizeOptions | None = None, *,
                  progress: bool = False, stop: threading.Event | None = None) -> Path:
    """Stylize a clip (or a folder of numbered frames) into dst: a clip by its extension, or a frame folder."""
    from stylenorm.video import transcode

    options = options or StylizeOptions()
    if options.max_size:
        raise StylenormError("--max-size resizes photos; a clip keeps its size (use --style-scale for the strokes)")
    if options.tile_size:
        raise StylenormError("--tile-size applies to photos; clip frames are stylized in one pass each")
    with VideoStylizer(choice, stabilize=options.stabilize, strength=options.strength,
                       preserve_color=options.preserve_color, style_scale=options.style_scale,
                       precision=options.precision) as stylizer:
        transcode(src, dst, lambda frame: stylizer(frame.rgb), max_pixels=options.max_pixels or None, progress=progress,
                  rate=Fraction(options.fps).limit_denominator(1001) if options.fps else None, stop=stop)
    return dst


def is_clip(path: Path, frames: bool = False) -> bool:
    """Whether stylize takes this input as a clip: a video file by its container, or (frames) a folder."""
    from stylenorm.video import is_video

    if path.is_dir():
        return frames
    return is_video(path)


def clip_output_suffix(path: Path, frames: bool = False) -> str:
    """The default output's suffix: the input's container, MP4 for others; "" (a frame folder) with frames."""
    from stylenorm.video import VIDEO_SUFFIXES

    if frames:
        return ""
    return path.suffix if path.suffix.lower() in VIDEO_SUFFIXES else ".mp4"
