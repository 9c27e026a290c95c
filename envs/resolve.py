"""Env id resolution: legacy MuJoCo ids of the paper map to maintained gymnasium ids; unknown ids get suggestions."""
from __future__ import annotations

import difflib
import importlib
import logging
import re
import warnings
from dataclasses import dataclass

import gymnasium as gym

from envs.car1d import register_car1d
from utils.errors import UserError

# The paper used mujoco-py era ids (-v2/-v3); they do not run on current mujoco. v5 is the maintained version.
_LEGACY_MUJOCO = ("HalfCheetah", "Walker2d", "Ant", "Swimmer", "Hopper", "Humanoid", "HumanoidStandup")
_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")  # a dotted Python module name
_LEGACY_RE = re.compile(rf"^(?P<name>{'|'.join(_LEGACY_MUJOCO)})-v(?P<version>[23])$")


@dataclass(frozen=True)
class ResolvedEnv:
    requested: str
    resolved: str
    notice: str | None  # one line for the user when the id was changed


def resolve_env_id(requested: str) -> ResolvedEnv:
    """Map a requested env id (optionally `module:Id`) to a registered, runnable gymnasium id."""
    if not requested or not requested.strip():
        raise UserError("empty --env; pass a gymnasium id such as --env=HalfCheetah-v5 or --env=Car1DEnv-v1")
    env_id = requested.strip()
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        if not _MODULE_RE.match(module):
            raise UserError(f"--env={requested}: '{module}' is not a module name; write --env=MODULE:ID such as "
                            f"--env=envs:Car1DEnv-v1, or a plain gymnasium id")
        try:
            importlib.import_module(module)
        except Exception as err:  # ImportError, or whatever the module raises while it registers its envs
            raise UserError(f"cannot import module '{module}' named in --env={requested} ({type(err).__name__}); "
                            f"use --env=envs:Car1DEnv-v1 or a plain gymnasium id") from None
    legacy = _LEGACY_RE.match(env_id)
    if legacy:
        resolved = f"{legacy['name']}-v5"
        return ResolvedEnv(requested, resolved,
                           f"notice: {env_id} needs mujoco-py, which no longer installs; using the maintained {resolved}")
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else "see gymnasium.pprint_registry() for ids"
        raise UserError(f"unknown env id '{requested}'; {hint}")
    return ResolvedEnv(requested, env_id, None)


def _route_mujoco_warnings() -> None:
    """MuJoCo 4 prints a deprecation warning for gymnasium's own model files on every env; log it instead."""
    try:
        import mujoco
    except ImportError:
        return

    def on_warning(message: str) -> None:
        level = logging.DEBUG if "deprecated" in message else logging.WARNING
        logging.getLogger("deep_rl_regions.mujoco").log(level, "%s", message)

    mujoco.set_mju_user_warning(on_warning)


_route_mujoco_warnings()


def make_env(env_id: str, **kwargs) -> gym.Env:
    """A single gymnasium env for an already resolved id (no env checker: it costs time on every step)."""
    register_car1d()
    with warnings.catch_warnings():
        # older versions are wanted here (the paper's Car1DEnv-v0); gymnasium's "out of date" warning is noise
        warnings.filterwarnings("ignore", message=".*is out of date.*")
        return gym.make(env_id, disable_env_checker=True, **kwargs)
