"""`stylenorm bench norms` runs end to end and writes one row per spec (timings are not asserted)."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from stylenorm.bench.norms import SPECS, torch_counterpart
from stylenorm.cli import app
from stylenorm.errors import StylenormError
from stylenorm.norms import make_norm


def table_rows(text: str) -> list[dict[str, str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]


def test_bench_norms_quick_writes_a_row_per_spec(tmp_path):
    output = tmp_path / "nested" / "norms.md"
    result = CliRunner().invoke(app, ["bench", "norms", "--quick", "--device", "cpu", "--repeats", "2", "-o", str(output)])
    assert result.exit_code == 0, result.output
    text = output.read_text()
    assert text.strip() in result.output  # printed as well as saved
    rows = table_rows(text)
    assert [row["spec"] for row in rows] == list(SPECS)
    assert all(row["device"] == "cpu" for row in rows)
    for row in rows:
        assert float(row["fwd ms"]) > 0 and float(row["fwd+bwd ms"]) > 0
        if row["spec"] in ("prms", "none"):
            assert row["torch.nn layer"] == "—"
        else:
            # same computation as torch.nn: only rounding differs
            assert float(row["max abs diff vs torch.nn"]) < 1e-4, row
    assert "read x + write y" in text and "Command: `stylenorm bench norms" in text
    assert "torch " + torch.__version__ in text
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")]  # no temp file left


@pytest.mark.parametrize("args,message", [(["--device", "tpu"], "device"), (["--repeats", "0"], "repeats")])
def test_bench_norms_bad_options_are_clear_errors(tmp_path, args, message):
    output = tmp_path / "norms.md"
    result = CliRunner().invoke(app, ["bench", "norms", "--quick", "-o", str(output), *args])
    assert result.exit_code != 0
    assert isinstance(result.exception, StylenormError) and message in str(result.exception)
    assert not output.exists()


@pytest.mark.parametrize("spec", [s for s in SPECS if s not in ("prms", "none")])
def test_torch_counterparts_compute_the_same_thing(spec):
    """The benchmark's comparison is fair only if both sides do the same computation."""
    shape = (2, 16, 5, 6)
    name, theirs = torch_counterpart(spec, shape)
    x = torch.randn(shape, dtype=torch.float64)
    ours = make_norm(spec, 16).double()
    torch.testing.assert_close(ours(x), theirs.double()(x))


# ------------------------------------------------------------ shared helpers
def test_time_ms_warms_up_then_reports_the_median_of_repeats():
    from stylenorm.bench.common import time_samples_ms

    calls = []
    samples = time_samples_ms(lambda: calls.append(1), torch.device("cpu"), repeats=5, warmup=2)
    assert len(calls) == 7 and len(samples) == 5 and all(s >= 0 for s in samples)
    with pytest.raises(StylenormError, match="repeats"):
        time_samples_ms(lambda: None, torch.device("cpu"), repeats=0)


def test_cpu_peak_memory_sees_a_large_torch_allocation():
    import time

    from stylenorm.bench.common import format_bytes, peak_memory_bytes

    def allocate():
        big = torch.ones(64 * 2**20 // 4)  # 64 MiB, released when the function returns
        time.sleep(0.1)  # long enough for the RSS sampler to look even on a busy machine
        return big.sum()

    peak = peak_memory_bytes(allocate, torch.device("cpu"))
    assert peak is not None and peak > 32 * 2**20, format_bytes(peak)
    assert format_bytes(None) == "n/a" and format_bytes(3 * 2**20) == "3.0 MiB"


def test_markdown_table_escapes_pipes_and_checks_row_length():
    from stylenorm.bench.common import markdown_table

    text = markdown_table(["a", "b|c"], [[1, "x|y"]])
    assert text.splitlines()[0] == "| a | b\\|c |" and text.splitlines()[2] == "| 1 | x\\|y |"
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [[1]])


def test_write_report_states_machine_and_command_and_keeps_old_file_on_error(tmp_path, monkeypatch):
    from stylenorm.bench import common

    target = tmp_path / "report.md"
    text = common.write_report(target, "T", ["x"], [[1]], devices=[torch.device("cpu")], command="stylenorm x", echo=None)
    assert target.read_text() == text
    assert "Command: `stylenorm x`" in text and "CPU: " in text and f"torch {torch.__version__}" in text
    assert "load average" in text

    from pathlib import Path

    real_write_text = Path.write_text

    def write_half_then_fail(self, data, *args, **kwargs):
        real_write_text(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError):
        common.write_report(target, "T2", ["x"], [[2]], devices=[torch.device("cpu")], echo=None)
    monkeypatch.undo()
    assert target.read_text() == text  # the old report survives whole
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no half-written temp file


def test_resolve_devices():
    from stylenorm.bench.common import resolve_devices

    assert resolve_devices("cpu") == [torch.device("cpu")]
    assert resolve_devices(None)[0] == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(StylenormError, match="asked for a GPU but torch sees none"):
            resolve_devices("cuda")


def test_interleaved_medians_time_each_function_in_turn():
    from stylenorm.bench.common import interleaved_medians_ms

    order = []
    medians = interleaved_medians_ms([lambda: order.append("a"), lambda: order.append("b")],
                                     torch.device("cpu"), repeats=3, warmup=1)
    assert len(medians) == 2 and all(m >= 0 for m in medians)
    assert order == ["a", "b"] + ["a", "b"] * 3  # warm-up each, then alternate
