"""Start or resume a training run: validate everything first, then create the run, track it and train.

Nothing is written before all inputs are validated, so a bad flag never touches the run store.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

from envs.resolve import make_env, resolve_env_id
from models.checkpoint import LoadedPolicy, load_checkpoint, read_checkpoint
from models.networks import parse_dims
from models.training import TrainConfig, Trainer
from utils.flags import check_device
from utils.errors import UserError
from utils.jobs.train_loop import run_training
from utils.runs.io import write_bytes_atomic
from utils.runs.store import (RunPaths, check_writable_dir, create_run, find_run, new_run_id, now_iso,
                             package_versions, read_run_info, run_lock, truncate_iteration_logs, update_run_info,
                             write_run_info)
from utils.runs.tracking import choose_mode, start_tracking


_RUN_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass
class TrainOptions:
    """What the user asked for (train.py's flags, parsed)."""

    env: str = "Car1DEnv-v1"
    policy_dims: str = "c64,64"
    value_dims: str = "c64,64"
    total_timesteps: int = 1_000_000
    nsteps: int = 1000
    n_envs: int = 1
    batch_size: int = 64
    n_epochs: int = 10
    learning_rate: float = 3e-4
    log_std_init: float = -2.0
    seed: int = 0
    eval_every: int = 1
    eval_episodes: int = 5
    save_every: int = 1
    obs_norm: str = "running"
    norm_warmup_steps: int = 1000
    stop_at_return: float | None = None
    pretrained_path: str | None = None
    stats_path: str | None = None
    save_dir: str = "checkpoints"
    run_id: str | None = None
    resume: str | None = None
    device: str = "cpu"
    vec_env: str = "auto"
    debug: bool = False
    entity: str | None = None
    project_name: str = "deep_rl_regions"
    run_name: str | None = None
    sweep_id: str | None = None
    wandb_mode: str | None = None
    unobserve: bool = False
    quiet: bool = False

    @classmethod
    def from_namespace(cls, namespace) -> "TrainOptions":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in vars(namespace).items() if k in names})


@dataclass
class TrainResult:
    run: RunPaths
    last_metrics: dict
    report: str


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


def config_from_options(opts: TrainOptions) -> tuple[TrainConfig, str | None]:
    """Validated TrainConfig for a new run, and the env-resolution notice if any."""
    resolved = resolve_env_id(opts.env)
    policy_dims = parse_dims(opts.policy_dims, "--policy_dims")
    value_dims = parse_dims(opts.value_dims, "--value_dims")
    if opts.batch_size > opts.nsteps * opts.n_envs:
        raise UserError(f"--batch_size={opts.batch_size} is larger than a rollout (nsteps x n_envs = "
                        f"{opts.nsteps} x {opts.n_envs} = {opts.nsteps * opts.n_envs}); lower --batch_size "
                        f"or raise --nsteps")
    if not (math.isfinite(opts.learning_rate) and opts.learning_rate > 0):
        raise UserError(f"--learning_rate={opts.learning_rate} must be a positive number, e.g. --learning_rate=3e-4")
    if not math.isfinite(opts.log_std_init):
        raise UserError(f"--log_std_init={opts.log_std_init} must be a finite number, e.g. --log_std_init=-2")
    device = check_device(opts.device)
    obs_dim, act_dim = _probe_dims(resolved.resolved)
    subprocess_envs = opts.vec_env == "subprocess" and not opts.debug and opts.n_envs > 1
    cfg = TrainConfig(
        env=opts.env, env_id=resolved.resolved, obs_dim=obs_dim, act_dim=act_dim, policy_dims=policy_dims,
        value_dims=value_dims, total_timesteps=opts.total_timesteps, n_steps=opts.nsteps, n_envs=opts.n_envs,
        batch_size=opts.batch_size, n_epochs=opts.n_epochs, learning_rate=opts.learning_rate,
        log_std_init=opts.log_std_init, seed=opts.seed, eval_every=opts.eval_every, eval_episodes=opts.eval_episodes,
        save_every=opts.save_every, obs_norm=opts.obs_norm, norm_warmup_steps=opts.norm_warmup_steps, device=device,
        subprocess_envs=subprocess_envs)
    return cfg, resolved.notice


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


def launch_training(opts: TrainOptions, notify: Callable[[str], None] = lambda line: None,
                    wandb_sweep_id: str | None = None) -> TrainResult:
    """Validate options, create or reopen the run, train it to the end and return where everything is."""
    save_dir = Path(opts.save_dir)
    resume_state, pretrained, stats = None, None, None
    if opts.resume:
        run = find_run(save_dir, opts.resume)
        info = read_run_info(run)
        if info.get("status") == "finished":
            return TrainResult(run, {}, f"run {run.run_id} is already finished; nothing to resume "
                                        f"(its checkpoints are in {run.root})")
        cfg = replace(TrainConfig.from_dict(info["config"]), device=check_device(opts.device))
        if opts.stop_at_return is None:  # like every other flag, the run's own setting holds on resume
            opts.stop_at_return = info.get("flags", {}).get("stop_at_return")
        resume_state = newest_complete_checkpoint(run)
        env_notice = None
    else:
        cfg, env_notice = config_from_options(opts)
        pretrained = load_checkpoint(opts.pretrained_path) if opts.pretrained_path else None
        stats = load_checkpoint(opts.stats_path) if opts.stats_path else None
        if pretrained is not None:
            _check_compatible(pretrained, cfg, "--pretrained_path", weights=True)
        if stats is not None:
            _check_compatible(stats, cfg, "--stats_path", weights=False)
            cfg = replace(cfg, norm_warmup_steps=0)  # the statistics are given; do not re-seed them
        if opts.run_id is not None and not _RUN_ID_RE.match(opts.run_id):
            raise UserError(f"--run_id={opts.run_id!r} is not a valid id; use letters, digits, '-' or '_'")
        check_writable_dir(save_dir, "--save_dir")
        run_id = opts.run_id or new_run_id()
        run = create_run(save_dir, run_id)
        info = {
            "run_id": run_id, "status": "running", "created": now_iso(), "env_requested": cfg.env,
            "env_id": cfg.env_id, "obs_dim": cfg.obs_dim, "act_dim": cfg.act_dim, "seed": cfg.seed,
            "sweep_id": opts.sweep_id or wandb_sweep_id, "wandb_sweep_id": wandb_sweep_id,
            "flags": {f.name: getattr(opts, f.name) for f in fields(opts)}, "config": cfg.to_dict(),
            "packages": package_versions(), "n_iterations": cfg.n_iterations,
        }
        write_run_info(run, info)
    if env_notice:
        notify(env_notice)

    with run_lock(run):
        return _train_locked(run, info, cfg, opts, resume_state, pretrained, stats, notify)


def _train_locked(run: RunPaths, info: dict, cfg: TrainConfig, opts: TrainOptions, resume_state: dict | None,
                  pretrained: LoadedPolicy | None, stats: LoadedPolicy | None,
                  notify: Callable[[str], None]) -> TrainResult:
    """Track and train a run whose lock this process holds."""
    save_dir = Path(opts.save_dir)
    mode, mode_notice = choose_mode(opts.wandb_mode, opts.unobserve)
    if mode_notice:
        notify(mode_notice)
    stored = info.get("wandb") or {}
    project = stored.get("project", opts.project_name) if opts.resume else opts.project_name
    entity = stored.get("entity", opts.entity) if opts.resume else opts.entity
    tracker = start_tracking(mode, run_id=run.run_id, run_dir=run.root,
                             config={**info["config"], "env_requested": cfg.env, "sweep_id": info.get("sweep_id")},
                             project=project, entity=entity, name=info.get("flags", {}).get("run_name"),
                             resume=bool(opts.resume))
    for line in tracker.notices:
        notify(line)
    info = update_run_info(run, status="running", wandb={"mode": tracker.mode, "id": tracker.run_id,
                                                         "project": project, "entity": entity, "url": tracker.url})
    trainer = None
    try:
        trainer = Trainer(cfg)
        if resume_state is not None:
            truncate_iteration_logs(run, int(resume_state["iteration"]))
            trainer.load_state_dict(resume_state)
            if not trainer.env_state_restored:
                notify(f"notice: {cfg.env_id} state cannot be snapshotted; resumed with fresh episodes, "
                       f"so results will differ from an uninterrupted run")
                _forget_abandoned_best(run, int(resume_state["iteration"]))
        else:
            if pretrained is not None:
                trainer.load_weights(pretrained.raw)
            if stats is not None:
                trainer.normalizer.load_state_dict(stats.raw["normalizer"], statistics_only=True)
        last = _train_with_progress(trainer, run, tracker, opts)
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
             f"  next: python evaluate.py --run_id={run.run_id} --checkpoints_dir={save_dir}"]
    if tracker.url:
        lines.append(f"  wandb: {tracker.url}")
    return TrainResult(run, last, "\n".join(lines))


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


def _train_with_progress(trainer: Trainer, run: RunPaths, tracker, opts: TrainOptions) -> dict:
    from tqdm import tqdm

    cfg = trainer.cfg
    total = cfg.n_iterations * cfg.n_steps * cfg.n_envs
    bar = tqdm(total=total, initial=trainer.timesteps, unit="step", disable=opts.quiet, dynamic_ncols=True,
               desc=f"{cfg.env_id} {run.run_id}")

    def after_iteration(metrics: dict) -> bool:
        """Report the iteration; True (stop) once the deterministic eval return exceeds --stop_at_return."""
        bar.update(metrics["timesteps"] - bar.n)
        postfix = {}
        if "fps" in metrics:
            postfix["fps"] = f"{metrics['fps']:.0f}"
        if trainer.last_eval_return is not None:
            postfix["eval"] = f"{trainer.last_eval_return:.1f}"
        bar.set_postfix(postfix, refresh=False)
        tracker.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=metrics["iteration"])
        return opts.stop_at_return is not None and metrics.get("eval_return") is not None \
            and metrics["eval_return"] > opts.stop_at_return

    def on_checkpoint(iteration: int, path) -> None:
        tracker.log_checkpoint(path, run.run_id, iteration)

    try:
        return run_training(trainer, run, after_iteration=after_iteration, on_checkpoint=on_checkpoint)
    finally:
        bar.close()


__all__ = ["TrainOptions", "TrainResult", "launch_training"]
