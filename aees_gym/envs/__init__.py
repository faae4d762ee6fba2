"""Environments: the single-run :class:`AEESEnv`, views, instance sets and id registration.

Every vectoriser works with the registered ids (the string entry point imports ``aees_gym`` in
spawned workers)::

    envs = gymnasium.make_vec("aees_gym/Digits-v0", num_envs=2, vectorization_mode="async")
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import SubprocVecEnv
    venv = make_vec_env("aees_gym:aees_gym/Digits-v0", n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)

**Threads.** Each env copy trains its own model; see :mod:`aees_gym.core.threads` for the
``torch_threads`` policy (one thread inside worker processes by default).

**Seeding.** ``envs.reset(seed=s)`` seeds copy ``i`` with ``s + i`` (Gymnasium and SB3 alike), so
copy ``i`` replays exactly the run of a single env reset with ``seed=s + i``; later episodes of a
copy continue that copy's generator, exactly like a single env reset without a seed.

**Autoreset.** Gymnasium 1.x vector envs default to *next-step* autoreset: the step that ends a
copy's run returns ``terminated=True`` with the final observation and ``info["final_metrics"]``;
the *next* ``step`` call resets that copy (its action is ignored) and returns the new run's first
observation with reward 0. Pass ``vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP}``
to ``make_vec`` for same-step resets. SB3's VecEnvs reset in the same step and put the final
observation in ``info["terminal_observation"]``.

**Infos.** Gymnasium merges the copies' infos into arrays typed by the first copy's value, so
every info field keeps one type across copies: a missing number in ``info["final_metrics"]`` is
NaN, never ``None`` (e.g. ``steps_to_target`` of a run that never reached ``target_accuracy``).
"""
