"""Every command's settings: one frozen dataclass per command, the single source of each flag's name, default,
help and validation (the flags are generated from these fields by utils.flags.build_parser).

Field names are the paper's flag names where the paper has the flag (`--nsteps`, `--policy_dims`,
`--evaluate_random_lines`, ...); `names`/`aliases` keep every spelling the paper's README uses working.
Checks that need only the values themselves live in ``__post_init__``; checks that need the machine or the disk
(an env id, a CUDA device, a run store) happen when a job plans its work (utils/jobs).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError
from utils.flags import flag, float_in, int_in, name, non_empty


PROJECT_NAME = "deep_rl_regions"  # the wandb project every command uses unless --project_name says otherwise
WANDB_MODES = ("online", "offline", "disabled")
SEED = int_in(0, 2**32 - 1)  # numpy and gymnasium take non-negative seeds; run-time offsets stay far below 2^63
BIG = 10**12  # an upper bound for counts of steps, far beyond any run, that keeps arithmetic in int64
IMAGE_FORMATS = ("png", "pdf", "svg")  # utils.pictures.figure_files.FORMATS: what matplotlib writes for us
VIEWS = ("visited", "env")  # visualize_hd.py's default box of a 2-D state space (utils.pictures.state_planes)
EVAL_PROCESSES = ("auto", "inprocess", "subprocess")  # train.py --eval_process (utils.jobs.train_loop)
PLANE_SCALE = 1.25  # the paper's plane pictures: domain square side / circumcircle diameter of the three states


def _exactly_one_of_run_or_sweep(run_id: str | None, sweep_id: str | None) -> None:
    if bool(run_id) == bool(sweep_id):
        raise UserError("pass exactly one of --run_id=RUN_ID or --sweep_id=SWEEP_ID")


def limits(flag_name: str):
    """The type of a 'MIN,MAX' flag: text -> (min, max) with finite min < max, else a UserError naming the flag."""
    def parse(text: str) -> tuple[float, float]:
        try:
            if not text.isascii():  # float() also reads non-ASCII digits
                raise ValueError
            lo, hi = (float(v) for v in text.split(","))
        except ValueError:
            raise UserError(f"{flag_name}={text} is not MIN,MAX; pass two numbers such as {flag_name}=-50,150") from None
        if not (lo < hi) or not all(abs(v) < float("inf") for v in (lo, hi)):
            raise UserError(f"{flag_name}={text} needs finite MIN < MAX; pass e.g. {flag_name}=-50,150")
        return lo, hi
    return parse


@dataclass(frozen=True)
class TrainSettings:
    """train.py: PPO with separate ReLU MLP policy and value nets, every checkpoint in the run store."""

    env: str = flag("Car1DEnv-v1", "gymnasium id; legacy -v2/-v3 MuJoCo ids map to -v5")
    policy_dims: str = flag("c64,64", "policy hidden widths, e.g. c16,16 or 16,16")
    value_dims: str = flag("c64,64", "value hidden widths")
    total_timesteps: int = flag(1_000_000, "environment steps in all", type=int_in(1, BIG))
    nsteps: int = flag(1000, "steps per env per iteration (SB3's n_steps)", aliases=("--n_steps",),
                 type=int_in(1, 10**7))
    n_envs: int | None = flag(None, "parallel envs (default: CPUs available)", type=int_in(1, 1024))
    batch_size: int = flag(64, "minibatch size of the PPO update", type=int_in(1, 10**8))
    n_epochs: int = flag(10, "passes over each rollout in the PPO update", type=int_in(1, 10**4))
    learning_rate: float = flag(3e-4, "Adam learning rate", type=float_in(0, 10, low_open=True))
    log_std_init: float = flag(-2.0, "initial log standard deviation of the Gaussian policy",
                                type=float_in(-20, 5))
    seed: int = flag(0, "seed of the networks, envs and sampling", type=SEED)
    eval_every: int = flag(1, "iterations between evaluations (0: never)", type=int_in(0, BIG))
    eval_episodes: int = flag(5, "deterministic episodes per evaluation", type=int_in(1, 10**4))
    save_every: int = flag(1, "iterations between checkpoints", type=int_in(1, BIG))
    obs_norm: str = flag("running", "observation normalization", choices=("running", "frozen", "off"))
    norm_warmup_steps: int = flag(1000, "random-action steps that seed the observation statistics",
                                  type=int_in(0, BIG))
    stop_at_return: float | None = flag(None, "stop early once the mean deterministic eval return exceeds this",
                                        type=float_in(-math.inf, math.inf))
    pretrained_path: str | None = flag(None, "start from this checkpoint's policy and value weights",
                                       type=non_empty)
    stats_path: str | None = flag(None, "start from this checkpoint's normalization statistics", type=non_empty)
    save_dir: str = flag("checkpoints", "the run store", type=non_empty)
    run_id: str | None = flag(None, "id for the new run (default: a fresh random id)", type=name)
    resume: str | None = flag(None, "continue a killed run", metavar="RUN_ID_OR_DIR", type=non_empty)
    device: str = flag("cpu", "cpu or cuda")
    vec_env: str = flag("auto", "where envs step; auto = in this process (fastest for MuJoCo-sized envs on few cores)",
                        choices=("auto", "inprocess", "subprocess"))
    eval_process: str = flag("auto", "where evaluations run: subprocess = a background process evaluates iteration k "
                             "while k+1 trains; auto = that once evaluating is slow enough to pay for it and a "
                             "second CPU is free; the files written are identical", choices=EVAL_PROCESSES)
    torch_threads: int = flag(1, "torch intra-op and numpy BLAS threads; 1 is fastest for small MLPs",
                              type=int_in(1, 1024))
    debug: bool = flag(False, "single process: envs step in this process")
    entity: str | None = flag(None, "wandb entity")
    project_name: str = flag(PROJECT_NAME, "wandb project")
    run_name: str | None = flag(None, "wandb display name")
    sweep_id: str | None = flag(None, "sweep this run belongs to (set by sweep.py / wandb agents)",
                                  type=name)
    wandb_mode: str | None = flag(None, "default: online when logged in, else offline", choices=WANDB_MODES)
    unobserve: bool = flag(False, "the paper's flag: log to wandb offline")
    quiet: bool = flag(False, "no progress bar")


@dataclass(frozen=True)
class EvaluateSettings:
    """evaluate.py: exact region counts along trajectories and lines for every checkpoint of a run or a sweep."""

    run_id: str | None = flag(None, "evaluate this run (id or wandb run name)", type=name)
    sweep_id: str | None = flag(None, "evaluate every run of this sweep", type=name)
    checkpoints_dir: Path = flag(Path("checkpoints"), "the run store (train.py's --save_dir)", aliases=("--save_dir",))
    results_dir: Path = flag(Path("results"), "results go to <results_dir>/<run or sweep id>/<run_id>/")
    randomized_data_dir: Path = flag(Path("randomized_data"),
                                     "where randomized_metric_helper.py wrote the random lines and trajectories")
    add_stochastic: bool = flag(False, "also evaluate the stochastic policy (mean + Gaussian noise)")
    random_trajectories: bool = flag(False, "metrics on random-action trajectories",
                                     names=("--evaluate_random_trajectories",))
    random_lines: bool = flag(False, "metrics on random lines through sampled states",
                              names=("--evaluate_random_lines",))
    log_locally: bool = flag(False, "accepted for the paper's commands; results are always written locally")
    no_wandb_log: bool = flag(False, "do not log the evaluation to wandb")
    multi_processing: bool = flag(False, "evaluate checkpoints in parallel on all CPUs (= --workers=<CPUs>)")
    workers: int = flag(1, "checkpoints evaluated in parallel processes", type=int_in(1, 1024))
    device: str = flag("cpu", "where regions are counted", choices=("cpu", "cuda"))
    seed: int = flag(0, "env reset and action-noise seed of sampled episodes", type=SEED)
    overwrite: bool = flag(False, "re-evaluate epochs already in history.csv")
    no_plots: bool = flag(False, "skip the figures")
    format: str = flag("png", "figure format", choices=IMAGE_FORMATS)
    entity: str | None = flag(None, "wandb entity (for runs not in the local run store)")
    project_name: str = flag(PROJECT_NAME, "wandb project; also the prefix of runs of the paper's code "
                             "(<checkpoints_dir>/<project_name>_<run_id>/)")
    wandb_mode: str | None = flag(None, "default: online when logged in, else offline", choices=WANDB_MODES)
    quiet: bool = flag(False, "no progress bar")
    env: str | None = flag(None, "env id of runs of the paper's code (which do not record it), e.g. "
                                 "--env=HalfCheetah-v2 or --env=envs:Car1DEnv-v1", type=non_empty)

    def __post_init__(self):
        _exactly_one_of_run_or_sweep(self.run_id, self.sweep_id)

    @property
    def result_id(self) -> str:
        """The directory under results_dir (and randomized_data_dir): the sweep id, else the run id."""
        return self.sweep_id or self.run_id or ""

    @property
    def policy_types(self) -> tuple[str, ...]:
        return ("deterministic", "stochastic") if self.add_stochastic else ("deterministic",)


@dataclass(frozen=True)
class RandomizeSettings:
    """randomized_metric_helper.py: the random lines and random-action trajectories evaluate.py can measure."""

    run_id: str | None = flag(None, "random data for this run", type=name)
    sweep_id: str | None = flag(None, "random data shared by every run of this sweep", type=name)
    randomized_data_dir: Path = flag(Path("randomized_data"),
                                     "where the random data are written (<dir>/<id>/), the folder evaluate.py's "
                                     "--randomized_data_dir reads; --save_dir is the paper's spelling of this flag "
                                     "(in the other commands --save_dir is the run store)", aliases=("--save_dir",))
    checkpoints_dir: Path = flag(Path("checkpoints"), "the run store (train.py's --save_dir)")
    num_random_lines: int = flag(100, "sampled states, each giving a line through the origin and one through the mean",
                                 type=int_in(1, 10**6))
    num_random_trajectories: int = flag(10, "episodes under uniform random actions", type=int_in(1, 10**4))
    seed: int = flag(0, "seed of the sampled states and random-action episodes", type=SEED)
    entity: str | None = flag(None, "wandb entity (for runs not in the local run store)")
    project_name: str = flag(PROJECT_NAME, "wandb project")
    wandb_mode: str | None = flag(None, "wandb is only used to find runs that are not in the local run store",
                                  choices=WANDB_MODES)
    env: str | None = flag(None, "env id of runs of the paper's code (which do not record it)", type=non_empty)

    def __post_init__(self):
        _exactly_one_of_run_or_sweep(self.run_id, self.sweep_id)

    @property
    def result_id(self) -> str:
        return self.sweep_id or self.run_id or ""


@dataclass(frozen=True)
class VisualizeSettings:
    """visualize_hd.py: the exact partition of a 2-D slice of state space, drawn, and its evolution."""

    env: str | None = flag(None, "gymnasium id (default: the checkpoint's env); legacy -v2/-v3 ids map to -v5")
    policy_path: str | None = flag(None, "checkpoint (.pt) or Stable-Baselines3 model (.zip) to draw")
    stats_path: str | None = flag(None, "checkpoint (.pt) or SB3 VecNormalize file (vecnormalize.pkl, the paper's "
                                        "*_stats.pth) whose normalization statistics override the drawn policies' own")
    save_path: Path = flag(Path("plots"), "output directory (created when missing)")
    run_id: str | None = flag(None, "draw a run of the run store (its best checkpoint, or all of them)",
                                 type=name)
    run_dir: str | None = flag(None, "like --run_id, given the run's directory", type=non_empty)
    checkpoints_dir: Path = flag(Path("checkpoints"), "the run store that --run_id and --compare look in",
                                 aliases=("--save_dir",))
    all_checkpoints: bool = flag(False, "every checkpoint of the run on the same plane: animated GIF + contact sheet")
    compare: list[str] | None = flag(None, "runs (ids or directories) drawn side by side, on the same plane",
                                     nargs="+", metavar="RUN")
    color: str = flag("region", "region: a stable colour per activation pattern; action: ||action mean||; "
                                "slope: ||Jacobian of the action mean||", choices=("region", "action", "slope"))
    format: str = flag("png", "image format (the animation is always a GIF)", choices=IMAGE_FORMATS)
    num_episodes: int = flag(10, "stochastic episodes of the best policy to draw the three states from (high-D envs)",
                             type=int_in(1, 10**4))
    seed: int = flag(0, "seeds the episodes and the choice of the three states", type=SEED)
    scale: float = flag(PLANE_SCALE, "domain square side / circumcircle diameter (high-D)",
                          type=float_in(0, 1e6, low_open=True))
    view: str = flag("visited", "box of a 2-D state space on axes without --xlim/--ylim: visited = around the run's "
                                "fixed trajectory (its best checkpoint's; in one image also the drawn one's) and the "
                                "target, plus a 15 percent margin; env = the env's fixed box", choices=VIEWS)
    xlim: tuple[float, float] | None = flag(None, "first state variable's range (2-D state spaces)", type=limits("--xlim"),
                                            metavar="MIN,MAX")
    ylim: tuple[float, float] | None = flag(None, "second state variable's range (2-D state spaces)", type=limits("--ylim"),
                                            metavar="MIN,MAX")
    dpi: int = flag(150, "raster resolution (png and the GIF)", type=int_in(10, 1200))
    frame_ms: int = flag(700, "GIF frame duration in milliseconds", type=int_in(1, 60_000))
    unclipped: bool = flag(False, "partition the bare network, ignoring the policy's +-10 observation clip")
    device: str = flag("cpu", "cpu or cuda, for the partition")
    quiet: bool = flag(False, "no progress bar")

    def __post_init__(self):
        if not self.scale > 0:
            raise UserError(f"--scale={self.scale} must be positive")
        if self.run_dir and self.run_id:
            raise UserError("pass either --run_id or --run_dir, not both")

    @property
    def run(self) -> str | None:
        """The run to draw, by id or directory."""
        return self.run_dir or self.run_id


@dataclass(frozen=True)
class SweepSettings:
    """sweep.py: a grid (or random search) of train.py runs from a wandb-format sweep file."""

    file: str | None = flag(None, "sweep YAML in the wandb sweep format", positional=True)
    workers: int = flag(1, "runs trained at the same time (>= 1)", type=int_in(1, 1024))
    count: int | None = flag(None, "configurations to draw for method: random (default: the file's run_cap, else 10; "
                                   "a grid runs every combination and refuses --count)", type=int_in(1, 10**6))
    seed: int = flag(0, "seed for method: random", type=SEED)
    save_dir: str = flag("checkpoints", "the run store (as train.py's --save_dir)", type=non_empty)
    sweep_id: str | None = flag(None, "id for the new sweep (default: a fresh random id)", type=name)
    resume: str | None = flag(None, "continue an interrupted sweep", metavar="SWEEP_ID", type=name)
    wandb_mode: str | None = flag(None, "passed to every run (default: train.py's: online when logged in, else offline)",
                                  choices=WANDB_MODES)
    dry_run: bool = flag(False, "print the configurations and exit (with --resume: each run's id and state too)")
    quiet: bool = flag(False, "no progress bar")

    def __post_init__(self):
        if self.workers < 1:
            raise UserError(f"--workers={self.workers} must be at least 1; use --workers=1 for one run at a time")
        if bool(self.file) == bool(self.resume):
            raise UserError("give either a sweep FILE or --resume=SWEEP_ID (not both, not neither)")


@dataclass(frozen=True)
class BrowseSettings:
    """runs.py: what is in the run store: every run and sweep, or one run in full. Reads only."""

    run_id: str | None = flag(None, "show this run in full (default: list every run and sweep)", positional=True,
                              type=name)
    checkpoints_dir: Path = flag(Path("checkpoints"), "the run store (train.py's --save_dir)", aliases=("--save_dir",))
    results_dir: Path = flag(Path("results"), "where evaluate.py wrote results (to tell which runs are evaluated)")
    json: bool = flag(False, "print JSON instead of a table")


@dataclass(frozen=True)
class ImportSettings:
    """import_policy.py: a Stable-Baselines3 model, an rl-zoo3 folder or a run of the paper's code as a run of the
    run store (evaluated and drawn like a run of train.py)."""

    path: str = flag(None, "an SB3 model .zip, an rl-zoo3 folder (model zip + vecnormalize.pkl + args.yml) or a "
                           "paper-layout run folder (<iteration>/latest.zip + latest_stats.pth, best.zip + "
                           "best_stats.pth)", names=("--path", "--policy_path"), type=non_empty)
    stats_path: str | None = flag(None, "VecNormalize statistics of a model zip (vecnormalize.pkl, the paper's "
                                        "*_stats.pth)", type=non_empty)
    env: str | None = flag(None, "env id the policy acts in (default: an rl-zoo3 folder's args.yml)", type=non_empty)
    run_id: str | None = flag(None, "id of the new run (default: a new random id)", type=name)
    sweep_id: str | None = flag(None, "record the run as part of this sweep, so evaluate.py --sweep_id takes it",
                                type=name)
    checkpoints_dir: Path = flag(Path("checkpoints"), "the run store (train.py's --save_dir)", aliases=("--save_dir",))

    def __post_init__(self):
        if not self.path:
            raise UserError("pass --path=MODEL.zip (or an rl-zoo3 folder, or a paper-layout run folder)")


PRESET_NAMES = ("quick", "paper")  # utils.jobs.reproduce.PRESETS: the sweep files of each


@dataclass(frozen=True)
class ReproduceSettings:
    """reproduce.py: the report that checks the paper's findings on evaluated sweeps, or a preset's whole study."""

    preset: str | None = flag(None, "run a whole study and report it (quick: HalfCheetah widths and depths + Car1D; "
                                    "paper: the paper's grid); a re-run continues where it stopped",
                              choices=PRESET_NAMES)
    sweep_id: list[str] = flag([], "build the report from these evaluated sweeps (ids as sweep.py or "
                                   "import_policy.py --sweep_id gave them): --sweep_id A B or --sweep_id=A "
                                   "--sweep_id=B", nargs="+", metavar="SWEEP_ID", type=name, repeatable=True)
    report_dir: Path = flag(Path("report"), "where REPORT.md, report.html, findings.json and figures/ go")
    checkpoints_dir: Path = flag(Path("checkpoints"), "the run store (train.py's --save_dir)", aliases=("--save_dir",))
    results_dir: Path = flag(Path("results"), "where evaluate.py wrote results/<sweep_id>/")
    randomized_data_dir: Path = flag(Path("randomized_data"), "random lines and trajectories (with --preset)")
    workers: int = flag(1, "runs trained and checkpoints evaluated at a time (with --preset)", type=int_in(1, 1024))
    wandb_mode: str | None = flag(None, "wandb mode of the training runs (with --preset; default: train.py's)",
                                  choices=WANDB_MODES)
    no_partitions: bool = flag(False, "skip the partition drawings (every checkpoint of one run per env)")
    quiet: bool = flag(False, "no progress bars")

    def __post_init__(self):
        if bool(self.preset) == bool(self.sweep_id):
            raise UserError("pass either --preset=quick|paper or --sweep_id SWEEP_ID [SWEEP_ID ...] (not both)")
