"""What `stylenorm stylize` does with its inputs: each photo to stylize.py, each clip to temporal.py.

Its own module because it needs both: the video path (temporal.py) builds on the photo
path (stylize.py), so the one function that chooses between them sits above the two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from stylenorm.style.config import StylizeOptions
from stylenorm.style.stylize import StyleChoice, collect_inputs, output_paths, process_each, stylize_file
from stylenorm.style.temporal import clip_output_suffix, is_clip, stylize_video


def stylize_many(choice: StyleChoice, inputs: list[Path], output: Path | None, options: StylizeOptions, *,
                 report: Callable[[str], None], progress: bool = False) -> int:
    """Stylize every input; one bad file does not stop the others. Returns the number of failures.

    Clips (and, with options.frames, folders of numbered frames) go to the video path (style/temporal.py).
    """
    clips = {p: clip_output_suffix(p, options.frames) for p in inputs if is_clip(p, options.frames)}
    files = list(clips) + collect_inputs([p for p in inputs if p not in clips], report)

    def work(src: Path, dst: Path) -> None:
        if src in clips:
            stylize_video(choice, src, dst, options, progress=progress)
        else:
            stylize_file(choice, src, dst, options, progress=progress)

    return process_each(list(zip(files, output_paths(files, inputs, output, choice.label, clips, report))), work, report)
