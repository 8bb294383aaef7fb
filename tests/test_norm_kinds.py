"""The table of norm kinds says what each layer does: every property is checked on the layer make_norm builds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from stylenorm.norms import (
    DEFAULT_SPECS,
    NORM_KINDS,
    SPEC_HELP,
    InstanceNorm,
    NormSpecError,
    layer_kind,
    make_norm,
    norm_kind,
    norm_layer_inputs,
    parse_spec,
    smallest_statistic,
    statistic_size,
    temporal_instance_norm,
)

REPO = Path(__file__).resolve().parents[1]
C = 8
ONE_SPEC_PER_KIND = ["bn", "ln", "in", "gn4", "rms", "prms25", "none"]


def test_the_table_and_the_grammar_name_the_same_kinds():
    assert [norm_kind(name).name for name in NORM_KINDS] == list(NORM_KINDS)
    assert {norm_kind(spec).name for spec in DEFAULT_SPECS} == set(NORM_KINDS)  # the defaults cover every kind
    assert all(name in SPEC_HELP for name in NORM_KINDS)


def test_a_kind_is_found_whatever_the_case_of_the_spec():
    assert norm_kind("IN") is norm_kind("in") is NORM_KINDS["in"]
    assert norm_kind(" GN8 ") is norm_kind(parse_spec("gn")) is NORM_KINDS["gn"]


@pytest.mark.parametrize("spec", [s for s in ONE_SPEC_PER_KIND if s != "none"])
def test_the_layer_knows_its_kind(spec):
    assert layer_kind(make_norm(spec, C)) is norm_kind(spec)


def test_none_builds_no_layer_to_find():
    assert isinstance(make_norm("none", C), nn.Identity) and layer_kind(make_norm("none", C)) is None


def test_torch_layers_have_a_kind_too():
    assert layer_kind(nn.SyncBatchNorm(C)) is NORM_KINDS["bn"]
    assert layer_kind(nn.InstanceNorm2d(C)) is NORM_KINDS["in"]
    assert layer_kind(nn.LayerNorm(C)) is NORM_KINDS["ln"]
    assert layer_kind(nn.Conv2d(C, C, 1)) is None


def _first_sample(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return layer(x)[0]


@pytest.mark.parametrize("spec", ONE_SPEC_PER_KIND)
def test_batch_statistics_means_the_other_samples_change_the_output(spec):
    layer = make_norm(spec, C).train()
    x = torch.randn(4, C, 6, 6) * 3 + 1
    other = x.clone()
    other[1:] = other[1:] * 5 - 2  # same first sample, other batch mates
    changed = not torch.allclose(_first_sample(layer, x), _first_sample(layer, other), atol=1e-5)
    assert changed == norm_kind(spec).batch_statistics


@pytest.mark.parametrize("spec", ONE_SPEC_PER_KIND)
def test_image_statistics_means_a_far_corner_changes_every_pixel(spec):
    """The property tiling relies on: a tile's own statistics are not the whole image's."""
    layer = make_norm(spec, C).eval()  # bn: its running averages, as at inference
    x = torch.randn(2, C, 8, 8) * 3 + 1
    other = x.clone()
    other[..., 6:, 6:] = other[..., 6:, 6:] * 4 + 3
    changed = not torch.allclose(_first_sample(layer, x)[:, :4, :4], _first_sample(layer, other)[:, :4, :4], atol=1e-5)
    assert changed == norm_kind(spec).image_statistics


@pytest.mark.parametrize("spec", [s for s in ONE_SPEC_PER_KIND if norm_kind(s).image_statistics])
def test_per_channel_means_the_other_channels_do_not_matter(spec):
    layer = make_norm(spec, C).eval()
    x = torch.randn(2, C, 6, 6) * 3 + 1
    other = x.clone()
    other[:, 1:] = other[:, 1:] * 4 - 2  # channel 0 as it was
    changed = not torch.allclose(_first_sample(layer, x)[0], _first_sample(layer, other)[0], atol=1e-5)
    assert changed == (not norm_kind(spec).per_channel)


@pytest.mark.parametrize("spec", ONE_SPEC_PER_KIND + ["gn"])
def test_groups_is_the_group_norm_the_layer_equals(spec):
    kind = norm_kind(spec)
    x = torch.randn(3, C, 5, 7, dtype=torch.float64) * 2 + 1
    ours = _first_sample(make_norm(spec, C).double().eval(), x)
    if kind.groups is None:
        # no G reproduces it (gn1..gnC are every GroupNorm of C channels)
        assert not any(torch.allclose(ours, _first_sample(nn.GroupNorm(g, C).double(), x), atol=1e-6)
                       for g in (1, 2, 4, 8))
    else:
        groups = kind.groups(parse_spec(spec), C)
        torch.testing.assert_close(ours, _first_sample(nn.GroupNorm(groups, C).double(), x))


@pytest.mark.parametrize("spec", ONE_SPEC_PER_KIND + ["gn2", "prms7"])
def test_statistic_size_is_how_many_inputs_one_output_depends_on(spec):
    """The first output value (the first sample, channel and position, among partial RMSNorm's share)
    depends on exactly the values its statistic is computed over; without normalization on itself alone."""
    layer = make_norm(spec, C).train()  # bn: batch statistics, as in training
    x = (torch.randn(3, C, 5, 4, dtype=torch.float64) * 2 + 1).requires_grad_()
    layer.double()(x)[0, 0, 0, 0].backward()
    depends_on = int((x.grad != 0).sum())
    size = statistic_size(spec, batch=3, channels=C, positions=5 * 4)
    assert depends_on == (1 if size is None else size)


def test_the_smallest_statistic_is_found_in_the_model():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, 2, 1), make_norm("bn", 8), nn.Conv2d(8, 16, 3, 2, 1), make_norm("bn", 16))
    layers = norm_layer_inputs(model, torch.zeros(2, 1, 8, 8))
    assert layers == [("1", (8, 4, 4)), ("3", (16, 2, 2))]
    assert model.training  # its mode is given back
    assert smallest_statistic("bn", layers, 2) == (8, "3", (16, 2, 2))  # 2 images x 2 x 2 px
    model_in = nn.Sequential(nn.Conv2d(1, 8, 3, 8, 1), make_norm("in", 8))  # a 1 x 1 map
    assert smallest_statistic("in", norm_layer_inputs(model_in, torch.zeros(2, 1, 8, 8)), 32)[0] == 1
    assert smallest_statistic("none", norm_layer_inputs(nn.Sequential(make_norm("none", 8)), torch.zeros(2, 8, 4, 4)), 2) is None


@pytest.mark.parametrize("spec", ONE_SPEC_PER_KIND)
def test_temporal_mode_is_there_exactly_where_the_table_says(spec):
    model = nn.Sequential(make_norm(spec, C))
    if norm_kind(spec).temporal_mode:
        with temporal_instance_norm(model, 0.5):
            assert all(m.temporal is not None for m in model.modules() if isinstance(m, InstanceNorm))
    else:
        with pytest.raises(NormSpecError, match="no InstanceNorm"), temporal_instance_norm(model, 0.5):
            pass


def test_the_command_line_reads_the_specs_without_importing_torch():
    """The help lists the specs from the table; a plain `stylenorm --help` must not pay for torch."""
    code = "import sys, cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
