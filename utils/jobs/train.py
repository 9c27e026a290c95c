"""Start or resume a training run, in two steps: ``prepare_run`` validates every input and resolves every value
once into a frozen TrainPlan, writing nothing; ``train`` creates (or reopens) the run, tracks it and trains it.

So a bad flag never touches the run store, and nothing downstream changes a setting or the config. A resume
reads and checks everything it will use or overwrite (checkpoints, best.pt, logs, permissions) while planning;
``_plan_resume_point`` says which checkpoints belong to a run.
"""
from __future__ import annotations

import math
import os
import traceback
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Callable, Collection, Mapping

import torch

from envs.resolve import make_env, resolve_env_id
from models.checkpoint import LoadedPolicy, config_digest, load_checkpoint, read_checkpoint
from models.divergence import TrainingDiverged
from models.networks import parse_dims
from models.training import TrainConfig, Trainer, state_mismatch
from utils.errors import RunFailed, UserError
from utils.flags import NAME_RULE, available_cpus, check_device, is_name
from utils.jobs.train_loop import run_training
from utils.progress import progress_bar
from utils.runs.io import write_bytes_atomic, write_text_atomic
from utils.runs.store import (RUN_JSON_FIX, IterationLogs, RunPaths, check_creatable_dir, check_new_run_id,
                              check_run_not_locked, check_run_writable, create_run, find_run, iteration_logs_up_to,
                              new_run_id, now_iso, package_versions, read_run_info, run_lock, update_run_info,
                              write_iteration_logs, write_run_info)
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
class ResumePoint:
    """Where a resumed run continues, found and checked while planning: its newest own checkpoint (None: the run
    has none and starts again from iteration 0) and what its logs keep."""

    checkpoint: dict | None  # the newest checkpoint that belongs to the run, with the full training state
    kept_logs: IterationLogs  # metrics.jsonl / timing.jsonl and the text each keeps: lines up to the checkpoint
    own_checkpoints: tuple[tuple[int, Path], ...]  # (iteration, path) of every checkpoint of the run, oldest first

    @property
    def iteration(self) -> int:
        """The iteration the run continues after; -1 when it starts again from the beginning."""
        return -1 if self.checkpoint is None else int(self.checkpoint["iteration"])


@dataclass(frozen=True)
class TrainPlan:
    """A validated run with every value resolved: all that ``train`` needs, nothing it has to look up or change.

    Exactly one way of starting applies: ``resume`` (continue a killed run from its newest own checkpoint, or
    start it again when it died before its first one), or a new run; a new run or a restarted one may start from
    ``pretrained_weights`` and/or ``initial_statistics``; ``already_finished`` means nothing to do.
    """

    settings: TrainSettings  # the flags, with n_envs, run_id and stop_at_return resolved (on resume: the run's own)
    config: TrainConfig  # built once; on resume the run's own config, on this --device
    run_dir: Path  # <save_dir>/<run_id>; exists only for a resume
    run_info: dict  # run.json: to be written for a new run, as read for a resume
    wandb: WandbTarget | None  # None only when already_finished
    notices: tuple[str, ...] = ()  # one-line notices (env id resolution, wandb mode), in order
    resume: ResumePoint | None = None  # --resume: where the run continues
    pretrained_weights: LoadedPolicy | None = None  # --pretrained_path: initial policy and value weights
    initial_statistics: LoadedPolicy | None = None  # --stats_path: initial observation normalization statistics
    already_finished: bool = False  # --resume of a finished run
    extended_from: int | None = None  # --resume with a larger --total_timesteps: the run's budget before

    @property
    def run_id(self) -> str:
        return self.run_dir.name

    @property
    def is_resume(self) -> bool:
        return self.resume is not None or self.already_finished


@dataclass(frozen=True)
class TrainResult:
    """Where a run's results are, its last metrics and a report of a few lines for the user."""

    run: RunPaths
    last_metrics: dict
    report: str


# --------------------------------------------------------------------------------------------------------------
# Planning: every check and every resolved value, before anything is written
# --------------------------------------------------------------------------------------------------------------
# The flags --resume takes from the command line; every other one is the run's own (a run is one experiment).
HONOURED_ON_RESUME = frozenset({"resume", "save_dir", "device", "wandb_mode", "unobserve", "quiet", "torch_threads",
                                "eval_process", "stop_at_return", "total_timesteps"})


def prepare_run(settings: TrainSettings, environ: Mapping[str, str] = os.environ,
                given: Collection[str] | None = None) -> TrainPlan:
    """Validate the settings against the machine and the run store and resolve every value; writes nothing.

    `environ` supplies WANDB_SWEEP_ID / WANDB_RUN_ID (set when a wandb agent launches the run) and the variables
    that choose the wandb mode. `given` names the flags spelled out on the command line (utils.flags.given_flags;
    None: those whose value is not the default); --resume uses it to tell which flags it was asked to change.
    Every problem a user can fix is a UserError.
    """
    if given is None:
        given = {f.name for f in fields(settings) if getattr(settings, f.name) != f.default}
    if settings.resume:
        return _plan_resume(settings, environ, frozenset(given))
    return _plan_new_run(settings, environ)


def _plan_resume(settings: TrainSettings, environ: Mapping[str, str], given: frozenset[str]) -> TrainPlan:
    run = find_run(Path(settings.save_dir), settings.resume)
    check_run_not_locked(run)
    info = read_run_info(run)
    try:
        config = TrainConfig.from_dict(info["config"])
    except ValueError as err:
        raise UserError(f"{run.run_json} is damaged ({err}); {RUN_JSON_FIX}") from None
    stored_flags = info.get("flags", {})
    # like every other flag, the run's own --stop_at_return holds on resume unless this command sets one
    stop_at_return = settings.stop_at_return if settings.stop_at_return is not None \
        else stored_flags.get("stop_at_return")
    ignored = sorted(name for name in given - HONOURED_ON_RESUME
                     if name in stored_flags and stored_flags[name] != getattr(settings, name))
    notices = [f"notice: --resume continues run {run.run_id} with its own flags; ignored "
               f"{', '.join(f'--{name}' for name in ignored)} (start a new run to change them)"] if ignored else []
    extended_from = None
    if "total_timesteps" in given and settings.total_timesteps != config.total_timesteps:
        if settings.total_timesteps < config.total_timesteps:
            raise UserError(f"--total_timesteps={settings.total_timesteps} is less than run {run.run_id}'s "
                            f"{config.total_timesteps}; --resume can extend a run, not shorten it: drop the flag "
                            f"or pass more")
        extended_from = config.total_timesteps
        config = replace(config, total_timesteps=settings.total_timesteps)
        notices.append(f"notice: extending run {run.run_id} from {extended_from} to {config.total_timesteps} "
                       f"timesteps")
    resolved = replace(settings, n_envs=config.n_envs, run_id=run.run_id, stop_at_return=stop_at_return,
                       total_timesteps=config.total_timesteps)
    if info.get("status") == "finished" and extended_from is None:
        return TrainPlan(resolved, config, run.root, info, wandb=None, notices=tuple(notices),
                         already_finished=True)
    config = replace(config, device=check_device(settings.device))
    check_run_writable(run)
    resume, resume_notices = _plan_resume_point(run, config)
    pretrained = statistics = None
    if resume.checkpoint is None:  # starting again: from what the run first started from
        pretrained = _reload_initial(run, stored_flags, config, "pretrained_path", weights=True)
        statistics = _reload_initial(run, stored_flags, config, "stats_path", weights=False)
    # like the run's other flags, its wandb mode holds unless this command gives one
    if {"wandb_mode", "unobserve"} & given:
        mode, mode_notice = choose_mode(settings.wandb_mode, settings.unobserve, environ)
    else:
        mode, mode_notice = choose_mode(stored_flags.get("wandb_mode"), bool(stored_flags.get("unobserve")), environ)
    stored = info.get("wandb") or {}
    wandb = WandbTarget(mode, stored.get("project", settings.project_name), stored.get("entity", settings.entity),
                        stored_flags.get("run_name"))
    return TrainPlan(resolved, config, run.root, info, wandb, notices=_lines(*notices, *resume_notices, mode_notice),
                     resume=resume, pretrained_weights=pretrained, initial_statistics=statistics,
                     extended_from=extended_from)


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
    if weights:  # e.g. a checkpoint of a run that diverged before divergence stopped runs: training would fail
        parts = [("policy", loaded.raw["policy"]), ("value", loaded.raw.get("value", {}))]
        broken = next((f"{name} {key}" for name, state in parts for key, tensor in state.items()
                       if torch.is_tensor(tensor) and not bool(torch.isfinite(tensor).all())), None)
        if broken is not None:
            raise UserError(f"{flag}={loaded.path} holds non-finite weights ({broken}); pass a checkpoint from "
                            f"before its run diverged")


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


def _plan_resume_point(run: RunPaths, config: TrainConfig) -> tuple[ResumePoint, tuple[str, ...]]:
    """Where `run` continues and the notices to show; reads every checkpoint, best.pt and both logs, writes nothing.

    A checkpoint belongs to the run when it loads, carries the full training state, its run id is the run's
    (checkpoints written before checkpoints carried one are judged by the config alone), its config digest is
    that of the run's config, the iteration it holds is the one its file name says, and its tensors fit the
    config's networks. The newest one that belongs is where the run continues. Files that do not belong are
    never written to:
    - an older one is named in one notice and left as it is (training never writes that iteration again);
    - a newer one, or a best.pt that does not belong, would be overwritten as training goes on, so the resume is
      refused (UserError) with nothing written. A damaged file counts as not the run's own: the run writes every
      file atomically, so it never leaves a torn one of its own behind.
    With no checkpoint at all (killed before checkpoint 0) the run starts again from the beginning.
    """
    digest = config_digest(config.to_dict())
    own: list[tuple[int, Path]] = []
    foreign: list[tuple[int, str]] = []  # (iteration its name says, "name (why it does not belong)")
    chosen = None
    for iteration, path in reversed(run.list_checkpoints()):
        state, reason = _read_own_checkpoint(path, run.run_id, config, digest, iteration)
        if reason is not None:
            foreign.append((iteration, f"{path.name} ({reason})"))
            continue
        own.append((iteration, path))
        if chosen is None:  # newest first: the first one that belongs; the older ones are only checked
            chosen = state
    start = -1 if chosen is None else int(chosen["iteration"])
    in_the_way = [f"checkpoints/{named}" for iteration, named in reversed(foreign) if iteration > start]
    if run.best.exists():
        _, reason = _read_own_checkpoint(run.best, run.run_id, config, digest, iteration=None)
        if reason is not None:
            in_the_way.append(f"best.pt ({reason})")
    if in_the_way:
        where = "the beginning" if chosen is None else f"checkpoints/{run.checkpoint(start).name}"
        raise UserError(f"run {run.run_id} holds {', '.join(in_the_way)}, which it did not write and would "
                        f"overwrite if it resumed from {where}; move {'it' if len(in_the_way) == 1 else 'them'} "
                        f"out of {run.root} and resume again")
    notices = []
    older = [named for iteration, named in reversed(foreign) if iteration < start]
    if len(older) == 1:
        notices.append(f"notice: ignoring checkpoints/{older[0]}, which does not belong to run {run.run_id}; "
                       f"it is left as it is")
    elif older:
        notices.append(f"notice: ignoring {len(older)} checkpoints that do not belong to run {run.run_id}: "
                       f"{', '.join(older)}; they are left as they are")
    if chosen is None:
        notices.append(f"notice: run {run.run_id} has no checkpoint yet; starting it again from the beginning")
    return ResumePoint(chosen, iteration_logs_up_to(run, start), tuple(reversed(own))), tuple(notices)


def _read_own_checkpoint(path: Path, run_id: str, config: TrainConfig, digest: str,
                         iteration: int | None) -> tuple[dict | None, str | None]:
    """(the checkpoint, None) when `path` belongs to run `run_id` with `config` (whose digest is `digest`), else
    (None, why not in a few words); `iteration` is the one its file name says (None for best.pt)."""
    try:
        state = read_checkpoint(path)
    except UserError:
        return None, "unreadable"
    owner = state.get("run_id")
    if owner is not None and owner != run_id:
        return None, f"run {owner}"
    stored_digest = state.get("config_digest")
    if stored_digest is None and isinstance(state["config"], dict):  # written before checkpoints carried a digest
        stored_digest = config_digest(state["config"])
    if stored_digest != digest:
        return None, "another config"
    if iteration is not None and state["iteration"] != iteration:
        return None, f"holds iteration {state['iteration']}"
    mismatch = state_mismatch(config, state)
    return (state, None) if mismatch is None else (None, mismatch)


def _reload_initial(run: RunPaths, stored_flags: Mapping, config: TrainConfig, flag: str,
                    weights: bool) -> LoadedPolicy | None:
    """The --pretrained_path / --stats_path checkpoint a run was started from, loaded again to start it again."""
    path = stored_flags.get(flag)
    if not path:
        return None
    if not Path(path).is_file():
        raise UserError(f"run {run.run_id} has no checkpoint yet and starts again from --{flag}={path}, which is "
                        f"not there any more; put that file back and resume again")
    loaded = load_checkpoint(path)
    _check_compatible(loaded, config, f"--{flag}", weights=weights)
    return loaded


# --------------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------------
def train(plan: TrainPlan, notify: Callable[[str], None] = lambda line: None) -> TrainResult:
    """Create (or reopen) the planned run, train it to the end under its lock and report where everything is."""
    if plan.already_finished:
        for line in plan.notices:
            notify(line)
        return TrainResult(RunPaths(plan.run_dir), {}, f"run {plan.run_id} is already finished; nothing to resume "
                                                       f"(its checkpoints are in {plan.run_dir}); to train it longer, "
                                                       f"resume it with a larger --total_timesteps")
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
    extension = {}
    if plan.extended_from is not None:  # the run's record says what it now trains to
        extension = {"config": {**plan.run_info["config"], "total_timesteps": plan.config.total_timesteps},
                     "flags": {**plan.run_info.get("flags", {}), "total_timesteps": plan.config.total_timesteps},
                     "n_iterations": plan.config.n_iterations}
    # error=None: a resumed run's status is this attempt's, not the failure of an earlier one
    update_run_info(run, status="running", error=None,
                    wandb={"mode": tracker.mode, "id": tracker.run_id, "project": plan.wandb.project,
                           "entity": plan.wandb.entity, "url": tracker.url}, **extension)
    trainer = None
    try:
        trainer = _start_trainer(run, plan, notify)
        last = _train_with_progress(trainer, run, tracker, plan.settings)
    except BaseException as err:
        status = "killed" if isinstance(err, KeyboardInterrupt) else "failed"
        if isinstance(err, Exception) and not isinstance(err, (UserError, RunFailed)):
            _save_error_log(run)
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
    stopped_early = bool(last.get("stopped_early"))
    update_run_info(run, status="finished", stopped_early=stopped_early, **summary)
    if stopped_early:
        headline = (f"run {run.run_id} stopped early at iteration {trainer.iteration} ({trainer.timesteps} "
                    f"timesteps): its eval return {_fmt(last.get('eval_return'))} exceeded --stop_at_return="
                    f"{plan.settings.stop_at_return:g}")
    else:
        headline = f"run {run.run_id} finished: {trainer.iteration} iterations, {trainer.timesteps} timesteps"
    lines = [f"{headline}, best eval return {_fmt(trainer.best_eval_return)}",
             f"  run store: {run.root}", f"  best checkpoint: {run.best}",
             f"  next: python evaluate.py --run_id={run.run_id} --checkpoints_dir={plan.settings.save_dir}"]
    if tracker.url:
        lines.append(f"  wandb: {tracker.url}")
    return TrainResult(run, last, "\n".join(lines))


def _save_error_log(run: RunPaths) -> None:
    """Keep the traceback of the exception being handled, a bug, with the run (<run>/error.log), where whoever
    looks at the failed run finds it; the CLI's crash log holds it too. Best effort: a failure to write it must
    not hide the bug itself."""
    try:
        write_text_atomic(run.error_log, f"{now_iso()}\n\n{traceback.format_exc()}")
    except OSError:
        pass


def _start_tracker(run: RunPaths, plan: TrainPlan) -> Tracker:
    config = {**plan.run_info["config"], "env_requested": plan.config.env, "sweep_id": plan.run_info.get("sweep_id")}
    return start_tracking(plan.wandb.mode, run_id=run.run_id, run_dir=run.root, config=config,
                          project=plan.wandb.project, entity=plan.wandb.entity, name=plan.wandb.name,
                          resume=plan.is_resume)


def _start_trainer(run: RunPaths, plan: TrainPlan, notify: Callable[[str], None]) -> Trainer:
    """A Trainer at the plan's starting point: a resumed checkpoint, or fresh (optionally pretrained) networks."""
    trainer = Trainer(plan.config)
    try:
        if plan.resume is not None:
            if plan.resume.checkpoint is not None:
                trainer.load_state_dict(plan.resume.checkpoint)
            # only now that the run surely continues from there: forget the iterations it will train again
            write_iteration_logs(plan.resume.kept_logs)
            if not trainer.env_state_restored:
                notify(f"notice: {plan.config.env_id} state cannot be snapshotted; resumed with fresh episodes, "
                       f"so results will differ from an uninterrupted run")
                _forget_abandoned_best(run, plan.resume.iteration, plan.resume.own_checkpoints)
        if plan.pretrained_weights is not None:
            trainer.load_weights(plan.pretrained_weights.raw)
        if plan.initial_statistics is not None:
            trainer.normalizer.load_state_dict(plan.initial_statistics.raw["normalizer"], statistics_only=True)
    except BaseException:
        trainer.close()  # its envs (maybe subprocesses) would outlive the failure otherwise
        raise
    return trainer


def _forget_abandoned_best(run: RunPaths, resumed_iteration: int,
                           own_checkpoints: tuple[tuple[int, Path], ...]) -> None:
    """After an inexact resume, best.pt must not come from iterations the new timeline will redo differently;
    it becomes the best of the run's own checkpoints up to `resumed_iteration` (never a file copied in)."""
    try:
        if int(read_checkpoint(run.best)["iteration"]) <= resumed_iteration:
            return
    except UserError:
        pass  # missing: rebuild it (planning refused a best.pt that is not the run's own)
    candidates = []
    for iteration, path in own_checkpoints:
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


def limit_compute_threads(threads: int) -> None:
    """torch's intra-op threads and numpy's BLAS threads of this process. Our networks are small: a second thread
    buys nothing, and while the other core is busy (an evaluation worker, a parallel sweep run) it stalls the
    first (measured: with BLAS's default 2 threads, background evaluation made a run 1.35x slower, with 1 thread
    1.09x)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads, user_api="blas")


def return_reached(metrics: dict, stop_at_return: float | None) -> bool:
    """True when the iteration's mean deterministic eval return exceeds `stop_at_return` (None: never)."""
    value = metrics.get("eval_return")
    return stop_at_return is not None and value is not None and value > stop_at_return


def _train_with_progress(trainer: Trainer, run: RunPaths, tracker: Tracker, settings: TrainSettings) -> dict:
    cfg = trainer.cfg
    total = cfg.n_iterations * cfg.n_steps * cfg.n_envs
    # one throughput only: the bar's own steps/s (a terminal) or the elapsed and remaining time (a log)
    bar = progress_bar(total, f"{cfg.env_id} {run.run_id}", "step", enabled=not settings.quiet,
                       initial=trainer.timesteps, leave=True)

    def after_iteration(metrics: dict) -> bool:
        """Show and log the iteration; True (stop training) once --stop_at_return is exceeded."""
        if trainer.last_eval_return is not None:
            bar.set_postfix({"eval": f"{trainer.last_eval_return:.1f}"}, refresh=False)
        bar.update(metrics["timesteps"] - bar.n)
        tracker.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=metrics["iteration"])
        return return_reached(metrics, settings.stop_at_return)

    def on_checkpoint(iteration: int, path: Path) -> None:
        tracker.log_checkpoint(path, run.run_id, iteration)

    try:
        return run_training(trainer, run, after_iteration=after_iteration, on_checkpoint=on_checkpoint,
                            eval_process="inprocess" if settings.debug else settings.eval_process)
    except TrainingDiverged as err:
        raise err.with_advice(_divergence_advice(run, cfg)) from None
    finally:
        bar.close()


def _divergence_advice(run: RunPaths, cfg: TrainConfig) -> str:
    """What to do after a divergence: where the last finite policy is (the loop never saves a diverged one) and
    which flag to change (a resume would repeat the same numbers, so only a new run helps)."""
    checkpoints = run.list_checkpoints()
    lower = f"start a new run with a lower --learning_rate than {cfg.learning_rate:g}"
    if not checkpoints:
        return lower
    last = checkpoints[-1][1]
    return f"its last finite checkpoint is {last}; {lower} (add --pretrained_path={last} to start from it)"


__all__ = ["ResumePoint", "TrainPlan", "TrainResult", "WandbTarget", "limit_compute_threads", "prepare_run",
           "return_reached", "train"]
