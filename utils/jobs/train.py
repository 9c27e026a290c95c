"""Start or resume a training run, in two steps: ``prepare_run`` validates every input and resolves every value
once into a frozen TrainPlan, writing nothing; ``train`` creates (or reopens) the run, tracks it and trains it.

So a bad flag never touches the run store, and nothing downstream changes a setting or the config.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

from envs.resolve import make_env, resolve_env_id
from models.checkpoint import LoadedPolicy, load_checkpoint, read_checkpoint
from models.networks import parse_dims
from models.training import TrainConfig, Trainer
from utils.errors import UserError
from utils.flags import NAME_RULE, available_cpus, check_device, is_name
from utils.jobs.train_loop import run_training
from utils.runs.io import write_bytes_atomic
from utils.runs.store import (RUN_JSON_FIX, RunPaths, check_creatable_dir, check_new_run_id, create_run, find_run,
                              new_run_id, now_iso, package_versions, read_run_info, run_lock, truncate_iteration_logs,
                              update_run_info, write_run_info)
from utils.runs.tracking import Tracker, choose_mode, start_tracking
from utils.settings import TrainSettings


@dataclass(frozen=True)
class WandbTarget:
    """Where a run is mirrored in wandb: the mode already chosen (online/offline/disabled), project, entity, name."""

    mode: str
    project: str
    entity: str | None
    name: str | None


@dataclass(frozen=True)
class TrainPlan:
    """A validated run with every value resolved: all that ``train`` needs, nothing it has to look up or change.

    Exactly one way of starting applies: ``resume_checkpoint`` (continue a killed run exactly), or a new run,
    optionally from ``pretrained_weights`` and/or ``initial_statistics``; ``already_finished`` means nothing to do.
    """

    settings: TrainSettings  # the flags, with n_envs, run_id and stop_at_return resolved (on resume: the run's own)
    config: TrainConfig  # built once; on resume the run's own config, on this --device
    run_dir: Path  # <save_dir>/<run_id>; exists only for a resume
    run_info: dict  # run.json: to be written for a new run, as read for a resume
    wandb: WandbTarget | None  # None only when already_finished
    notices: tuple[str, ...] = ()  # one-line notices (env id resolution, wandb mode), in order
    resume_checkpoint: dict | None = None  # --resume: the newest checkpoint with the full training state
    pretrained_weights: LoadedPolicy | None = None  # --pretrained_path: initial policy and value weights
    initial_statistics: LoadedPolicy | None = None  # --stats_path: initial observation normalization statistics
    already_finished: bool = False  # --resume of a finished run

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def is_resume(self) -> bool:
        return self.resume_checkpoint is not None or self.already_finished


@dataclass(frozen=True)
class TrainResult:
    """Where a run's results are, its last metrics and a report of a few lines for the user."""

    run: RunPaths
    last_metrics: dict
    report: str


# --------------------------------------------------------------------------------------------------------------
# Planning: every check and every resolved value, before anything is written
# --------------------------------------------------------------------------------------------------------------
def prepare_run(settings: TrainSettings, environ: Mapping[str, str] = os.environ) -> TrainPlan:
    """Validate the settings against the machine and the run store and resolve every value; writes nothing.

    `environ` supplies WANDB_SWEEP_ID / WANDB_RUN_ID (set when a wandb agent launches the run) and the variables
    that choose the wandb mode. Every problem a user can fix is a UserError.
    """
    if settings.resume:
        return _plan_resume(settings, environ)
    return _plan_new_run(settings, environ)


def _plan_resume(settings: TrainSettings, environ: Mapping[str, str]) -> TrainPlan:
    run = find_run(Path(settings.save_dir), settings.resume)
    info = read_run_info(run)
    try:
        config = TrainConfig.from_dict(info["config"])
    except ValueError as err:
        raise UserError(f"{run.run_json} is damaged ({err}); {RUN_JSON_FIX}") from None
    stored_flags = info.get("flags", {})
    # like every other flag, the run's own --stop_at_return holds on resume unless this command sets one
    stop_at_return = settings.stop_at_return if settings.stop_at_return is not None \
        else stored_flags.get("stop_at_return")
    resolved = replace(settings, n_envs=config.n_envs, run_id=run.run_id, stop_at_return=stop_at_return)
    if info.get("status") == "finished":
        return TrainPlan(resolved, config, run.root, info, wandb=None, already_finished=True)
    config = replace(config, device=check_device(settings.device))
    checkpoint = newest_complete_checkpoint(run)
    mode, mode_notice = choose_mode(settings.wandb_mode, settings.unobserve, environ)
    stored = info.get("wandb") or {}
    wandb = WandbTarget(mode, stored.get("project", settings.project_name), stored.get("entity", settings.entity),
                        stored_flags.get("run_name"))
    return TrainPlan(resolved, config, run.root, info, wandb, notices=_lines(mode_notice),
                     resume_checkpoint=checkpoint)


def _plan_new_run(settings: TrainSettings, environ: Mapping[str, str]) -> TrainPlan:
    resolved_env = resolve_env_id(settings.env)
    policy_dims = parse_dims(settings.policy_dims, "--policy_dims")
    value_dims = parse_dims(settings.value_dims, "--value_dims")
    n_envs = settings.n_envs or available_cpus()
    rollout = settings.nsteps * n_envs
    if settings.batch_size > rollout:
        raise UserError(f"--batch_size={settings.batch_size} is larger than a rollout (nsteps x n_envs = "
                        f"{settings.nsteps} x {n_envs} = {rollout}); lower --batch_size or raise --nsteps")
    if not (math.isfinite(settings.learning_rate) and settings.learning_rate > 0):
        raise UserError(f"--learning_rate={settings.learning_rate} must be a positive number, "
                        f"e.g. --learning_rate=3e-4")
    if not math.isfinite(settings.log_std_init):
        raise UserError(f"--log_std_init={settings.log_std_init} must be a finite number, e.g. --log_std_init=-2")
    device = check_device(settings.device)
    obs_dim, act_dim = _probe_dims(resolved_env.resolved)
    pretrained = load_checkpoint(settings.pretrained_path) if settings.pretrained_path else None
    statistics = load_checkpoint(settings.stats_path) if settings.stats_path else None

    config = TrainConfig(
        env=settings.env, env_id=resolved_env.resolved, obs_dim=obs_dim, act_dim=act_dim, policy_dims=policy_dims,
        value_dims=value_dims, total_timesteps=settings.total_timesteps, n_steps=settings.nsteps, n_envs=n_envs,
        batch_size=settings.batch_size, n_epochs=settings.n_epochs, learning_rate=settings.learning_rate,
        log_std_init=settings.log_std_init, seed=settings.seed, eval_every=settings.eval_every,
        eval_episodes=settings.eval_episodes, save_every=settings.save_every, obs_norm=settings.obs_norm,
        # given statistics are not re-seeded by a random-action warm-up
        norm_warmup_steps=0 if statistics is not None else settings.norm_warmup_steps,
        device=device, subprocess_envs=settings.vec_env == "subprocess" and not settings.debug and n_envs > 1)
    if pretrained is not None:
        _check_compatible(pretrained, config, "--pretrained_path", weights=True)
    if statistics is not None:
        _check_compatible(statistics, config, "--stats_path", weights=False)

    wandb_sweep_id = environ.get("WANDB_SWEEP_ID") or None
    run_id = settings.run_id
    if run_id is None and wandb_sweep_id:
        run_id = environ.get("WANDB_RUN_ID") or None  # a wandb agent chose the run id: keep local and wandb ids equal
    if run_id is not None and not is_name(run_id):
        raise UserError(f"--run_id={run_id!r} is not a valid id; {NAME_RULE}")
    run_id = run_id or new_run_id()
    save_dir = check_creatable_dir(Path(settings.save_dir), "--save_dir")
    check_new_run_id(save_dir, run_id)
    mode, mode_notice = choose_mode(settings.wandb_mode, settings.unobserve, environ)

    resolved = replace(settings, n_envs=n_envs, run_id=run_id)
    info = {
        "run_id": run_id, "status": "running", "created": now_iso(), "env_requested": config.env,
        "env_id": config.env_id, "obs_dim": config.obs_dim, "act_dim": config.act_dim, "seed": config.seed,
        "sweep_id": settings.sweep_id or wandb_sweep_id, "wandb_sweep_id": wandb_sweep_id,
        "flags": asdict(resolved), "config": config.to_dict(), "packages": package_versions(),
        "n_iterations": config.n_iterations,
    }
    return TrainPlan(resolved, config, save_dir / run_id, info,
                     WandbTarget(mode, settings.project_name, settings.entity, settings.run_name),
                     notices=_lines(resolved_env.notice, mode_notice),
                     pretrained_weights=pretrained, initial_statistics=statistics)


def _lines(*notices: str | None) -> tuple[str, ...]:
    return tuple(line for line in notices if line)


def _check_compatible(loaded: LoadedPolicy, cfg: TrainConfig, flag: str, weights: bool) -> None:
    other = loaded.config
    if other.get("env_id") != cfg.env_id or loaded.obs_dim != cfg.obs_dim:
        raise UserError(f"{flag}={loaded.path} was trained on {other.get('env_id')} ({loaded.obs_dim} observations), "
                        f"this run is {cfg.env_id} ({cfg.obs_dim}); pass a checkpoint of the same env")
    if weights and (tuple(other.get("policy_dims", ())) != cfg.policy_dims
                    or tuple(other.get("value_dims", ())) != cfg.value_dims):
        raise UserError(f"{flag}={loaded.path} has policy dims {other.get('policy_dims')} and value dims "
                        f"{other.get('value_dims')}, this run asks for {list(cfg.policy_dims)} and "
                        f"{list(cfg.value_dims)}; pass matching --policy_dims/--value_dims")
    _check_loads_into(loaded, cfg, flag, weights)


def _check_loads_into(loaded: LoadedPolicy, cfg: TrainConfig, flag: str, weights: bool) -> None:
    """Load the checkpoint into throwaway networks (weights) or a normalizer (statistics) of this run, as training
    will: a checkpoint whose contents do not match what its config says is refused now, before the run exists."""
    from models.networks import GaussianPolicy, ValueNet
    from models.normalization import Normalizer
    try:
        if weights:
            GaussianPolicy(cfg.obs_dim, cfg.act_dim, cfg.policy_dims, cfg.log_std_init).load_state_dict(
                loaded.raw["policy"])
            if "value" in loaded.raw:
                ValueNet(cfg.obs_dim, cfg.value_dims).load_state_dict(loaded.raw["value"])
        else:
            normalizer = Normalizer(cfg.obs_dim, cfg.n_envs, cfg.gamma, cfg.obs_norm)
            normalizer.load_state_dict(loaded.raw["normalizer"], statistics_only=True)
    except (RuntimeError, KeyError, TypeError, ValueError, AttributeError) as err:  # how load_state_dict refuses
        # torch's message is a title line, then one indented line per problem: show the title and the first one
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        first = " ".join(lines[:2])[:200] if lines else type(err).__name__
        raise UserError(f"{flag}={loaded.path} is damaged: its {'weights' if weights else 'statistics'} do not "
                        f"load ({first}); pass another checkpoint written by train.py") from None


def _probe_dims(env_id: str) -> tuple[int, int]:
    """Observation and action sizes of a continuous-control env, or a UserError saying why it cannot be trained."""
    import gymnasium as gym
    try:
        probe = make_env(env_id)
    except (gym.error.Error, ImportError) as err:
        raise UserError(f"cannot create {env_id} ({type(err).__name__}: {str(err).splitlines()[0][:150]}); "
                        f"install what it needs or pick another env") from None
    try:
        spaces = (probe.observation_space, probe.action_space)
        if not all(isinstance(space, gym.spaces.Box) and len(space.shape) == 1 for space in spaces):
            raise UserError(f"{env_id} does not have flat continuous (1-D Box) observations and actions; "
                            f"pick a continuous-control env such as HalfCheetah-v5 or Car1DEnv-v1")
        if probe.spec is None or probe.spec.max_episode_steps is None:
            raise UserError(f"{env_id} has no episode time limit, so evaluation episodes might never end; "
                            f"register it with max_episode_steps")
        return int(spaces[0].shape[0]), int(spaces[1].shape[0])
    finally:
        probe.close()


def newest_complete_checkpoint(run: RunPaths) -> dict:
    """The newest checkpoint of `run` that loads and carries the full training state."""
    for _, path in reversed(run.list_checkpoints()):
        try:
            state = read_checkpoint(path)
        except UserError:
            continue  # a checkpoint cut short by a kill: fall back to the one before
        if all(k in state for k in ("optimizer", "envs", "rng", "value")):
            return state
    raise UserError(f"run {run.run_id} in {run.root.parent} has no complete checkpoint to resume from; "
                    f"start a new run instead of --resume")


# --------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------
def train(plan: TrainPlan, notify: Callable[[str], None] = lambda line: None) -> TrainResult:
    """Create (or reopen) the planned run, train it to the end under its lock and report where everything is."""
    if plan.already_finished:
        return TrainResult(RunPaths(plan.run_dir), {}, f"run {plan.run_id} is already finished; nothing to resume "
                                                       f"(its checkpoints are in {plan.run_dir})")
    if plan.is_resume:
        run = RunPaths(plan.run_dir)
    else:
        run = create_run(plan.run_dir.parent, plan.run_id)
        write_run_info(run, plan.run_info)
    with run_lock(run):
        for line in plan.notices:
            notify(line)
        return _train_locked(run, plan, notify)


def _train_locked(run: RunPaths, plan: TrainPlan, notify: Callable[[str], None]) -> TrainResult:
    """Track and train a run whose lock this process holds."""
    tracker = _start_tracker(run, plan)
    for line in tracker.notices:
        notify(line)
    update_run_info(run, status="running", wandb={"mode": tracker.mode, "id": tracker.run_id,
                                                  "project": plan.wandb.project, "entity": plan.wandb.entity,
                                                  "url": tracker.url})
    trainer = None
    try:
        trainer = _start_trainer(run, plan, notify)
        last = _train_with_progress(trainer, run, tracker, plan.settings)
    except BaseException as err:
        status = "killed" if isinstance(err, KeyboardInterrupt) else "failed"
        update_run_info(run, status=status, error=f"{type(err).__name__}: {err}"[:500])
        tracker.finish(exit_code=1)
        if trainer is not None:
            trainer.close()
        raise
    trainer.close()
    summary = {"best_eval_return": trainer.best_eval_return, "iterations": trainer.iteration,
               "timesteps": trainer.timesteps}
    tracker.set_summary(summary)
    tracker.finish()
    update_run_info(run, status="finished", **summary)
    lines = [f"run {run.run_id} finished: {trainer.iteration} iterations, {trainer.timesteps} timesteps, "
             f"best eval return {_fmt(trainer.best_eval_return)}",
             f"  run store: {run.root}", f"  best checkpoint: {run.best}",
             f"  next: python evaluate.py --run_id={run.run_id} --checkpoints_dir={plan.settings.save_dir}"]
    if tracker.url:
        lines.append(f"  wandb: {tracker.url}")
    return TrainResult(run, last, "\n".join(lines))


def _start_tracker(run: RunPaths, plan: TrainPlan) -> Tracker:
    config = {**plan.run_info["config"], "env_requested": plan.config.env, "sweep_id": plan.run_info.get("sweep_id")}
    return start_tracking(plan.wandb.mode, run_id=run.run_id, run_dir=run.root, config=config,
                          project=plan.wandb.project, entity=plan.wandb.entity, name=plan.wandb.name,
                          resume=plan.is_resume)


def _start_trainer(run: RunPaths, plan: TrainPlan, notify: Callable[[str], None]) -> Trainer:
    """A Trainer at the plan's starting point: a resumed checkpoint, or fresh (optionally pretrained) networks."""
    trainer = Trainer(plan.config)
    if plan.resume_checkpoint is not None:
        iteration = int(plan.resume_checkpoint["iteration"])
        truncate_iteration_logs(run, iteration)
        trainer.load_state_dict(plan.resume_checkpoint)
        if not trainer.env_state_restored:
            notify(f"notice: {plan.config.env_id} state cannot be snapshotted; resumed with fresh episodes, "
                   f"so results will differ from an uninterrupted run")
            _forget_abandoned_best(run, iteration)
    if plan.pretrained_weights is not None:
        trainer.load_weights(plan.pretrained_weights.raw)
    if plan.initial_statistics is not None:
        trainer.normalizer.load_state_dict(plan.initial_statistics.raw["normalizer"], statistics_only=True)
    return trainer


def _forget_abandoned_best(run: RunPaths, resumed_iteration: int) -> None:
    """After an inexact resume, best.pt must not come from iterations the new timeline will redo differently."""
    try:
        if int(read_checkpoint(run.best)["iteration"]) <= resumed_iteration:
            return
    except UserError:
        pass  # missing or damaged: rebuild it
    candidates = []
    for iteration, path in run.list_checkpoints():
        if iteration > resumed_iteration:
            continue
        try:
            value = read_checkpoint(path).get("eval_return")
        except UserError:
            continue
        candidates.append((value if value is not None else -math.inf, -iteration, path))
    if candidates:
        write_bytes_atomic(run.best, max(candidates)[2].read_bytes())


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def return_reached(metrics: dict, stop_at_return: float | None) -> bool:
    """True when the iteration's mean deterministic eval return exceeds `stop_at_return` (None: never)."""
    value = metrics.get("eval_return")
    return stop_at_return is not None and value is not None and value > stop_at_return


def _train_with_progress(trainer: Trainer, run: RunPaths, tracker: Tracker, settings: TrainSettings) -> dict:
    from tqdm import tqdm

    cfg = trainer.cfg
    total = cfg.n_iterations * cfg.n_steps * cfg.n_envs
    bar = tqdm(total=total, initial=trainer.timesteps, unit="step", disable=settings.quiet, dynamic_ncols=True,
               desc=f"{cfg.env_id} {run.run_id}")

    def after_iteration(metrics: dict) -> bool:
        """Show and log the iteration; True (stop training) once --stop_at_return is exceeded."""
        bar.update(metrics["timesteps"] - bar.n)
        postfix = {}
        if "fps" in metrics:
            postfix["fps"] = f"{metrics['fps']:.0f}"
        if trainer.last_eval_return is not None:
            postfix["eval"] = f"{trainer.last_eval_return:.1f}"
        bar.set_postfix(postfix, refresh=False)
        tracker.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=metrics["iteration"])
        return return_reached(metrics, settings.stop_at_return)

    def on_checkpoint(iteration: int, path: Path) -> None:
        tracker.log_checkpoint(path, run.run_id, iteration)

    try:
        return run_training(trainer, run, after_iteration=after_iteration, on_checkpoint=on_checkpoint)
    finally:
        bar.close()


__all__ = ["TrainPlan", "TrainResult", "WandbTarget", "newest_complete_checkpoint", "prepare_run", "return_reached",
           "train"]
