"""What every benchmark shares: devices, timing, peak memory, and the saved markdown table.

A benchmark builds rows (lists of cells), then calls `write_report`, which prints the
table and writes it atomically with a header naming the machine and the command, so
a number in a file can always be traced to where and how it was measured.
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from stylenorm.atomic import atomic_output
from stylenorm.devices import check_device
from stylenorm.errors import StylenormError


def resolve_devices(device: str | None) -> list[torch.device]:
    """The devices to measure on: the one asked for, or CPU plus CUDA when present."""
    if device is None:
        return [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    return [check_device(device)]


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a wall-clock reading covers the kernels and not just their launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_samples_ms(
    fn: Callable[[], object], device: torch.device, repeats: int = 20, warmup: int = 3
) -> list[float]:
    """Wall-clock milliseconds of `repeats` calls of `fn`, after `warmup` untimed calls.

    The warm-up absorbs one-off costs (allocator growth, kernel selection, lazy init)
    that a steady-state training step never pays.
    """
    if repeats < 1:
        raise StylenormError(f"repeats must be at least 1, got {repeats}")
    for _ in range(max(warmup, 0)):
        fn()
    synchronize(device)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def time_ms(fn: Callable[[], object], device: torch.device, repeats: int = 20, warmup: int = 3) -> float:
    """Median wall-clock milliseconds of one call of `fn` (median: robust to a busy machine)."""
    return statistics.median(time_samples_ms(fn, device, repeats, warmup))


def interleaved_medians_ms(
    fns: Sequence[Callable[[], object]], device: torch.device, repeats: int = 20, warmup: int = 3
) -> list[float]:
    """Median milliseconds of each of `fns`, timed in turns (a, b, a, b, ...).

    On a shared machine the load drifts over seconds; taking the samples of the
    implementations being compared in alternation exposes them to the same load,
    so their ratio stays meaningful even when absolute times are noisy.
    """
    if repeats < 1:
        raise StylenormError(f"repeats must be at least 1, got {repeats}")
    for fn in fns:
        for _ in range(max(warmup, 0)):
            fn()
    synchronize(device)
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, own in zip(fns, samples):
            start = time.perf_counter()
            fn()
            synchronize(device)
            own.append((time.perf_counter() - start) * 1e3)
    return [statistics.median(own) for own in samples]


def _proc_status_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # reported in kB
    raise OSError(f"no {field} in /proc/self/status")


def peak_rss_delta(fn: Callable[[], object]) -> int | None:
    """Peak resident memory one call of fn adds, from the kernel's high-water mark (Linux).

    Exact where sampling the RSS from a thread can miss a short spike. Memory that
    malloc keeps after earlier runs would hide part of the peak, so it is handed
    back first (malloc_trim, glibc). None where /proc cannot be used.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
        baseline = _proc_status_bytes("VmRSS")
    except OSError:
        return None
    fn()
    return max(_proc_status_bytes("VmHWM") - baseline, 0)


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Peak memory that one call of `fn` adds above what was in use before it.

    CUDA: torch's allocator high-water mark (exact for tensors). CPU: the kernel's
    peak-RSS counter (Linux, see peak_rss_delta); elsewhere the RSS sampled from a
    background thread (torch releases the GIL inside its kernels), an estimate that
    can miss short spikes. None when neither works (no /proc, no psutil).
    """
    if device.type == "cuda":
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        fn()
        synchronize(device)
        return max(torch.cuda.max_memory_allocated(device) - baseline, 0)
    exact = peak_rss_delta(fn)
    if exact is not None:
        return exact
    try:
        import psutil
    except ImportError:
        return None
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        fn()
    finally:
        done.set()
        sampler.join()
    peak = max(peak, process.memory_info().rss)
    return peak - baseline


def format_bytes(num_bytes: int | None) -> str:
    """Human-readable size in MiB (GiB above 10 GiB); 'n/a' when unmeasured."""
    if num_bytes is None:
        return "n/a"
    if num_bytes >= 10 * 2**30:
        return f"{num_bytes / 2**30:.1f} GiB"
    return f"{num_bytes / 2**20:.1f} MiB"


def gigabytes_per_second(num_bytes: float, ms: float) -> float:
    """Throughput in GB/s (10^9 bytes per second) of `num_bytes` moved in `ms` milliseconds."""
    return num_bytes / (ms * 1e-3) / 1e9 if ms > 0 else float("nan")


def cpu_model() -> str:
    """The CPU's marketing name (from /proc/cpuinfo on Linux, else the platform module)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_description(devices: Sequence[torch.device]) -> list[str]:
    """Lines describing where the numbers were measured."""
    lines = [
        f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, torch threads: {torch.get_num_threads()}",
        f"torch {torch.__version__}, Python {platform.python_version()}, {platform.system()} {platform.machine()}",
        "devices: " + ", ".join(_device_name(d) for d in devices),
    ]
    if hasattr(os, "getloadavg"):
        # Other work on the machine slows every number here; say how busy it was.
        one, five, _ = os.getloadavg()
        lines.append(f"load average when measured: {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} cores")
    return lines


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def default_command() -> str:
    """The command line of this process, with the console script shown by its name."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    return " ".join([program] + sys.argv[1:])


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; numbers should be formatted by the caller."""
    if any(len(row) != len(columns) for row in rows):
        raise ValueError("every row needs exactly one cell per column")
    def cell(value: object) -> str:
        return str(value).replace("|", "\\|")  # a bare pipe would split the cell

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(
    path: str | os.PathLike,
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    devices: Sequence[torch.device],
    command: str | None = None,
    notes: Sequence[str] = (),
    echo: Callable[[str], None] | None = print,
) -> str:
    """Print a markdown report (header, notes, table) and write it atomically to `path`.

    Returns the report text. `command` defaults to this process's command line.
    """
    header = [f"# {title}", "", f"Command: `{command or default_command()}`", ""]
    header += [f"- {line}" for line in machine_description(devices)]
    header.append(f"- measured: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    body = [""] + [f"{note}" for note in notes] + ([""] if notes else []) + [markdown_table(columns, rows)]
    text = "\n".join(header + body) + "\n"
    if echo is not None:
        echo(text)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return text
