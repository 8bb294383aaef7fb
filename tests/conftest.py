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
