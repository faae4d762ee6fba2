"""A ControlledTraining checkpoint holds only plain data: torch.load(weights_only=True) restores it exactly."""

from __future__ import annotations

import io

import torch

from agents import make_agent
from agents.deploy import ControlledTraining


def _run(ct: ControlledTraining, model: torch.nn.Module, opt: torch.optim.Optimizer, batches: list[torch.Tensor]) -> list[float]:
    losses = []
    for x in batches:
        if ct.done:
            break
        ct.before_step()
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        ct.after_step(loss)
        losses.append(loss.item())
    return losses


def test_a_checkpoint_loads_with_weights_only_and_resumes_exactly() -> None:
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(4, 3, generator=gen) for _ in range(40)]

    def fresh() -> tuple[torch.nn.Module, torch.optim.Optimizer, ControlledTraining]:
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        return model, opt, ControlledTraining(opt, make_agent("ducb"), total_steps=40, window_length=10, seed=0)

    model, opt, ct = fresh()
    whole = _run(ct, model, opt, batches)
    model, opt, ct = fresh()
    first = _run(ct, model, opt, batches[:15])  # stops inside a window
    buffer = io.BytesIO()
    torch.save({"ct": ct.state_dict(), "model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    model, opt, ct = fresh()
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    ct.load_state_dict(saved["ct"])
    assert first + _run(ct, model, opt, batches[15:]) == whole
