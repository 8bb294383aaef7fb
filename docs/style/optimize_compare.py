"""Compare optimization settings on one photo: time, eval-style scores, final losses, and the picture.

OMP_NUM_THREADS=1 python docs/style/optimize_compare.py PHOTO PAINTING WORK_SIZE TAG '{"optimizer": "lbfgs", ...}' ...
(each JSON is OptimizeOptions fields; pictures go to /tmp/opt/TAG_*.png)
"""
import sys, time, json, torch
torch.set_num_threads(1)
from stylenorm.style.optimize import *
from stylenorm.style.evaluate import load_photo, StyleScorer
from stylenorm.style.train import load_style_image
from stylenorm.images import save_image, to_uint8
vgg,_ = load_loss_network('/work/shared/data/vgg16-caffe-hed.safetensors')
from stylenorm.style.loss import load_vgg
from stylenorm.style.evaluate import EVAL_LAYERS
evgg,_ = load_vgg("/work/shared/data/vgg16-caffe-hed.safetensors", layers=EVAL_LAYERS)
import os; os.makedirs("/tmp/opt", exist_ok=True)
photo_path = sys.argv[1]; painting=sys.argv[2]; work=int(sys.argv[3]); tag=sys.argv[4]
configs = [json.loads(a) for a in sys.argv[5:]]
photo = load_photo(photo_path, 512)
scorer = StyleScorer(evgg, {"p": load_style_image(painting, 1024).unsqueeze(0)})
for cfg in configs:
    h=[]
    t=time.perf_counter()
    y = optimize_image(photo, painting, vgg, OptimizeOptions(**cfg), work_size=work, history=h)
    dt=time.perf_counter()-t
    s = scorer.score(y, photo, "p")
    name = f"/tmp/opt/{tag}_" + "_".join(f"{k}{v}" for k,v in cfg.items()) + ".png"
    save_image(name, to_uint8(y))
    print(json.dumps(cfg), f"{dt:.1f}s", f"match {s.style_match:.4f} strength {s.strength:.3f} luma {s.structure_luma:.2f} edges {s.structure_edges:.2f}",
          "loss", [round(e['total'],3) for e in h[::10]], name, flush=True)
