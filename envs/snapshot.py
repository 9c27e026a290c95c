"""Exact snapshots of a single env's state (physics, RNG, time-limit counter) so a killed run can resume bit for bit."""
from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import TimeLimit


def _time_limit(env: gym.Env) -> TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TimeLimit):
            return env
        env = env.env
    return None


# mj_step leaves position-dependent quantities (xpos, com, contact forces, ...) computed for the state *before*
# its last integration; env code reads them (Ant's "position before" is torso xpos), so they are part of the state.
_MUJOCO_DERIVED = ("xpos", "xquat", "xmat", "xipos", "ximat", "subtree_com", "cinert", "cvel", "cdof",
                   "cfrc_ext", "cfrc_int", "qfrc_actuator", "actuator_force", "sensordata", "qacc")


def _mujoco_parts(env: gym.Env):
    unwrapped = env.unwrapped
    if hasattr(unwrapped, "model") and hasattr(unwrapped, "data"):
        import mujoco
        return mujoco, unwrapped.model, unwrapped.data
    return None


def get_env_snapshot(env: gym.Env) -> dict:
    """Everything needed to continue this env exactly: physics state, RNG state, elapsed steps.

    `resumable` is False for envs whose physics we do not know how to read; those are reset on resume.
    """
    unwrapped = env.unwrapped
    time_limit = _time_limit(env)
    physics, resumable, dtype = np.zeros(0), True, "float64"
    if hasattr(unwrapped, "get_physics_state"):
        physics = unwrapped.get_physics_state()
    elif (parts := _mujoco_parts(env)) is not None:
        mujoco, model, data = parts
        # INTEGRATION includes the solver warm start, without which contact forces (and so returns) drift.
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        integration = np.empty(mujoco.mj_stateSize(model, spec))
        mujoco.mj_getState(model, data, integration, spec)
        derived = [np.asarray(getattr(data, name), dtype=np.float64).ravel() for name in _MUJOCO_DERIVED]
        physics = np.concatenate([integration, *derived])
    elif hasattr(unwrapped, "state") and isinstance(unwrapped.state, (np.ndarray, tuple, list)):
        dtype = str(np.asarray(unwrapped.state).dtype)  # numpy 2 computes in the state's own precision
        physics = np.asarray(unwrapped.state, dtype=np.float64)  # classic control keeps its state here
    else:
        resumable = False
    return {
        "resumable": resumable,
        "physics_dtype": dtype,
        "physics": np.asarray(physics, dtype=np.float64),
        "rng": json.dumps(unwrapped.np_random.bit_generator.state),
        "elapsed_steps": int(time_limit._elapsed_steps or 0) if time_limit is not None else 0,
    }


def set_env_snapshot(env: gym.Env, snapshot: dict) -> None:
    """Restore a snapshot taken by `get_env_snapshot` on an env of the same id (already reset once)."""
    unwrapped = env.unwrapped
    physics = np.asarray(snapshot["physics"], dtype=np.float64)
    if hasattr(unwrapped, "set_physics_state"):
        unwrapped.set_physics_state(physics)
    elif (parts := _mujoco_parts(env)) is not None:
        mujoco, model, data = parts
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        size = mujoco.mj_stateSize(model, spec)
        mujoco.mj_setState(model, data, physics[:size], spec)
        mujoco.mj_forward(model, data)
        offset = size
        for name in _MUJOCO_DERIVED:
            target = getattr(data, name)
            target[...] = physics[offset:offset + target.size].reshape(target.shape)
            offset += target.size
    elif hasattr(unwrapped, "state"):
        unwrapped.state = physics.astype(snapshot.get("physics_dtype", "float64"))  # exact round trip
    unwrapped.np_random.bit_generator.state = json.loads(snapshot["rng"])
    time_limit = _time_limit(env)
    if time_limit is not None:
        time_limit._elapsed_steps = int(snapshot["elapsed_steps"])
