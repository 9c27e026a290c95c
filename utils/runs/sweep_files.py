"""Sweep files in the wandb sweep format: validation and expansion into train.py configurations.

Supported: `program`, `method` (grid or random), `parameters` with `value`, `values` or `distribution`
(constant, categorical, uniform, int_uniform, q_uniform, log_uniform_values), `command`, `metric`, `name`,
`description`. Anything wandb also accepts but a local sweep cannot honour (bayes, early_terminate) is refused
with a message saying so.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from utils.errors import UserError

_TOP_LEVEL = {"program", "method", "parameters", "command", "metric", "name", "description", "project", "entity",
              "early_terminate", "run_cap"}
_DISTRIBUTIONS = {"constant", "categorical", "uniform", "int_uniform", "q_uniform", "log_uniform_values"}
# Flags sweep.py sets itself for every run: a sweep file must not set them.
_RESERVED = {"save_dir", "run_id", "resume", "sweep_id"}


@dataclass
class SweepSpec:
    path: Path
    program: str
    method: str
    parameters: dict[str, dict]
    raw: dict


def load_sweep_file(path: Path, valid_flags: set[str]) -> SweepSpec:
    """Parse and validate a sweep file; every problem is a UserError naming the key (or line) and the fix."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}; pass a YAML file such as sweeps/car1d_widths.yaml")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path} is not valid YAML{where} ({problem}); fix the syntax there") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must be a mapping with program, method and parameters keys")
    unknown_top = sorted(set(raw) - _TOP_LEVEL)
    if unknown_top:
        raise UserError(f"{path}: unknown top-level key(s) {', '.join(unknown_top)}; "
                        f"valid keys are {', '.join(sorted(_TOP_LEVEL))}")
    program = str(raw.get("program", ""))
    if Path(program).name != "train.py":
        raise UserError(f"{path}: program is {program!r}; sweeps run train.py, so set `program: train.py`")
    method = str(raw.get("method", "grid"))
    if method not in ("grid", "random"):
        raise UserError(f"{path}: method {method!r} is not supported here; use `method: grid` or `method: random`")
    params = raw.get("parameters")
    if not isinstance(params, dict) or not params:
        raise UserError(f"{path}: `parameters` is missing or empty; add at least one parameter with value/values")
    for name, spec in params.items():
        _check_parameter(path, str(name), spec, valid_flags, method)
    return SweepSpec(path, program, method, {str(k): v for k, v in params.items()}, raw)


def _check_parameter(path: Path, name: str, spec: Any, valid_flags: set[str], method: str) -> None:
    if name in _RESERVED:
        raise UserError(f"{path}: parameter {name!r} is set by sweep.py for every run; remove it from the file")
    if name not in valid_flags:
        raise UserError(f"{path}: unknown parameter {name!r}; valid train.py flags are "
                        f"{', '.join(sorted(valid_flags - _RESERVED))}")
    if not isinstance(spec, dict) or not ({"value", "values", "distribution"} & set(spec)):
        raise UserError(f"{path}: parameter {name!r} needs `value:`, `values: [...]` or `distribution:`")
    if "values" in spec:
        if not isinstance(spec["values"], list) or not spec["values"]:
            raise UserError(f"{path}: parameter {name!r} has an empty `values` list, so the grid is empty; "
                            f"give it at least one value")
    dist = spec.get("distribution")
    if dist is not None:
        if dist not in _DISTRIBUTIONS:
            raise UserError(f"{path}: parameter {name!r} has distribution {dist!r}; supported: "
                            f"{', '.join(sorted(_DISTRIBUTIONS))}")
        if dist not in ("constant", "categorical") and method == "grid":
            raise UserError(f"{path}: parameter {name!r} has a continuous distribution, which a grid cannot "
                            f"enumerate; use `method: random` or list `values`")
        if dist in ("uniform", "int_uniform", "q_uniform", "log_uniform_values"):
            if "min" not in spec or "max" not in spec or not float(spec["min"]) < float(spec["max"]):
                raise UserError(f"{path}: parameter {name!r} needs numeric `min` < `max` for {dist}")
        if dist == "log_uniform_values" and float(spec["min"]) <= 0:
            raise UserError(f"{path}: parameter {name!r}: log_uniform_values needs min > 0")


def _choices(spec: dict) -> list:
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    return [spec["value"]] if spec.get("distribution") == "constant" else list(spec.get("values", []))


def expand_grid(spec: SweepSpec) -> list[dict]:
    """Every combination, parameters in file order, the last one varying fastest."""
    names = list(spec.parameters)
    choice_lists = [_choices(spec.parameters[n]) for n in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*choice_lists)]


def sample_random(spec: SweepSpec, count: int, seed: int) -> list[dict]:
    """`count` configurations drawn independently (seeded): values uniformly, distributions as wandb defines them."""
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(count):
        config = {}
        for name, p in spec.parameters.items():
            dist = p.get("distribution", "categorical" if "values" in p else "constant")
            if dist in ("categorical", "constant"):
                options = _choices(p)
                config[name] = options[int(rng.integers(len(options)))]
            elif dist == "uniform":
                config[name] = float(rng.uniform(float(p["min"]), float(p["max"])))
            elif dist == "int_uniform":
                config[name] = int(rng.integers(int(p["min"]), int(p["max"]) + 1))
            elif dist == "q_uniform":
                q = float(p.get("q", 1.0))
                config[name] = float(np.round(rng.uniform(float(p["min"]), float(p["max"])) / q) * q)
            elif dist == "log_uniform_values":
                lo, hi = math.log(float(p["min"])), math.log(float(p["max"]))
                config[name] = float(math.exp(rng.uniform(lo, hi)))
        configs.append(config)
    return configs


def config_to_args(config: dict) -> list[str]:
    """train.py arguments for one configuration, as `--key=value` (the form wandb agents pass)."""
    return [f"--{key}={value}" for key, value in config.items()]
