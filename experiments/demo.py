"""One full Digits-v0 training run under a fixed and a random policy, printed window by window."""

from __future__ import annotations

import gymnasium as gym
import numpy as np

import aees_gym  # noqa: F401  (registers the env ids)


def run(policy_name: str, seed: int = 0) -> None:
    env = gym.make("aees_gym/Digits-v0")
    obs, info = env.reset(seed=seed)
    grid = info["candidate_grid"]
    rng = np.random.default_rng(seed)
    plain = grid.index_of(1.0, 0.0)
    print(f"\n{policy_name} policy on Digits-v0 (seed {seed})")
    print(f"{'window':>6} {'candidate':<14} {'loss first':>10} {'loss last':>10} {'reward':>8} {'next bucket':<18}")
    terminated = False
    while not terminated:
        action = plain if policy_name == "fixed" else int(rng.integers(grid.size))
        obs, reward, terminated, _, info = env.step(action)
        print(
            f"{info['window_index']:>6} {info['candidate_name']:<14} {info['loss_first']:>10.4f} "
            f"{info['loss_last']:>10.4f} {reward:>+8.4f} {info['context_bucket']:<18}"
        )
    m = info["final_metrics"]
    print(f"final val accuracy {m['val_accuracy']:.4f} (best {m['best_val_accuracy']:.4f}), total reward {m['total_reward']:+.4f}")


if __name__ == "__main__":
    run("fixed")
    run("random")
