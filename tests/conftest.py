import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny tensors run fastest on one thread; on a shared 2-core machine, several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
