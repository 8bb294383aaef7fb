import subprocess
import sys
from pathlib import Path

import pytest
import torch

from stylenorm.checkpoints import user_weights_dir

# The user's real data folder, as the environment the tests started in names it (before any fixture).
REAL_USER_FOLDER = user_weights_dir().parent


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()} \
        if folder.is_dir() else {}


@pytest.fixture
def one_thread():
    """Tiny tensors run fastest on one thread; on a shared 2-core machine, several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session", autouse=True)
def real_user_folder_untouched():
    """The suite never writes into the user's real data folder (a run once left a classifier there):
    the same files, sizes and times after the last test as before the first."""
    before = _snapshot(REAL_USER_FOLDER)
    yield
    after = _snapshot(REAL_USER_FOLDER)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"the tests wrote into the real user data folder {REAL_USER_FOLDER}: {changed[:5]}"


@pytest.fixture(autouse=True)
def user_data_folder(tmp_path_factory, monkeypatch):
    """Weights a test trains without -o go to a fresh user data folder, never into the real one;
    subprocesses inherit it (a test that builds its own environment must pass STYLENORM_HOME on)."""
    home = tmp_path_factory.mktemp("stylenorm_home")
    monkeypatch.setenv("STYLENORM_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def small_style_reference(monkeypatch):
    """Photos are stylized at STYLE_REFERENCE_SIZE (1024 px) on their long side whatever their size;
    the tests' photos and clips are 32-160 px, and enlarging each to 1024 px would make the suite
    minutes slower without testing more. 128 px keeps every path (enlarging, reducing) exercised."""
    from stylenorm.style import stylize

    monkeypatch.setattr(stylize, "STYLE_REFERENCE_SIZE", 128)


@pytest.fixture()
def run(monkeypatch, capsys):
    """cli.main() in this process, as the console script calls it: returns (exit code, stdout, stderr)."""
    from stylenorm import cli

    def invoke(*args) -> subprocess.CompletedProcess:
        monkeypatch.setattr(sys, "argv", ["stylenorm", *[str(a) for a in args]])
        code = 0
        try:
            cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return invoke
