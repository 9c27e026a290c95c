"""The Trainer: one run's networks, optimizer, normalizer, envs and RNGs, its phases (warm-up, PPO iteration,
deterministic evaluation) and its state as a checkpoint payload.

It knows nothing of the run store or wandb: the loop that writes metrics, checkpoints and best.pt is
utils/jobs/train_loop.py.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import MISSING, asdict, dataclass, fields

import numpy as np
import torch

from envs.resolve import make_env
from envs.vector import VecEnv
from models.divergence import TrainingDiverged
from models.evaluation import EvaluationRequest, evaluate_request
from models.networks import GaussianPolicy, ValueNet, numpy_layers
from models.normalization import Normalizer
from models.ppo import collect_rollout, ppo_update
from models.rollout import PPOConfig


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything that defines a training run (stored in run.json and in every checkpoint).

    Values that come from train.py's flags have no default here: their defaults live in
    utils.settings.TrainSettings only, and utils.jobs.train builds this config from the settings once.
    """

    env: str                       # as requested, e.g. HalfCheetah-v2
    env_id: str                    # resolved, e.g. HalfCheetah-v5
    obs_dim: int
    act_dim: int
    policy_dims: tuple[int, ...]
    value_dims: tuple[int, ...]
    total_timesteps: int
    n_steps: int                   # per env per iteration (train.py's --nsteps)
    n_envs: int
    batch_size: int
    n_epochs: int
    learning_rate: float
    # PPO hyperparameters without a flag: defaults are PPOConfig's (Stable-Baselines3's), defined once there
    gamma: float = PPOConfig.gamma
    gae_lambda: float = PPOConfig.gae_lambda
    clip_range: float = PPOConfig.clip_range
    vf_coef: float = PPOConfig.vf_coef
    ent_coef: float = PPOConfig.ent_coef
    max_grad_norm: float = PPOConfig.max_grad_norm
    log_std_init: float
    seed: int
    eval_every: int                # iterations; 0 = never (best.pt then follows the last checkpoint)
    eval_episodes: int
    save_every: int
    obs_norm: str
    norm_warmup_steps: int
    device: str
    subprocess_envs: bool

    @property
    def n_iterations(self) -> int:
        return math.ceil(self.total_timesteps / (self.n_steps * self.n_envs))

    def ppo(self) -> PPOConfig:
        names = {f.name for f in fields(PPOConfig)}
        return PPOConfig(**{k: v for k, v in asdict(self).items() if k in names})

    def to_dict(self) -> dict:
        out = asdict(self)
        out["policy_dims"], out["value_dims"] = list(self.policy_dims), list(self.value_dims)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """The config `to_dict` wrote (other keys are ignored); a missing field or a value of another type is a
        ValueError naming the field."""
        kwargs = {}
        for f in fields(cls):
            if f.name not in data:
                if f.default is MISSING:
                    raise ValueError(f"config has no {f.name!r}")
                continue
            value = data[f.name]
            if not _holds(f.type, value):
                raise ValueError(f"config's {f.name!r} is {value!r:.40}, not {_FIELD_KINDS[f.type]}")
            kwargs[f.name] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)


# what load_state_dict needs beyond what every checkpoint has (models/checkpoint.py checks those on reading)
TRAINING_STATE_KEYS = ("value", "optimizer", "rng", "envs", "obs_norm")


def state_mismatch(cfg: TrainConfig, state: dict) -> str | None:
    """Why Trainer(cfg).load_state_dict(state) would fail (a few words), or None when it fits: the training state
    is complete and the policy, value, optimizer and normalizer tensors have the shapes cfg's networks have.

    Builds cfg's networks aside (a fork of the global torch RNG, so nothing else sees it) and changes nothing.
    """
    missing = [key for key in TRAINING_STATE_KEYS if key not in state]
    if missing:
        return f"incomplete: no {missing[0]}"
    with torch.random.fork_rng(devices=[]):
        networks = {"policy": GaussianPolicy(cfg.obs_dim, cfg.act_dim, cfg.policy_dims, cfg.log_std_init),
                    "value": ValueNet(cfg.obs_dim, cfg.value_dims)}
    for name, net in networks.items():
        if _shapes(state[name]) != _shapes(net.state_dict()):
            return f"other {name} shapes"
    normalizer = state["normalizer"]
    if not isinstance(normalizer, dict) or any(_shape(normalizer.get(key)) != (cfg.obs_dim,)
                                               for key in ("obs_mean", "obs_var")) \
            or _shape(state["obs_norm"]) != (cfg.n_envs, cfg.obs_dim):
        return "other observation shapes"
    params = [p for net in networks.values() for p in net.parameters()]  # the Trainer's optimizer order
    try:
        (group,) = state["optimizer"]["param_groups"]
        moments = [state["optimizer"]["state"].get(index, {}) for index in group["params"]]
        optimizer_fits = len(moments) == len(params) and all(
            _shape(moment[key]) == tuple(param.shape) for moment, param in zip(moments, params)
            for key in ("exp_avg", "exp_avg_sq") if key in moment)
    except (KeyError, TypeError, ValueError, AttributeError):  # not the layout torch's Adam writes
        optimizer_fits = False
    return None if optimizer_fits else "other optimizer state"


def _shape(value) -> tuple[int, ...] | None:
    return tuple(value.shape) if torch.is_tensor(value) else None


def _shapes(state_dict) -> dict | None:
    return {key: _shape(value) for key, value in state_dict.items()} if isinstance(state_dict, dict) else None


_FIELD_KINDS = {"str": "a string", "int": "a whole number", "float": "a number", "bool": "true or false",
                "tuple[int, ...]": "a list of whole numbers"}


def _holds(annotation: str, value) -> bool:
    """True when a JSON value fits a TrainConfig field's annotation (a bool is never a number)."""
    if annotation == "tuple[int, ...]":
        return isinstance(value, list) and all(_holds("int", w) for w in value)
    if annotation == "bool":
        return isinstance(value, bool)
    allowed = {"str": (str,), "int": (int,), "float": (int, float)}[annotation]
    return isinstance(value, allowed) and not isinstance(value, bool)


class Trainer:
    """Owns the networks, optimizer, normalizer, envs and RNGs of one run."""

    EVAL_SEED_OFFSET = 1_000_003  # eval episodes never share seeds with training envs

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.device = torch.device(cfg.device)
        self.policy = GaussianPolicy(cfg.obs_dim, cfg.act_dim, cfg.policy_dims, cfg.log_std_init).to(self.device)
        self.value = ValueNet(cfg.obs_dim, cfg.value_dims).to(self.device)
        params = list(self.policy.parameters()) + list(self.value.parameters())
        self.optimizer = torch.optim.Adam(params, lr=cfg.learning_rate, eps=1e-5)
        self.normalizer = Normalizer(cfg.obs_dim, cfg.n_envs, cfg.gamma, cfg.obs_norm)
        self.rng = np.random.Generator(np.random.PCG64(cfg.seed))
        self.venv = VecEnv(cfg.env_id, cfg.n_envs, cfg.seed, subprocess=cfg.subprocess_envs)
        self.obs_norm = self.normalizer.normalize_obs(self.venv.obs)
        self.iteration, self.timesteps = 0, 0
        self.best_eval_return: float | None = None
        self.last_eval_return: float | None = None
        self.env_state_restored = True
        self.eval_envs: list = []

    # --- phases -------------------------------------------------------------------------------------------
    def warmup(self) -> None:
        """Seed the observation statistics with uniformly random actions, then start fresh episodes."""
        if self.cfg.obs_norm != "off" and self.cfg.norm_warmup_steps > 0:
            low, high = self.venv.action_space.low, self.venv.action_space.high
            for _ in range(math.ceil(self.cfg.norm_warmup_steps / self.cfg.n_envs)):
                step = self.venv.step(self.rng.uniform(low, high, size=(self.cfg.n_envs, self.cfg.act_dim)))
                self.normalizer.observe(step.obs, warmup=True)
            self.venv.reset(self.cfg.seed + self.cfg.n_envs)
        self.obs_norm = self.normalizer.normalize_obs(self.venv.obs)

    def train_iteration(self) -> dict:
        """One rollout and PPO update; returns the iteration's metrics.

        Raises models.divergence.TrainingDiverged naming this iteration if the update produced a non-finite loss,
        gradient or weight; the Trainer's state is then unusable (never checkpoint it) and training must stop.
        """
        start = time.perf_counter()
        rollout = collect_rollout(self.venv, self.policy, self.normalizer, self.rng, self.cfg.n_steps, self.obs_norm)
        self.obs_norm = rollout.last_obs
        rollout_seconds = time.perf_counter() - start
        try:
            stats = ppo_update(self.policy, self.value, self.optimizer, rollout, self.rng, self.cfg.ppo(), self.device)
        except TrainingDiverged as err:
            raise err.at_iteration(self.iteration + 1) from None
        self.iteration += 1
        steps = self.cfg.n_steps * self.cfg.n_envs
        self.timesteps += steps
        seconds = time.perf_counter() - start
        metrics = {"iteration": self.iteration, "timesteps": self.timesteps, **stats,
                   "fps": steps / seconds, "rollout_seconds": rollout_seconds, "update_seconds": seconds - rollout_seconds}
        if rollout.episode_returns:
            metrics["train_episode_return"] = float(np.mean(rollout.episode_returns))
            metrics["train_episode_length"] = float(np.mean(rollout.episode_lengths))
        return metrics

    def evaluate(self) -> dict:
        """Evaluate the current policy in this process (see `evaluation_request`) and record the result."""
        return self.record_evaluation(self.evaluation_returns(self.evaluation_request()))

    def evaluation_request(self) -> EvaluationRequest:
        """The current policy's evaluation: eval_episodes deterministic episodes with fixed seeds, observations
        normalized with the current statistics (copies: training may go on while it runs elsewhere)."""
        statistics = self.normalizer.obs_rms
        return EvaluationRequest(layers=numpy_layers(self.policy.mean_net), obs_mean=statistics.mean.copy(),
                                 obs_var=statistics.var.copy(), obs_norm=self.cfg.obs_norm != "off",
                                 seed=self.cfg.seed + self.EVAL_SEED_OFFSET, episodes=self.cfg.eval_episodes)

    def evaluation_returns(self, request: EvaluationRequest) -> list[float]:
        """The raw returns of `request`, one per episode, stepped here."""
        if not self.eval_envs:  # separate instances, made once: training envs are never disturbed by evaluation
            self.eval_envs = [make_env(self.cfg.env_id) for _ in range(self.cfg.eval_episodes)]
        return evaluate_request(request, self.eval_envs)

    def record_evaluation(self, returns: list[float]) -> dict:
        """The metrics of an evaluation's returns; updates the last and best mean return."""
        self.last_eval_return = float(np.mean(returns))
        improved = self.best_eval_return is None or self.last_eval_return > self.best_eval_return
        if improved:
            self.best_eval_return = self.last_eval_return
        return {"eval_return": self.last_eval_return, "eval_return_std": float(np.std(returns)), "eval_improved": improved}

    # --- state --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A checkpoint payload: plain tensors and primitives only."""
        snapshots = []
        for snap in self.venv.get_snapshots():
            snapshots.append({**snap, "physics": torch.from_numpy(snap["physics"]), "obs": torch.from_numpy(snap["obs"])})
        to_cpu = lambda sd: {k: v.detach().cpu().clone() for k, v in sd.items()}  # noqa: E731
        return {
            "iteration": self.iteration, "timesteps": self.timesteps, "config": self.cfg.to_dict(),
            "policy": to_cpu(self.policy.state_dict()), "value": to_cpu(self.value.state_dict()),
            "normalizer": self.normalizer.state_dict(), "optimizer": _optimizer_to_cpu(self.optimizer.state_dict()),
            "rng": {"numpy": json.dumps(self.rng.bit_generator.state), "torch": torch.get_rng_state()},
            "envs": snapshots, "obs_norm": torch.from_numpy(np.asarray(self.obs_norm, np.float64).copy()),
            "eval_return": self.last_eval_return, "best_eval_return": self.best_eval_return,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue exactly from a checkpoint payload of this run."""
        self.policy.load_state_dict(state["policy"])
        self.value.load_state_dict(state["value"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.rng.bit_generator.state = json.loads(state["rng"]["numpy"])
        torch.set_rng_state(state["rng"]["torch"])
        self.iteration, self.timesteps = int(state["iteration"]), int(state["timesteps"])
        self.last_eval_return, self.best_eval_return = state.get("eval_return"), state.get("best_eval_return")
        snapshots = [{**s, "physics": s["physics"].numpy(), "obs": s["obs"].numpy()} for s in state["envs"]]
        self.env_state_restored = len(snapshots) == self.cfg.n_envs and self.venv.set_snapshots(snapshots)
        if self.env_state_restored:
            self.obs_norm = state["obs_norm"].numpy().copy()
        else:  # env physics we cannot restore: continue with fresh episodes (documented resume limit)
            self.venv.reset(self.cfg.seed + 7919 * (self.iteration + 1))
            self.obs_norm = self.normalizer.normalize_obs(self.venv.obs)

    def load_weights(self, state: dict) -> None:
        """Start from another run's policy and value weights (--pretrained_path)."""
        self.policy.load_state_dict(state["policy"])
        if "value" in state:
            self.value.load_state_dict(state["value"])

    def close(self) -> None:
        self.venv.close()
        for env in self.eval_envs:
            env.close()


def _optimizer_to_cpu(state: dict) -> dict:
    return {"state": {k: {n: (t.detach().cpu().clone() if torch.is_tensor(t) else t) for n, t in s.items()}
                      for k, s in state["state"].items()},
            "param_groups": state["param_groups"]}
