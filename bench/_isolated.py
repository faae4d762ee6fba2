"""The controller's own per-step cost, measured apart from forward, backward and the optimizer update.

On a loaded machine a few-percent difference between whole training loops drowns in noise; the
controller's work per step is small and steady, so timing it alone (around a no-op optimizer on
the model's real parameters and gradients) says reliably where the extra time goes.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from aees_gym import EpisodeControl

if __package__:
    from bench import _variants as V
else:  # run as a script from bench/
    import _variants as V


class _NoopAdamW(torch.optim.AdamW):
    """AdamW whose update does nothing: keeps the ``step()`` hook machinery, drops the arithmetic."""

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        return None


def _interleaved_us(fns: dict[str, Callable[[], Any]], calls: int, rounds: int) -> dict[str, dict[str, float]]:
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.process_time()
            for _ in range(calls):
                fn()
            samples[name].append((time.process_time() - start) / calls * 1e6)
    return {name: {"median_us": statistics.median(s), "min_us": min(s)} for name, s in samples.items()}


def controller_costs(model: str, calls: int = 200, rounds: int = 15) -> dict[str, Any]:
    """CPU µs per optimizer step of each piece around ``optimizer.step()`` on ``model``'s parameters.

    ``calls`` is a multiple of the window, so window closes (the one loss transfer, the reward and
    the observation) are amortised into the per-step figures.
    """
    run = V.build_run(model, total_steps=10**9)
    loss = run.train_step()  # real gradients and a real loss tensor
    params = [p for g in run.optimizer.param_groups for p in g["params"]]
    opt = _NoopAdamW(params, lr=1e-3)
    config = V.bench_config(model, total_steps=10**9)

    def control_step(action: int) -> Callable[[], None]:
        # Its own optimizer: the control rejects steps made outside it, as the interleaved rounds would.
        control = EpisodeControl(_NoopAdamW(params, lr=1e-3), config, seed=V.SEED)

        def step() -> None:
            if control.needs_action:
                control.begin_window(action)
            control.step_end(loss)

        return step

    buffers = [torch.empty_like(p) for p in params]
    generators = [torch.Generator(device=p.device).manual_seed(V.SEED + i) for i, p in enumerate(params)]

    def inline_noise() -> None:
        for buf, gen in zip(buffers, generators, strict=True):
            buf.normal_(0.0, 0.005, generator=gen)
        torch._foreach_add_([p.grad for p in params], buffers)
        opt.step()

    fns = {
        "noop_optimizer_step": opt.step,
        "control_sigma0": control_step(V.GRID.index_of(1.0, 0.0)),
        "control_sigma0.005": control_step(V.GRID.index_of(1.0, 0.005)),
        "inline_noise0.005": inline_noise,
    }
    costs = _interleaved_us(fns, calls, rounds)
    base = costs["noop_optimizer_step"]["median_us"]
    return {
        "method": "process CPU time per call, interleaved rounds; each figure minus the no-op optimizer.step()",
        "calls_per_round": calls,
        "rounds": rounds,
        "raw": costs,
        "added_us_per_step": {name: c["median_us"] - base for name, c in costs.items() if name != "noop_optimizer_step"},
    }
