"""The paper's toy task: a 1-D car that must drive to x = 100 (docs/design.md, "The toy environments")."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

TARGET_X = 100.0
EPISODE_STEPS = 1000


class Car1DEnv(gym.Env):
    """State [position, velocity], action = acceleration in [-1, 1]; never terminates, truncated at 1000 steps.

    version 0: Euler step, dt = 0.1, velocity clipped to +-3.
    version 1: kinematic step, dt = 0.2, velocity clipped to +-100.
    """

    metadata = {"render_modes": []}
    state_names = ("position", "velocity")

    def __init__(self, version: int = 1):
        if version not in (0, 1):
            raise ValueError(f"Car1DEnv version must be 0 or 1, got {version}")
        self.version = version
        self.dt = 0.1 if version == 0 else 0.2
        self.vmax = 3.0 if version == 0 else 100.0
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.state = np.zeros(2, dtype=np.float64)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        x = self.np_random.uniform(-1.0, 1.0)
        v = self.np_random.uniform(-0.1, 0.1)
        self.state = np.array([x, v], dtype=np.float64)
        return self.state.copy(), {}

    def step(self, action):
        a = float(np.clip(np.asarray(action, dtype=np.float64).reshape(-1)[0], -1.0, 1.0))
        x, v = self.state
        if self.version == 0:
            v = float(np.clip(v + a, -self.vmax, self.vmax))
            x = x + self.dt * v
        else:
            x = x + self.dt * v + self.dt**2 * a / 2.0
            v = float(np.clip(v + self.dt * a, -self.vmax, self.vmax))
        self.state = np.array([x, v], dtype=np.float64)
        at_speed_limit = abs(abs(v) - self.vmax) < 1e-3
        reward = 1.0 - 0.01 * abs(TARGET_X - x) - 0.001 * abs(a) - 0.01 * float(at_speed_limit)
        return self.state.copy(), reward, False, False, {}

    # Used by envs.snapshot to resume a killed run exactly.
    def get_physics_state(self) -> np.ndarray:
        return self.state.copy()

    def set_physics_state(self, state: np.ndarray) -> None:
        self.state = np.asarray(state, dtype=np.float64).copy()


def register_car1d() -> None:
    """Register Car1DEnv-v0 and -v1 with gymnasium (idempotent), so `gymnasium.make("Car1DEnv-v1")` works."""
    for version in (0, 1):
        env_id = f"Car1DEnv-v{version}"
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="envs.car1d:Car1DEnv", kwargs={"version": version},
                         max_episode_steps=EPISODE_STEPS)
