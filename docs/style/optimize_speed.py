"""Time one loss evaluation (forward + backward) of `stylize --style PAINTING` per precision and memory format.

Run from the repository root with ../shared beside it: OMP_NUM_THREADS=1 python docs/style/optimize_speed.py bf16 fp32
"""
import sys, time, torch
torch.set_num_threads(1)
from stylenorm.style.optimize import *
from stylenorm.style.evaluate import load_photo
vgg,_ = load_loss_network('/work/shared/data/vgg16-caffe-hed.safetensors')
photo = load_photo('stylenorm/data/demo/chelsea.png', 512)
painting='/work/shared/data/styles/starry_night.jpg'
for prec in sys.argv[1:]:
  for cl in (False, True):
    v = vgg.to(memory_format=torch.channels_last) if cl else vgg.to(memory_format=torch.contiguous_format)
    dt = vgg_dtype(prec)
    opts=OptimizeOptions(precision=prec)
    p = load_painting(painting, 512)
    obj = Objective(v, p, photo, opts, dt)
    x = (photo.contiguous(memory_format=torch.channels_last) if cl else photo.clone()).requires_grad_(True)
    ts=[]
    for i in range(3):
        t=time.perf_counter(); l=obj(x)['total']; l.backward(); ts.append(time.perf_counter()-t)
    print(prec, 'channels_last' if cl else 'nchw', [round(t,2) for t in ts], flush=True)
