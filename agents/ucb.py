"""Discounted-UCB bandits over one axis, plain and bucketed by context.

These reproduce pulseopt 0.3.0's ``DiscountedUCBController`` and ``BucketedContextualController``
bit for bit (same float operations in the same order, same RNG calls) and add what the reference
lacks: a JSON-compatible ``state_dict`` that includes the tie-breaking RNG, so a run can resume.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Mapping, Sequence
from typing import Any

from aees_gym.core import checks

# Scores this close are ties; the reference uses this absolute tolerance independently of eps.
_TIE_TOLERANCE = 1e-12
_BUCKET_SEED_OFFSET = 1000


def rng_state_to_json(state: tuple[Any, ...]) -> list[Any]:
    """``random.Random.getstate()`` as nested lists (JSON has no tuples)."""
    version, internal, gauss_next = state
    return [version, list(internal), gauss_next]


#: What every refused agent state says to do.
STATE_FIX = "; the state file is damaged or belongs to another agent: write it again with agents.deploy.save_agent_state()"


def _state_check(check: Any, name: str, value: Any, **kwargs: Any) -> Any:
    """``check(name, value)`` (an :mod:`aees_gym.core.checks` helper) whose error also says what to do."""
    try:
        return check(name, value, **kwargs)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{str(exc).rstrip('.')}{STATE_FIX}") from None


def state_mapping(name: str, value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping (a JSON object) holding ``state_dict`` output."""
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping (the output of state_dict()), got {type(value).__name__}{STATE_FIX}")
    return value


def state_list(state: Mapping[str, Any], key: str, n: int | None, check: Any, label: str | None = None, **kwargs: Any) -> list[Any]:
    """``state[key]`` as a list of ``n`` items (any length when ``None``), each passed through ``check``."""
    values, label = state.get(key), label or f"state {key}"
    if not isinstance(values, list | tuple) or (n is not None and len(values) != n):
        size = "" if n is None else f"{n} "
        raise ValueError(f"{label!r} must be a list of {size}items, got {str(values)[:60]}{STATE_FIX}")
    return [_state_check(check, f"{label}[{i}]", v, **kwargs) for i, v in enumerate(values)]


def rng_state_from_json(state: Sequence[Any]) -> tuple[Any, ...]:
    """Inverse of :func:`rng_state_to_json`, accepted by ``random.Random.setstate``.

    Raises:
        ValueError: If ``state`` is not a Mersenne Twister state (version 3, 625 words of 32 bits).
    """
    if not isinstance(state, list | tuple) or len(state) != 3 or not isinstance(state[1], list | tuple) or len(state[1]) != 625:
        raise ValueError(f"state 'rng' must be [3, <625 integers>, null or a number], got {str(state)[:60]}{STATE_FIX}")
    version = _state_check(checks.integer, "state rng version", state[0], minimum=3, maximum=3)
    words = [_state_check(checks.integer, f"state rng[1][{i}]", w, minimum=0, maximum=2**32 - 1) for i, w in enumerate(state[1][:624])]
    words.append(_state_check(checks.integer, "state rng[1][624]", state[1][624], minimum=0, maximum=624))
    gauss_next = None if state[2] is None else _state_check(checks.real, "state rng gauss_next", state[2])
    return (version, tuple(words), gauss_next)


def finite_reward(reward: float) -> float:
    """``reward`` as a Python float.

    Raises:
        ValueError: If it is NaN or infinite.
    """
    value = float(reward)
    if not math.isfinite(value):
        raise ValueError(f"reward must be a finite float, got {reward!r}.")
    return value


def _checked(n_arms: int, arm: int, reward: float) -> tuple[int, float]:
    arm = operator.index(arm)
    if not 0 <= arm < n_arms:
        raise ValueError(f"arm must be in [0, {n_arms}), got {arm}.")
    return arm, finite_reward(reward)


class DiscountedUCB:
    """Discounted UCB over ``n_arms`` arms with warmup and seeded tie-breaking.

    Args:
        n_arms: Number of arms, at least 1.
        c: Exploration coefficient, non-negative.
        gamma: Discount applied to every arm's count and reward sum at each update, in (0, 1].
        warmup: Plays of every arm before scores are used; least-played arms go first.
        eps: Floor of a count inside the score, so unplayed arms score very high, not infinite.
        seed: Seed of the ``random.Random`` that breaks ties.

    Raises:
        ValueError: If an argument is outside its range.
    """

    def __init__(
        self,
        n_arms: int,
        *,
        c: float = 1.0,
        gamma: float = 0.95,
        warmup: int = 1,
        eps: float = 1e-12,
        seed: int | None = None,
    ) -> None:
        # Types first (a string or bool is refused, not compared), then the ranges.
        n_arms, warmup = checks.positive_int("n_arms", n_arms), checks.non_negative_int("warmup", warmup)
        c, eps = checks.non_negative("c", c), checks.positive("eps", eps)
        gamma = checks.real("gamma", gamma, low=0.0, high=1.0, low_open=True, kind="discount")
        if seed is not None:
            seed = checks.integer("seed", seed)
        self.n_arms = int(n_arms)
        self.c = float(c)
        self.gamma = float(gamma)
        self.warmup = int(warmup)
        self.eps = float(eps)
        self.seed = seed
        self._counts = [0.0] * self.n_arms
        self._sums = [0.0] * self.n_arms
        self._warmup_counts = [0] * self.n_arms
        self._total_updates = 0
        self._rng = random.Random(seed)

    def select(self) -> int:
        """The next arm: a least-played arm during warmup, else the best discounted UCB score."""
        pending = [arm for arm, plays in enumerate(self._warmup_counts) if plays < self.warmup]
        if pending:
            fewest = min(self._warmup_counts[arm] for arm in pending)
            return self._rng.choice([arm for arm in pending if self._warmup_counts[arm] == fewest])
        log_term = math.log(sum(self._counts) + 1.0)
        scores: list[float] = []
        for raw_count, reward_sum in zip(self._counts, self._sums, strict=True):
            count = max(raw_count, self.eps)
            scores.append(reward_sum / count + self.c * math.sqrt(log_term / count))
        best = max(scores)
        tied = [
            arm
            for arm, score in enumerate(scores)
            if math.isclose(score, best, rel_tol=0.0, abs_tol=_TIE_TOLERANCE)
        ]
        return self._rng.choice(tied)

    def update(self, arm: int, reward: float) -> None:
        """Discount every arm's statistics, then add ``reward`` to ``arm``.

        Raises:
            ValueError: If ``arm`` is out of range or ``reward`` is not finite; nothing changes.
        """
        arm, value = _checked(self.n_arms, arm, reward)
        self._counts = [count * self.gamma for count in self._counts]
        self._sums = [reward_sum * self.gamma for reward_sum in self._sums]
        self._counts[arm] += 1.0
        self._sums[arm] += value
        self._warmup_counts[arm] += 1
        self._total_updates += 1

    def copy_statistics_from(self, other: DiscountedUCB) -> None:
        """Start from ``other``'s counts, sums, warmup counts and update total (not its RNG)."""
        if other.n_arms != self.n_arms:
            raise ValueError(
                f"cannot copy {other.n_arms} arms' statistics into {self.n_arms} arms."
            )
        self._counts = list(other._counts)
        self._sums = list(other._sums)
        self._warmup_counts = list(other._warmup_counts)
        self._total_updates = other._total_updates

    def state(self) -> dict[str, Any]:
        """Statistics for logging; ``mean_rewards`` are the discounted value estimates."""
        return {
            "counts": list(self._counts),
            "sums": list(self._sums),
            "mean_rewards": [
                s / max(n, self.eps) for n, s in zip(self._counts, self._sums, strict=True)
            ],
            "warmup_counts": list(self._warmup_counts),
            "total_updates": self._total_updates,
        }

    def config(self) -> dict[str, Any]:
        """Constructor arguments other than the seed."""
        return {
            "n_arms": self.n_arms,
            "c": self.c,
            "gamma": self.gamma,
            "warmup": self.warmup,
            "eps": self.eps,
        }

    def state_dict(self) -> dict[str, Any]:
        """Configuration, seed, statistics and RNG state, as JSON-compatible data."""
        return {
            **self.config(),
            "seed": self.seed,
            "counts": list(self._counts),
            "sums": list(self._sums),
            "warmup_counts": list(self._warmup_counts),
            "total_updates": self._total_updates,
            "rng": rng_state_to_json(self._rng.getstate()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output exactly.

        Raises:
            ValueError: If the state was saved with a different configuration.
        """
        state = state_mapping("state", state)
        saved = {key: state.get(key) for key in self.config()}
        if saved != self.config():
            raise ValueError(f"state was saved with {saved}, this controller has {self.config()}.")
        # Every value is checked before any is kept, so a refused state leaves the controller as it was.
        seed = None if state.get("seed") is None else _state_check(checks.integer, "state seed", state["seed"])
        counts = state_list(state, "counts", self.n_arms, checks.non_negative)
        sums = state_list(state, "sums", self.n_arms, checks.real)
        warmup_counts = state_list(state, "warmup_counts", self.n_arms, checks.non_negative_int)
        total = _state_check(checks.non_negative_int, "state total_updates", state.get("total_updates"))
        rng = rng_state_from_json(state.get("rng"))  # type: ignore[arg-type]
        self.seed = seed
        self._counts = [float(n) for n in counts]
        self._sums = [float(v) for v in sums]
        self._warmup_counts, self._total_updates = warmup_counts, total
        self._rng.setstate(rng)


class BucketedUCB:
    """One :class:`DiscountedUCB` per context bucket, initialised from a global prior.

    The prior is updated after every window but never chooses. A bucket's controller is created on
    the bucket's first visit, seeded ``seed + 1000 + bucket index``, and starts from a copy of the
    prior's statistics; afterwards it is updated only for windows in its bucket.

    Args:
        n_arms: Number of arms.
        bucket_names: Unique bucket names; their order fixes the bucket seeds.
        c: Exploration coefficient.
        gamma: Discount in (0, 1].
        warmup: Warmup plays per arm.
        eps: Count floor inside the score.
        seed: Seed of the prior; bucket seeds derive from it (``None``: unseeded buckets too).
    """

    def __init__(
        self,
        n_arms: int,
        bucket_names: Sequence[str],
        *,
        c: float = 1.0,
        gamma: float = 0.95,
        warmup: int = 1,
        eps: float = 1e-12,
        seed: int | None = None,
    ) -> None:
        names = tuple(bucket_names)
        if not names:
            raise ValueError("bucket_names must contain at least one bucket.")
        if len(set(names)) != len(names):
            raise ValueError(f"bucket_names must be unique, got {list(names)}.")
        self.bucket_names = names
        self.seed = seed
        self._prior = DiscountedUCB(n_arms, c=c, gamma=gamma, warmup=warmup, eps=eps, seed=seed)
        self._buckets: dict[str, DiscountedUCB] = {}
        self._visits = dict.fromkeys(names, 0)
        self._reward_sums = dict.fromkeys(names, 0.0)
        self._chosen_arms: dict[str, set[int]] = {name: set() for name in names}

    def select(self, bucket: str) -> int:
        """The next arm chosen by ``bucket``'s controller (created on first visit)."""
        arm = self._controller(bucket).select()
        self._chosen_arms[bucket].add(arm)
        return arm

    def update(self, bucket: str, arm: int, reward: float) -> None:
        """Update the prior and ``bucket``'s controller with the reward of ``arm``.

        Raises:
            ValueError: If the bucket or arm is unknown or the reward is not finite.
        """
        # Check before _controller() can create the bucket's controller, so nothing changes.
        arm, value = _checked(self._prior.n_arms, arm, reward)
        controller = self._controller(bucket)
        self._prior.update(arm, value)
        controller.update(arm, value)
        self._visits[bucket] += 1
        self._reward_sums[bucket] += value

    def state(self) -> dict[str, Any]:
        """Prior and per-bucket statistics (``None`` for unvisited buckets) and bucket visits."""
        return {
            "prior": self._prior.state(),
            "buckets": {
                name: self._buckets[name].state() if name in self._buckets else None
                for name in self.bucket_names
            },
            "bucket_visits": dict(self._visits),
            "bucket_reward_sums": dict(self._reward_sums),
            "bucket_distinct_arms": {name: len(arms) for name, arms in self._chosen_arms.items()},
        }

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as JSON-compatible data."""
        return {
            "seed": self.seed,
            "bucket_names": list(self.bucket_names),
            "prior": self._prior.state_dict(),
            "buckets": {name: ucb.state_dict() for name, ucb in self._buckets.items()},
            "bucket_visits": dict(self._visits),
            "bucket_reward_sums": dict(self._reward_sums),
            "bucket_chosen_arms": {name: sorted(arms) for name, arms in self._chosen_arms.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output exactly.

        Raises:
            ValueError: If the state has other buckets or another configuration.
        """
        state = state_mapping("state", state)
        if not isinstance(state.get("bucket_names"), list | tuple) or list(state["bucket_names"]) != list(self.bucket_names):
            raise ValueError(
                f"state has buckets {str(state.get('bucket_names'))[:80]}, this controller has "
                f"{list(self.bucket_names)}{STATE_FIX}"
            )
        names, n_arms = self.bucket_names, self._prior.n_arms
        tables = {key: state_mapping(f"state {key}", state.get(key))
                  for key in ("buckets", "bucket_visits", "bucket_reward_sums", "bucket_chosen_arms")}
        for key in ("bucket_visits", "bucket_reward_sums", "bucket_chosen_arms"):
            if set(tables[key]) != set(names):
                raise ValueError(f"state {key!r} has buckets {sorted(map(str, tables[key]))[:8]}, not {list(names)}{STATE_FIX}")
        visits = {n: _state_check(checks.non_negative_int, f"state bucket_visits[{n!r}]", tables["bucket_visits"][n]) for n in names}
        sums = {n: _state_check(checks.real, f"state bucket_reward_sums[{n!r}]", tables["bucket_reward_sums"][n]) for n in names}
        chosen = {n: set(state_list(tables["bucket_chosen_arms"], n, None, checks.integer, f"state bucket_chosen_arms[{n!r}]",
                                    minimum=0, maximum=n_arms - 1)) for n in names}
        unknown = set(tables["buckets"]) - set(names)
        if unknown:
            raise ValueError(f"state 'buckets' names unknown buckets {sorted(map(str, unknown))[:8]}{STATE_FIX}")
        prior = DiscountedUCB(n_arms, **{k: v for k, v in self._prior.config().items() if k != "n_arms"})
        prior.load_state_dict(state.get("prior"))  # type: ignore[arg-type]
        buckets = {}
        for name in names:  # creation order does not matter; seed order does
            if name in tables["buckets"]:
                controller = self._new_bucket_controller(name)
                controller.load_state_dict(tables["buckets"][name])
                buckets[name] = controller
        self._prior, self._buckets = prior, buckets
        self.seed = None if state.get("seed") is None else _state_check(checks.integer, "state seed", state["seed"])
        self._visits, self._reward_sums, self._chosen_arms = visits, {n: float(v) for n, v in sums.items()}, chosen

    def _controller(self, bucket: str) -> DiscountedUCB:
        if bucket not in self._visits:
            raise ValueError(
                f"unknown context bucket {bucket!r}; expected one of {list(self.bucket_names)}."
            )
        controller = self._buckets.get(bucket)
        if controller is None:
            controller = self._new_bucket_controller(bucket)
            controller.copy_statistics_from(self._prior)
            self._buckets[bucket] = controller
        return controller

    def _new_bucket_controller(self, bucket: str) -> DiscountedUCB:
        offset = _BUCKET_SEED_OFFSET + self.bucket_names.index(bucket)
        prior = self._prior
        return DiscountedUCB(
            prior.n_arms,
            c=prior.c,
            gamma=prior.gamma,
            warmup=prior.warmup,
            eps=prior.eps,
            seed=None if self.seed is None else self.seed + offset,
        )
