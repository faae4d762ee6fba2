import pytest
import torch
from hypothesis import settings

# A loaded 2-core CI machine makes per-example deadlines flaky; fixed examples keep runs comparable.
settings.register_profile("aees", deadline=None, derandomize=True, database=None)
settings.load_profile("aees")


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Every test trains with one torch thread (tests that need more set it themselves).

    Parallel test workers share 2 cores, where more than one thread each oversubscribes them; and the
    tiny models of the tests gain nothing from a second thread.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_digits_kwargs():
    """Overrides that keep a Digits run to a handful of windows."""
    return {"total_steps": 120, "window_length": 40}


_HOST_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__bool__", "__int__", "__index__")


@pytest.fixture
def host_reads(monkeypatch):
    """``watch(optimizer) -> calls``: records every tensor read to the host outside ``optimizer.step``.

    Reads inside the optimizer's own step (AdamW reads its CPU step counter with ``.item()``) are
    the plain loop's cost, not the controller's, so they are not recorded.
    """

    def watch(optimizer):
        calls, inside_optimizer = [], []
        plain_step = optimizer.step

        def step_marking_optimizer_internals(*a, **k):
            inside_optimizer.append(True)
            try:
                return plain_step(*a, **k)
            finally:
                inside_optimizer.pop()

        monkeypatch.setattr(optimizer, "step", step_marking_optimizer_internals)
        for name in _HOST_READS:
            original = getattr(torch.Tensor, name)

            def spy(self, *a, _original=original, _name=name, **k):
                if not inside_optimizer:
                    calls.append(_name)
                return _original(self, *a, **k)

            monkeypatch.setattr(torch.Tensor, name, spy)
        return calls

    return watch
