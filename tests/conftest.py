import subprocess
import sys

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny tensors run fastest on one thread; on a shared 2-core machine, several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def user_data_folder(tmp_path_factory, monkeypatch):
    """Weights a test trains without -o go to a fresh user data folder, never into the real one."""
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
    import cli

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
