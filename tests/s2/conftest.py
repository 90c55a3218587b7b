"""One torch thread for the s2 tests: their tensors are small, and on a shared box a second
thread only adds waiting (10x slower stepping measured)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
