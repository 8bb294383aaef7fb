"""PSNR of an exported ONNX model (onnxruntime, CPU) against `stylenorm stylize --precision fp32`, per demo photo.

    python scripts/export/onnx_vs_stylize.py MODEL.onnx --style STYLE [--threads 1]

Each bundled demo photo at its own size (several are not divisible by 4); both results as 8-bit images,
the form a user gets. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from stylenorm.bench.stylize import DEMO, psnr_db
from stylenorm.export import onnx_session, run_onnx
from stylenorm.images import list_images, load_image, to_tensor
from stylenorm.style.config import StylizeOptions
from stylenorm.style.stylize import resolve_style, stylize_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--style", required=True, help="the style the model was exported with")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    session = onnx_session(args.model, threads=args.threads)
    choice = resolve_style(args.style)
    print("| photo | size | PSNR vs stylize --precision fp32 (dB) | largest difference (grey levels) |")
    print("| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for src in list_images(DEMO):
            reference = Path(tmp) / f"{src.stem}.png"
            stylize_file(choice, src, reference, StylizeOptions(precision="fp32"))
            want = to_tensor(load_image(reference).rgb)
            got = run_onnx(session, to_tensor(load_image(src).rgb))
            worst = (got.mul(255).round() - want.mul(255).round()).abs().max().item()
            print(f"| {src.name} | {want.shape[-1]}x{want.shape[-2]} | {psnr_db(got, want):.1f} | {worst:.0f} |")


if __name__ == "__main__":
    main()
