"""Discounted-UCB agents: the AEES controllers as Gymnasium agents.

Both agents choose an lr arm and a noise arm per window and reproduce pulseopt 0.3.0's decisions
exactly when fed the same rewards (and buckets): same warmup, scores, 1e-12 tie tolerance, tie
breaking by seeded ``random.Random`` and seed offsets (lr axis: ``seed``; noise axis:
``seed + 101``, or ``seed + 101 + lr_idx`` per lr arm in conditional mode; contextual buckets:
``+ 1000 + bucket index``). An axis with a single candidate has no controller.

With the grid's momentum axis a third controller chooses the momentum arm after the noise arm:
one shared (``seed + 5003``) when independent, or one per (lr, noise) cell
(``seed + 5003 + lr_idx * n_noise + noise_idx``) when conditional; it receives the same joint
reward. Without the axis nothing changes.

The per-axis controllers, their seeding and the agents' state live in their shared base class,
:mod:`agents.structured_ucb`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.structured_ucb import _StructuredUCBAgent
from agents.ucb import STATE_FIX, BucketedUCB, DiscountedUCB, state_mapping

__all__ = [
    "TREND_BUCKETS",
    "TREND_PHASE_BUCKETS",
    "BucketedUCB",
    "ContextualUCBAgent",
    "DiscountedUCB",
    "DiscountedUCBAgent",
]

# Bucket order fixes each bucket's controller seed, so it is part of the agents' reproducibility
# contract; it matches pulseopt's TREND_CONTEXT_BUCKETS and the env's bucket names.
TREND_BUCKETS: tuple[str, ...] = ("improving", "stable", "worsening")
TREND_PHASE_BUCKETS: tuple[str, ...] = tuple(
    f"{phase}_{trend}" for phase in ("early", "middle", "late") for trend in TREND_BUCKETS
)
# bucketing → (info key the env publishes the bucket under, bucket names in seed order)
_BUCKETINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "trend": ("trend_bucket", TREND_BUCKETS),
    "trend_phase": ("context_bucket", TREND_PHASE_BUCKETS),
}


class DiscountedUCBAgent(_StructuredUCBAgent[DiscountedUCB]):
    """AEES's discounted-UCB control over the lr and noise axes.

    Args:
        c: Exploration coefficient.
        gamma: Discount applied to every arm's statistics at each update, in (0, 1].
        warmup: Times each arm is tried before UCB scores are used.
        structured: ``"independent"`` (one noise controller) or ``"conditional"`` (one noise
            controller per lr arm; only the one under the chosen lr arm is asked and updated).
    """

    name = "ducb"
    description = "discounted UCB over lr × noise, as AEES (independent or conditional)"

    def __init__(
        self,
        *,
        c: float = 1.0,
        gamma: float = 0.95,
        warmup: int = 1,
        structured: str = "independent",
    ) -> None:
        super().__init__(c=c, gamma=gamma, warmup=warmup, structured=structured)

    def _new_controller(self, n_arms: int, seed: int | None) -> DiscountedUCB:
        return DiscountedUCB(n_arms, c=self.c, gamma=self.gamma, warmup=self.warmup, seed=seed)

    def _select(self, controller: DiscountedUCB) -> int:
        return controller.select()

    def _learn(self, controller: DiscountedUCB, arm: int, reward: float) -> None:
        controller.update(arm, reward)


class ContextualUCBAgent(_StructuredUCBAgent[BucketedUCB]):
    """AEES's bucketed contextual discounted UCB: one controller per context bucket and axis.

    The bucket of a window is read from the ``info`` passed to :meth:`act` (``info["trend_bucket"]``
    for ``trend`` bucketing, ``info["context_bucket"]`` such as ``"early_improving"`` for
    ``trend_phase``), and the following :meth:`update` credits that same bucket.

    Args:
        bucketing: ``"trend"`` (3 buckets) or ``"trend_phase"`` (9 buckets, phase × trend).
        c: Exploration coefficient.
        gamma: Discount in (0, 1].
        warmup: Times each arm is tried before UCB scores are used.
        structured: ``"independent"`` or ``"conditional"``, as for :class:`DiscountedUCBAgent`.
    """

    name = "contextual"
    description = "bucketed contextual discounted UCB (trend or trend × phase buckets), as AEES"

    def __init__(
        self,
        *,
        bucketing: str = "trend",
        c: float = 1.0,
        gamma: float = 0.95,
        warmup: int = 1,
        structured: str = "independent",
    ) -> None:
        if bucketing not in _BUCKETINGS:
            raise ValueError(f"bucketing must be one of {list(_BUCKETINGS)}, got {bucketing!r}.")
        super().__init__(c=c, gamma=gamma, warmup=warmup, structured=structured)
        self.bucketing = bucketing
        self._info_key, self._bucket_names = _BUCKETINGS[bucketing]
        self._bucket: str | None = None

    @property
    def bucket_names(self) -> tuple[str, ...]:
        """The buckets of this agent's bucketing, in seed order."""
        return self._bucket_names

    def config(self) -> dict[str, Any]:
        """Constructor arguments, including the bucketing."""
        return {"bucketing": self.bucketing, **super().config()}

    def state(self) -> dict[str, Any]:
        """Per-axis statistics plus the bucket of the window in progress, if any."""
        return {"active_bucket": self._bucket, **super().state()}

    def state_dict(self) -> dict[str, Any]:
        """Like :meth:`DiscountedUCBAgent.state_dict`, plus the bucket of an open window."""
        return {**super().state_dict(), "pending_bucket": self._bucket}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output, including a window open between act and update."""
        pending = state_mapping("agent state", state).get("pending_bucket")
        if pending is not None and pending not in self._bucket_names:
            raise ValueError(f"agent state 'pending_bucket' is {str(pending)[:40]!r}, not one of {list(self._bucket_names)}{STATE_FIX}")
        super().load_state_dict(state)
        self._bucket = pending

    def _new_controller(self, n_arms: int, seed: int | None) -> BucketedUCB:
        return BucketedUCB(
            n_arms, self._bucket_names, c=self.c, gamma=self.gamma, warmup=self.warmup, seed=seed
        )

    def _begin_window(self, info: dict[str, Any]) -> None:
        if self._info_key not in info:
            raise KeyError(
                f"{self._info_key!r} is missing from info; {self.bucketing!r} bucketing reads the "
                f"window's bucket from the env's info (got keys {sorted(info)})."
            )
        bucket = info[self._info_key]
        if bucket not in self._bucket_names:
            raise ValueError(
                f"unknown bucket {bucket!r}; expected one of {list(self._bucket_names)}."
            )
        self._bucket = bucket

    def _end_window(self) -> None:
        self._bucket = None

    def _select(self, controller: BucketedUCB) -> int:
        return controller.select(self._active_bucket())

    def _learn(self, controller: BucketedUCB, arm: int, reward: float) -> None:
        controller.update(self._active_bucket(), arm, reward)

    def _active_bucket(self) -> str:
        if self._bucket is None:
            raise RuntimeError("update() needs a preceding act() to know the window's bucket.")
        return self._bucket

