"""Shared setup for the interoperability tests: one thread (the box is shared), fixed seeds."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread_fixed_seed():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
