"""What a norm spec string means: its grammar, the table of norm kinds and their properties, the default specs.

Part of the norm backend (`stylenorm.norms` re-exports all of it); kept apart from the
layers because it needs no torch, so the command line builds its help from it without
paying for `import torch` on every `stylenorm --help`.

A spec is a kind plus its parameter: `gn8` is kind `gn` with 8 groups, `prms25` kind
`prms` with 25 %. Code that must treat kinds differently asks the kind's properties
(`norm_kind("gn8").batch_statistics`), never its name.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from stylenorm.errors import StylenormError

DEFAULT_GROUPS = 32
DEFAULT_PRMS_PERCENT = 6.25


class NormSpecError(StylenormError, ValueError):
    """A norm spec that does not name a normalization, or does not fit the layer."""


@dataclass(frozen=True)
class NormSpec:
    kind: str  # a key of NORM_KINDS
    groups: int | None = None  # gn: explicit group count, None = default rule
    percent: float | None = None  # prms: share of each sample used for the RMS


def partial_count(percent: float, values: int) -> int:
    """How many of a sample's first values partial RMSNorm takes its RMS over: ceil(percent / 100 * values),
    in exact arithmetic (in floats 7 / 100 * 100 is 7.000000000000001, whose ceil is 8)."""
    return math.ceil(Fraction(str(percent)) * values / 100)


def default_groups(num_channels: int, max_groups: int = DEFAULT_GROUPS) -> int:
    """The group count plain `gn` uses: max_groups, or its largest divisor of C below it."""
    return max(g for g in range(1, min(max_groups, num_channels) + 1) if num_channels % g == 0)


@dataclass(frozen=True)
class NormKind:
    name: str  # the spec without its parameter
    title: str  # what people call it, for messages
    # Training normalises with statistics of the whole batch, inference with running averages:
    # a model in train mode and in eval mode are two models, and tiny batches hurt.
    batch_statistics: bool
    # Each sample is normalised with its own statistics over its whole spatial extent, so a
    # crop or tile of an image gets other statistics than the whole image.
    image_statistics: bool
    # The statistics are per channel (one mean/variance per channel rather than per group or sample).
    per_channel: bool
    # The kind is GroupNorm with this many groups for a spec and C channels (ln: 1, in: C), else None.
    groups: Callable[[NormSpec, int], int] | None
    # How many values one statistic (a mean, variance or RMS) is computed over, for a spec, a batch of N
    # images and a layer of C channels of P positions each: (spec, N, C, P) -> count. None: a GroupNorm
    # kind's follows from `groups` (C / G x P); any other kind computes no statistics.
    statistic_size: Callable[[NormSpec, int, int, int], int] | None = None
    # InstanceNorm's temporal mode carries the statistics across video frames.
    temporal_mode: bool = False
    # how the spec writes its parameter, for the help text
    parameter: str = ""


NORM_KINDS: dict[str, NormKind] = {kind.name: kind for kind in (
    NormKind("bn", "BatchNorm", batch_statistics=True, image_statistics=False, per_channel=True, groups=None,
             statistic_size=lambda spec, n, c, p: n * p),
    NormKind("ln", "LayerNorm", batch_statistics=False, image_statistics=True, per_channel=False,
             groups=lambda spec, channels: 1),
    NormKind("in", "InstanceNorm", batch_statistics=False, image_statistics=True, per_channel=True,
             groups=lambda spec, channels: channels, temporal_mode=True),
    NormKind("gn", "GroupNorm", batch_statistics=False, image_statistics=True, per_channel=False,
             groups=lambda spec, channels: spec.groups or default_groups(channels), parameter="G (e.g. gn8)"),
    NormKind("rms", "RMSNorm", batch_statistics=False, image_statistics=True, per_channel=False, groups=None,
             statistic_size=lambda spec, n, c, p: c * p),
    NormKind("prms", "partial RMSNorm", batch_statistics=False, image_statistics=True, per_channel=False, groups=None,
             statistic_size=lambda spec, n, c, p: partial_count(spec.percent, c * p),
             parameter="P (e.g. prms25)"),
    NormKind("none", "no normalization", batch_statistics=False, image_statistics=False, per_channel=False,
             groups=None),
)}

# The specs an ablation, a benchmark or a help text goes through when not told otherwise:
# every kind, GroupNorm with its default and with 8 groups.
DEFAULT_SPECS = ("bn", "ln", "in", "gn", "gn8", "rms", "prms", "none")

SPEC_HELP = ", ".join(
    f"{k.name}, {k.name}{k.parameter}" if k.parameter else k.name for k in NORM_KINDS.values()
)

_SPEC_PATTERN = re.compile(r"^(bn|ln|in|none|rms|gn(\d+)?|prms(\d+(?:\.\d+)?)?)$")


def parse_spec(spec: str) -> NormSpec:
    """Parse a spec string, raising NormSpecError with the list of valid specs."""
    text = spec.strip().lower() if isinstance(spec, str) else ""
    match = _SPEC_PATTERN.match(text)
    if not match:
        raise NormSpecError(f"unknown norm spec {spec!r}; valid specs: {SPEC_HELP}")
    if text.startswith("gn"):
        groups = int(match.group(2)) if match.group(2) else None
        if groups is not None and groups < 1:
            raise NormSpecError(f"norm spec {spec!r}: the group count must be at least 1")
        return NormSpec("gn", groups=groups)
    if text.startswith("prms"):
        percent = float(match.group(3)) if match.group(3) else DEFAULT_PRMS_PERCENT
        if not 0 < percent <= 100:
            raise NormSpecError(f"norm spec {spec!r}: the percentage must be in (0, 100]")
        return NormSpec("prms", percent=percent)
    return NormSpec(text)


def norm_kind(spec: str | NormSpec) -> NormKind:
    """The kind a spec names, with its properties: norm_kind("GN8").name == "gn"."""
    return NORM_KINDS[(spec if isinstance(spec, NormSpec) else parse_spec(spec)).kind]


def statistic_size(spec: str | NormSpec, batch: int, channels: int, positions: int) -> int | None:
    """How many values one statistic of `spec` is computed over in a layer of `channels` channels and
    `positions` positions per channel, at `batch` images (None: the kind computes none). BatchNorm's
    per-channel statistic over 2 images of a 1 x 1 map is 2 values; InstanceNorm's there is 1, always zero."""
    parsed = spec if isinstance(spec, NormSpec) else parse_spec(spec)
    kind = NORM_KINDS[parsed.kind]
    if kind.statistic_size is not None:
        return kind.statistic_size(parsed, batch, channels, positions)
    if kind.groups is not None:
        return channels // kind.groups(parsed, channels) * positions
    return None
