"""How many training images until the style ablation's runs stop learning?

Trains one run per NORM:BATCH:IMAGES argument with the `small` preset's model, painting and scoring (its
`images` replaced) and prints its held-out loss and the convergence test's loss change over the last
quarter (the report's gate: a fall of more than 5 % is still learning). Runs go to runs/style_budget_probe/.
    python docs/ablation/style/budget_probe.py in:32:4096 in:32:8192 gn:32:8192
"""

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from stylenorm.ablation.claims import last_quarter_change
from stylenorm.ablation.presets import get_preset
from stylenorm.ablation.style_task import run_style

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data"

torch.set_num_threads(1)
base = get_preset("style", "small")
for spec in sys.argv[1:]:
    norm, batch_size, images = spec.split(":")
    started = time.perf_counter()
    result = run_style(replace(base, images=int(images)), norm, int(batch_size), 0,
                       Path(f"runs/style_budget_probe/{norm}_bs{batch_size}_{images}"),
                       style_image=str(SHARED / "styles" / "starry_night.jpg"), data=str(SHARED / "content"),
                       vgg_weights=str(SHARED / "vgg16-caffe-hed.safetensors"), cpu=True, threads=1)
    print(json.dumps({"run": spec, "seconds": round(time.perf_counter() - started),
                      "heldout_loss": round(result["heldout_loss"], 4), "heldout_style": round(result["heldout_style"], 4),
                      "heldout_content": round(result["heldout_content"], 4), "images_per_s": round(result["images_per_s"]),
                      "last_quarter_change": round(last_quarter_change(result["loss_curve"]), 4)}),
          flush=True)
