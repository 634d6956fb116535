"""Fixtures of the model tests."""
import pytest
import torch


@pytest.fixture
def one_thread(request):
    """Unit-test models are tiny: intra-op threads cost more than they save, and on a loaded 2-core machine they
    stall (an overfitting test takes seconds on one thread, up to a minute on two contended ones). Tests marked
    ``slow`` (release-size models) keep torch's thread count. The count is restored afterwards."""
    threads = torch.get_num_threads()
    if not request.node.get_closest_marker('slow'):
        torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
