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
