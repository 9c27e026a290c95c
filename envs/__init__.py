"""Environments: the Car1D toy task, env id resolution and vectorized construction.

Importing this package registers `Car1DEnv-v0` and `Car1DEnv-v1` with gymnasium, so both
`gymnasium.make("Car1DEnv-v1")` and `gymnasium.make("envs:Car1DEnv-v1")` work.
"""
import gymnasium as gym

from envs.car1d import EPISODE_STEPS, Car1DEnv

for _version in (0, 1):
    _id = f"Car1DEnv-v{_version}"
    if _id not in gym.registry:
        gym.register(id=_id, entry_point="envs.car1d:Car1DEnv", kwargs={"version": _version},
                     max_episode_steps=EPISODE_STEPS)

from envs.resolve import make_env, resolve_env_id  # noqa: E402
from envs.vector import VecEnv  # noqa: E402

__all__ = ["Car1DEnv", "make_env", "resolve_env_id", "VecEnv"]
