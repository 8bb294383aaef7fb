"""How many training images until an ablation task's runs have converged?

Trains one run per NORM:BATCH:IMAGES argument with the task's `small` preset (its `images` replaced), through
the task's own runner and scoring, and prints its scores and the convergence test's training-loss change over
the last quarter (the reports' gate: a fall of more than 5 % is still learning). Runs go to
runs/budget_probe/TASK/. The style task trains on the project's shared data (../shared beside the clone).
    python scripts/ablation/budget_probe.py diffusion gn8:32:16384 gn8:32:32768 bn:32:32768
    python scripts/ablation/budget_probe.py style in:32:4096 in:32:8192 in:8:8192
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from stylenorm.ablation.claims import last_quarter_change
from stylenorm.ablation.presets import get_preset
from stylenorm.ablation.records import Grid
from stylenorm.ablation.tasks import get_task

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SCORES = ("fid", "heldout_loss", "heldout_style", "heldout_content", "test_error")

torch.set_num_threads(1)
task_name, specs = sys.argv[1], sys.argv[2:]
task, base = get_task(task_name), get_preset(task_name, "small")
grid = Grid(task=task_name, style_image=str(SHARED / "styles" / "starry_night.jpg"), data=str(SHARED / "content"),
            vgg_weights=str(SHARED / "vgg16-caffe-hed.safetensors"), cpu=True, threads=1)
for spec in specs:
    norm, batch_size, images = spec.split(":")
    started = time.perf_counter()
    result = task.run(grid, replace(base, images=int(images)), norm, int(batch_size), 0,
                      Path(f"runs/budget_probe/{task_name}/{norm}_bs{batch_size}_{images}"))
    scores = {key: round(result[key], 4) for key in SCORES if key in result}
    print(json.dumps({"run": spec, "seconds": round(time.perf_counter() - started), **scores,
                      "images_per_s": round(result["images_per_s"]),
                      "last_quarter_change": round(last_quarter_change(result["loss_curve"]), 4)}),
          flush=True)
