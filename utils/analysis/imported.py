"""Policies from Stable-Baselines3 files as runs of our run store (docs/design.md, "Policies from
Stable-Baselines3").

Three sources are read (models.sb3 reads the files themselves, safely):
- an SB3 model zip, with an optional VecNormalize file: one checkpoint, iteration 0, which is also best.pt;
- an rl-zoo3 folder: its model zip (`<env>.zip`, else the only zip, else best_model.zip), `vecnormalize.pkl`
  beside it or in its `<env>/` subfolder, and the env id from `args.yml` / `config.yml` (read with a SafeLoader
  that also reads the OrderedDict tag rl-zoo3 writes, as a plain mapping);
- a run of the paper's code: `<dir>/<project>_<run id>/<iteration>/latest.zip + latest_stats.pth` and
  `best.zip + best_stats.pth` beside the iteration folders. Iterations are the folder names, in numeric order;
  a folder whose name is not a whole number, or without latest.zip / latest_stats.pth, is skipped with a notice.

`write_imported_run` turns the loaded source into a run folder: run.json (status finished, `source` saying where
it came from), checkpoints/NNNNNN.pt in our safe format (models.checkpoint.imported_checkpoint_payload) and
best.pt. Everything is read and checked before the first write.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from envs.resolve import make_env, resolve_env_id
from models.checkpoint import LoadedPolicy, imported_checkpoint_payload, save_checkpoint
from models.sb3 import is_sb3_zip, load_statistics_file, read_sb3_policy
from utils.errors import UserError
from utils.runs.io import write_json_atomic
from utils.runs.store import RunPaths, now_iso, package_versions

PAPER_CACHE = ".paper_cache"  # under the checkpoints dir: paper-layout runs imported for evaluate.py
IMPORT_COMPLETE = ".import_complete"  # written last: the fingerprint of the files a cached import came from


@dataclass(frozen=True)
class ImportSource:
    """Policies read from SB3 files, ready to be written as a run: (iteration, policy) oldest first, and best."""

    kind: str                                   # "sb3-model", "rl-zoo3" or "paper-run"
    path: Path
    checkpoints: tuple[tuple[int, LoadedPolicy], ...]
    best: LoadedPolicy
    files: tuple[Path, ...]                     # every file read, for the record and the cache fingerprint
    env_hint: str | None = None                 # the env id the source names (rl-zoo3's args.yml), if any

    def fingerprint(self) -> str:
        """sha256 over the files' paths, sizes and modification times: a changed source is imported again."""
        h = hashlib.sha256()
        for f in self.files:
            st = f.stat()
            h.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()


def _policy(model: Path, stats: Path | None, iteration: int = 0) -> LoadedPolicy:
    policy = read_sb3_policy(model, iteration=iteration)
    return policy.with_statistics(load_statistics_file(stats)) if stats is not None else policy


# ----------------------------------------------------------------------------------------------------------------
# The paper's run layout
# ----------------------------------------------------------------------------------------------------------------
def paper_run_dir(checkpoints_dir: Path, project: str, run_id: str) -> Path | None:
    """<checkpoints_dir>/<project>_<run_id>/ when it is a folder (the paper's layout), else None."""
    root = Path(checkpoints_dir) / f"{project}_{run_id}"
    return root if root.is_dir() else None


def is_paper_run(root: Path) -> bool:
    """A folder laid out by the paper's code: best.zip, or an iteration folder with latest.zip."""
    return (root / "best.zip").is_file() or any(p.is_dir() and (p / "latest.zip").exists() for p in root.iterdir())


def read_paper_run(root: Path, notify: Callable[[str], None] = lambda line: None) -> ImportSource:
    """Every iteration of a paper-layout run (numeric order) and its best policy; unusable iteration folders are
    skipped with a notice, a run without best.zip / best_stats.pth or without any iteration is a UserError."""
    root = Path(root)
    if not (root / "best.zip").is_file():
        raise UserError(f"{root} has no best.zip, so it is not a run of the paper's code (or it is incomplete); "
                        f"pass a folder holding best.zip, best_stats.pth and <iteration>/latest.zip folders")
    if not (root / "best_stats.pth").is_file():
        raise UserError(f"{root} has best.zip but no best_stats.pth (its VecNormalize statistics); restore it from "
                        f"the run's files")
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if not re.fullmatch(r"\d{1,9}", folder.name):
            notify(f"notice: {folder} is not an iteration folder (its name is not a whole number); skipped")
            continue
        model, stats = folder / "latest.zip", folder / "latest_stats.pth"
        if not model.is_file() or not stats.is_file():
            notify(f"notice: iteration folder {folder} has no latest.zip and latest_stats.pth; skipped")
            continue
        found.append((int(folder.name), model, stats))
    if not found:
        raise UserError(f"{root} has no iteration folder with latest.zip and latest_stats.pth; pass a run of the "
                        f"paper's code that saved checkpoints")
    found.sort()
    checkpoints = tuple((it, _policy(model, stats, it)) for it, model, stats in found)
    best = _policy(root / "best.zip", root / "best_stats.pth", found[-1][0])
    files = (*(f for _, m, s in found for f in (m, s)), root / "best.zip", root / "best_stats.pth")
    _check_same_network(checkpoints, best, root)
    return ImportSource("paper-run", root, checkpoints, best, files)


def _check_same_network(checkpoints, best: LoadedPolicy, root: Path) -> None:
    for _, policy in checkpoints:
        if policy.widths != best.widths or policy.obs_dim != best.obs_dim or policy.act_dim != best.act_dim:
            raise UserError(f"{policy.path} has hidden layers {list(policy.widths)} on {policy.obs_dim} observations "
                            f"but {best.path} has {list(best.widths)} on {best.obs_dim}; the folders of {root} "
                            f"must be one run: move the foreign file out")


# ----------------------------------------------------------------------------------------------------------------
# rl-zoo3 folders and single models
# ----------------------------------------------------------------------------------------------------------------
class _ZooLoader(yaml.SafeLoader):
    """yaml.SafeLoader plus rl-zoo3's `!!python/object/apply:collections.OrderedDict` tag, read as the plain
    mapping it holds (nothing is imported or called)."""


def _ordered_dict_items(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    """The node is a sequence holding one sequence of [key, value] pairs (how yaml.dump writes an OrderedDict)."""
    value = loader.construct_sequence(node, deep=True)
    items = value[0] if value and isinstance(value[0], list) else []
    return {pair[0]: pair[1] for pair in items if isinstance(pair, list) and len(pair) == 2}


_ZooLoader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", _ordered_dict_items)


def _zoo_env(folder: Path) -> tuple[str | None, list[Path]]:
    """The env id rl-zoo3's args.yml (or config.yml) names, and the YAML files read."""
    read = []
    for yml in sorted(folder.glob("args.yml")) + sorted(folder.glob("*/args.yml")):
        read.append(yml)
        try:
            args = yaml.load(yml.read_text(encoding="utf-8"), Loader=_ZooLoader)
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise UserError(f"{yml} is not readable YAML ({type(err).__name__}); restore it or pass --env") from None
        if isinstance(args, dict) and isinstance(args.get("env"), str):
            return args["env"], read
    return None, read


def read_zoo_folder(folder: Path) -> ImportSource:
    """An rl-zoo3 folder: model zip + vecnormalize.pkl + args.yml (see the module docstring)."""
    env, yml = _zoo_env(folder)
    zips = sorted(p for p in folder.glob("*.zip") if p.is_file())
    named = [p for p in zips if env and p.stem == env]
    model = (named or (zips if len(zips) == 1 else []) or [p for p in zips if p.name == "best_model.zip"] or [None])[0]
    if model is None:
        listed = ", ".join(p.name for p in zips) or "none"
        raise UserError(f"cannot tell which model zip of {folder} to import (zips: {listed}); pass the model as "
                        f"--path=MODEL.zip and its --stats_path=vecnormalize.pkl")
    stats = sorted(folder.glob("vecnormalize.pkl")) + sorted(folder.glob("*/vecnormalize.pkl"))
    stats_path = stats[0] if stats else None
    policy = _policy(model, stats_path)
    files = (model, *([stats_path] if stats_path else []), *yml)
    return ImportSource("rl-zoo3", folder, ((0, policy),), policy, files, env)


def read_import_source(path: Path, stats_path: Path | None,
                       notify: Callable[[str], None] = lambda line: None) -> ImportSource:
    """What `path` holds: an SB3 model zip (+ `stats_path`), an rl-zoo3 folder or a paper-layout run folder."""
    path = Path(path)
    if path.is_dir():
        if stats_path is not None:
            raise UserError(f"--stats_path goes with a model zip; {path} is a folder whose statistics files are "
                            f"found in it: drop --stats_path")
        return read_paper_run(path, notify) if is_paper_run(path) else read_zoo_folder(path)
    if not path.exists():
        raise UserError(f"not found: {path}; pass an SB3 model zip, an rl-zoo3 folder or a paper-layout run folder")
    if not is_sb3_zip(path):
        read_sb3_policy(path)  # raises the UserError that says what the file is not
    policy = _policy(path, stats_path)
    return ImportSource("sb3-model", path, ((0, policy),), policy, (path, *([stats_path] if stats_path else [])))


# ----------------------------------------------------------------------------------------------------------------
# Env and writing
# ----------------------------------------------------------------------------------------------------------------
def check_env(source: ImportSource, env_id: str) -> tuple[str, int, int]:
    """(resolved id, obs dim, act dim) of `env_id`, checked against the policies' sizes."""
    resolved = resolve_env_id(env_id).resolved
    env = make_env(resolved)
    try:
        obs_dim = int(np.prod(env.observation_space.shape))
        act_dim = int(np.prod(env.action_space.shape)) if getattr(env.action_space, "shape", None) else 0
    finally:
        env.close()
    best = source.best
    if (best.obs_dim, best.act_dim) != (obs_dim, act_dim):
        raise UserError(f"{best.path} maps {best.obs_dim} observations to {best.act_dim} actions but {resolved} has "
                        f"{obs_dim} and {act_dim}; pass the --env the policy was trained on")
    return resolved, obs_dim, act_dim


def write_imported_run(run: RunPaths, source: ImportSource, requested_env: str, env_id: str, obs_dim: int,
                       act_dim: int, *, sweep_id: str | None = None) -> dict:
    """Write the source as the run `run` (its folder is created; checkpoints, best.pt, then run.json); returns
    run.json's contents."""
    config = {"env_id": env_id, "policy_dims": list(source.best.widths), "seed": None,
              "algorithm": source.best.config.get("algorithm")}
    run.checkpoints_dir.mkdir(parents=True, exist_ok=True)
    for iteration, policy in source.checkpoints:
        save_checkpoint(run.checkpoint(iteration), imported_checkpoint_payload(policy, iteration=iteration,
                                                                               config=config))
    save_checkpoint(run.best, imported_checkpoint_payload(source.best, iteration=source.best.iteration, config=config))
    info = {"run_id": run.run_id, "env_id": env_id, "requested_env_id": requested_env, "obs_dim": obs_dim,
            "act_dim": act_dim, "config": config, "status": "finished", "sweep_id": sweep_id,
            "source": {"kind": source.kind, "path": str(source.path.resolve()),
                       "files": [str(f.resolve()) for f in source.files]},
            "packages": package_versions(), "created": now_iso(), "updated": now_iso()}
    write_json_atomic(run.run_json, info)
    return info


def cached_paper_run(checkpoints_dir: Path, root: Path, run_id: str, env: str | None, *, sweep_id: str | None,
                     notify: Callable[[str], None] = lambda line: None) -> RunPaths:
    """The paper-layout run `root` imported into <checkpoints_dir>/.paper_cache/<run_id>/ (again only when its
    files changed), so evaluate.py reads it like a run of ours."""
    source = read_paper_run(root, notify)
    if not env:
        raise UserError(f"{root} is a run of the paper's code, which does not record its env; pass --env=ID "
                        f"(e.g. --env=HalfCheetah-v2 or --env=envs:Car1DEnv-v1)")
    env_id, obs_dim, act_dim = check_env(source, env)
    run = RunPaths(Path(checkpoints_dir) / PAPER_CACHE / run_id)
    stamp = {"fingerprint": source.fingerprint(), "env_id": env_id, "sweep_id": sweep_id}
    marker = run.root / IMPORT_COMPLETE
    try:
        if marker.is_file() and json.loads(marker.read_text()) == stamp and run.run_json.is_file():
            return run
    except (OSError, ValueError):
        pass  # a damaged marker: import again
    if run.root.exists():
        shutil.rmtree(run.root)  # our own cache, made from files that changed since
    write_imported_run(run, source, env, env_id, obs_dim, act_dim, sweep_id=sweep_id)
    write_json_atomic(marker, stamp)
    return run
