"""The defaults of `stylenorm diffusion sample`, apart from the sampler code because they need no
torch: the ablation presets score their samples with them, and the report reads the presets.

The sampler and steps are the ones that matched DDIM-50's Fréchet distance with the fewest steps and
no background speckle on the shipped model, and per sampler the guidance that scored best (stochastic
sampling over-sharpens at 2): `stylenorm bench sampling`, the README's table; weights/mnist.json
records them.
"""

DEFAULT_SAMPLER, DEFAULT_STEPS = "dpm++sde", 10
DEFAULT_GUIDANCE = {"dpm++sde": 1.5, "dpm++": 2.0, "ddim": 2.0, "ddpm": 2.0}
SAMPLERS = tuple(DEFAULT_GUIDANCE)
