"""Environments: the Car1D toy task, env id resolution and vectorized construction.

Importing this package registers `Car1DEnv-v0` and `Car1DEnv-v1` with gymnasium, so both
`gymnasium.make("Car1DEnv-v1")` and `gymnasium.make("envs:Car1DEnv-v1")` work.
"""
from envs.car1d import Car1DEnv, register_car1d
from envs.resolve import make_env, resolve_env_id
from envs.vector import VecEnv

register_car1d()  # `gymnasium.make("envs:Car1DEnv-v1")` imports this package and finds the ids

__all__ = ["Car1DEnv", "make_env", "resolve_env_id", "VecEnv"]
