"""How many training images until the diffusion ablation's small U-Net draws digits?

Trains one run per NORM:BATCH:IMAGES argument with the `small` preset's model and scoring (its `images`
replaced) and prints its Fréchet distance and the
convergence test's loss change over the last quarter. Each run keeps its samples in runs/budget_probe/.
    python docs/ablation/diffusion/budget_probe.py gn8:32:16384 gn8:32:32768 bn:32:32768
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from stylenorm.ablation.claims import last_quarter_change
from stylenorm.ablation.diffusion_task import run_diffusion
from stylenorm.ablation.presets import get_preset

torch.set_num_threads(1)
base = get_preset("diffusion", "small")
for spec in sys.argv[1:]:
    norm, batch_size, images = spec.split(":")
    started = time.perf_counter()
    result = run_diffusion(replace(base, images=int(images)), norm, int(batch_size), 0,
                           Path(f"runs/budget_probe/{norm}_bs{batch_size}_{images}"), cpu=True, threads=1)
    print(json.dumps({"run": spec, "seconds": round(time.perf_counter() - started), "fid": round(result["fid"], 1),
                      "heldout_loss": round(result["heldout_loss"], 4), "images_per_s": round(result["images_per_s"]),
                      "last_quarter_change": round(last_quarter_change(result["loss_curve"]), 4)}),
          flush=True)
