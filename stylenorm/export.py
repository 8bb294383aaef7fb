"""`stylenorm export onnx`: the stylization network as one ONNX file, its style baked in.

The exported graph takes `image`, float32 (N, 3, H, W) RGB in [0, 1], and returns
`stylized`, the same shape in [0, 1]. N, H and W are dynamic: any H, W >= 5 works,
divisible by 4 or not, exactly as `stylenorm stylize --precision fp32` runs the
network on a photo at its own size (reflect-pad to a multiple of 4, crop back,
clamp). Resizing for --style-scale, --max-size, strength and colour preservation
stay outside the graph: they are cheap image operations an application does its
own way.

A multi-style network's conditional instance norm picks per-channel gamma/beta
from a table of styles at run time; here the chosen style's (or blend's) rows
are mixed once into plain per-channel affine parameters, so the graph has no
style input and no table.

Exporter: torch's torch.export-based exporter (`dynamo=True`). Both it and the
legacy TorchScript exporter reproduce the float32 forward to ~1e-6 at sizes not
divisible by 4 here; the TorchScript one is deprecated since torch 2.9, and a
trace records Python branches on the image size as constants, which is why
`_BakedStylizer.forward` pads without a branch.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from stylenorm import __version__
from stylenorm.atomic import atomic_output, check_writable
from stylenorm.errors import StylenormError
from stylenorm.norms import ConditionalNorm
from stylenorm.style.net import ConvLayer, Norm, TransformerNet, UpsampleConv
from stylenorm.style.stylize import FLOAT32_LAYERS, StyleChoice

INPUT_NAME = "image"
OUTPUT_NAME = "stylized"
OPSET = 18
MIN_SIDE = 5  # the first 9x9 conv reflect-pads by 4, which needs a padded side of at least 8
EXTRA_HINT = "pip install 'stylenorm[onnx]'"


def require_onnx() -> None:
    """Fail with the extra to install when onnx/onnxscript (the exporter's needs) are missing."""
    missing = []
    for module in ("onnx", "onnxscript"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise StylenormError(f"ONNX export needs {' and '.join(missing)}, which are not installed; run {EXTRA_HINT}")


def require_onnxruntime():
    """The onnxruntime module, or an error naming the extra."""
    try:
        import onnxruntime
    except ImportError:
        raise StylenormError(f"running an ONNX model needs onnxruntime, which is not installed; run {EXTRA_HINT}") from None
    return onnxruntime


class _BakedNorm(nn.Module):
    """A conditional norm with its style mix fixed: the affine-free norm, then one gamma/beta per channel.

    The same operations as ConditionalNorm.forward with a constant mix, so the result
    is the conditional network's to float rounding.
    """

    def __init__(self, conditional: ConditionalNorm, mix: torch.Tensor) -> None:
        super().__init__()
        self.norm = copy.deepcopy(conditional.norm)
        mix = mix.to(conditional.weight.dtype).unsqueeze(0)
        with torch.no_grad():
            gamma, beta = (mix @ conditional.weight)[0], (mix @ conditional.bias)[0]
        self.weight = nn.Parameter(gamma.view(1, -1, 1, 1).clone(), requires_grad=False)
        self.bias = nn.Parameter(beta.view(1, -1, 1, 1).clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.weight.to(x.dtype) + self.bias.to(x.dtype)


def bake_style(choice: StyleChoice) -> TransformerNet:
    """A one-style copy of the chosen network whose norms carry the chosen style's (or blend's) parameters."""
    net = copy.deepcopy(choice.model.net).eval().float().cpu()
    if net.num_styles > 1:
        mix = torch.tensor(choice.weights, dtype=torch.float32)
        for module in net.modules():
            if isinstance(module, Norm) and module.conditional:
                module.layer = _BakedNorm(module.layer, mix)
                module.conditional = False
        net.num_styles = 1
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class _BakedStylizer(nn.Module):
    """image (N, 3, H, W) in [0, 1] -> stylized, same shape, in [0, 1].

    TransformerNet.forward with the padding written for an exported graph: the pad
    amounts are computed from the symbolic size and always applied (zero is a valid
    amount), where the eager forward skips padding with a Python `if`, which an
    exporter would turn into a constraint on H and W. Reflect padding is what
    the eager forward uses on every size that the network accepts (H, W >= 5).
    """

    def __init__(self, net: TransformerNet, half: bool = False) -> None:
        super().__init__()
        self.net = net
        self.half = half
        if half:
            # As stylize's reduced precision (inference_net): the encoder stays float32, the
            # rest computes in float16 and the last conv's output returns to float32.
            net.half()
            for name in FLOAT32_LAYERS:
                net.get_submodule(name).float()
            net.conv_out.float()
            for name, module in net.named_modules():
                if isinstance(module, (ConvLayer, UpsampleConv)) and name not in FLOAT32_LAYERS + ("conv_out",):
                    module.register_forward_pre_hook(lambda module, args: (args[0].half(),))
            net.conv_out.register_forward_pre_hook(lambda module, args: (args[0].float(),))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        n = self.net
        h, w = image.shape[-2], image.shape[-1]
        x = F.pad(image, (0, (-w) % 4, 0, (-h) % 4), mode="reflect")
        return n.body(x, None)[..., :h, :w].float().clamp(0, 1)


def stylizer_module(choice: StyleChoice, half: bool = False) -> nn.Module:
    """The module that `export_onnx` exports (also runnable in torch, for checks)."""
    return _BakedStylizer(bake_style(choice), half=half).eval()


def check_output(output: str | os.PathLike) -> Path:
    """-o must name a .onnx file (checked before any weights load)."""
    output = Path(output)
    if output.is_dir():
        raise StylenormError(f"-o {output} is a folder; name the .onnx file to write")
    if output.suffix.lower() != ".onnx":
        raise StylenormError(f"-o {output} should end in .onnx (the file format onnxruntime and other runtimes load)")
    check_writable(output)
    return output


def export_onnx(choice: StyleChoice, output: str | os.PathLike, *, half: bool = False,
                source: str | None = None) -> Path:
    """Write the chosen style's network to `output` (.onnx), atomically. Returns the path."""
    require_onnx()
    import onnx

    output = check_output(output)
    module = stylizer_module(choice, half)
    example = torch.rand(1, 3, 64, 64)
    height = torch.export.Dim("height", min=MIN_SIDE, max=1 << 16)
    width = torch.export.Dim("width", min=MIN_SIDE, max=1 << 16)
    batch = torch.export.Dim("batch", min=1, max=1 << 12)
    with atomic_output(output) as tmp:
        program = torch.onnx.export(
            module, (example,), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=OPSET,
            dynamic_shapes={"image": {0: batch, 2: height, 3: width}}, dynamo=True, verbose=False,
        )
        model = program.model_proto
        # When torch.export cannot keep a dimension dynamic, torch.onnx.export falls back without an error
        # to a graph fixed to the example's size (seen with the diffusion U-Net); never ship that.
        dims = model.graph.input[0].type.tensor_type.shape.dim
        fixed = [axis for axis in (0, 2, 3) if not dims[axis].dim_param]
        if fixed:
            raise StylenormError(f"the exporter fixed axes {fixed} of the input to the example's size; "
                                 "this is a bug in stylenorm's export, please report it with your torch version")
        weights = dict(zip(choice.model.names, choice.weights))
        meta = {
            "stylenorm_version": __version__, "style": choice.label, "source": source or choice.model.source,
            "blend": ",".join(f"{name}:{w:.4g}" for name, w in weights.items() if w > 0),
            "precision": "float16 (encoder float32)" if half else "float32",
            "input": f"{INPUT_NAME}: float32 (N, 3, H, W) RGB in [0, 1], H and W >= {MIN_SIDE}",
            "output": f"{OUTPUT_NAME}: float32 (N, 3, H, W) RGB in [0, 1]",
        }
        onnx.helper.set_model_props(model, meta)
        model.producer_name, model.producer_version = "stylenorm", __version__
        # one self-contained file: the network is ~7 MB, far below protobuf's 2 GB limit
        onnx.save_model(model, str(tmp), save_as_external_data=False)
        onnx.checker.check_model(str(tmp))
    return output


def onnx_session(path: str | os.PathLike, device: str = "cpu", threads: int | None = None, arena: bool = True):
    """An onnxruntime InferenceSession for an exported model (CUDA provider for device cuda).

    arena=False: every run allocates and frees its own CPU memory (slower), so its peak
    can be measured; onnxruntime's default arena keeps memory between runs.
    """
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.enable_cpu_mem_arena = arena
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise StylenormError("onnxruntime here has no CUDA provider; install onnxruntime-gpu or use the CPU")
        providers = ["CUDAExecutionProvider"]
    else:
        providers = ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), options, providers=providers)


def run_onnx(session, x: torch.Tensor) -> torch.Tensor:
    """Stylize (N, 3, H, W) in [0, 1] with an onnxruntime session; a float32 CPU tensor back."""
    if min(x.shape[-2:]) < MIN_SIDE:
        raise StylenormError(f"the image is {x.shape[-1]}x{x.shape[-2]}; the network needs both sides >= {MIN_SIDE} px")
    out = session.run([OUTPUT_NAME], {INPUT_NAME: x.detach().float().cpu().contiguous().numpy()})[0]
    return torch.from_numpy(out)
