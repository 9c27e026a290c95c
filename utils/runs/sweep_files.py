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
MAX_RUNS = 10**6  # the most configurations a random sweep draws (sweep.py --count has the same bound)


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
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except OSError as err:
        raise UserError(f"cannot read {path} ({err.strerror}); pass a readable YAML file") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise UserError(f"{path} is not valid YAML{where} ({problem}); fix the syntax there") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} must be a mapping with program, method and parameters keys")
    unknown_top = sorted(str(key) for key in set(raw) - _TOP_LEVEL)
    if unknown_top:
        raise UserError(f"{path}: unknown top-level key(s) {', '.join(unknown_top)}; "
                        f"valid keys are {', '.join(sorted(_TOP_LEVEL))}")
    run_cap = raw.get("run_cap", 10)
    if not (isinstance(run_cap, int) and not isinstance(run_cap, bool) and 1 <= run_cap <= MAX_RUNS):
        raise UserError(f"{path}: run_cap is {run_cap!r}; give it a whole number of runs from 1 to {MAX_RUNS}")
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
        if not isinstance(dist, str) or dist not in _DISTRIBUTIONS:
            raise UserError(f"{path}: parameter {name!r} has distribution {dist!r}; supported: "
                            f"{', '.join(sorted(_DISTRIBUTIONS))}")
        if dist not in ("constant", "categorical") and method == "grid":
            raise UserError(f"{path}: parameter {name!r} has a continuous distribution, which a grid cannot "
                            f"enumerate; use `method: random` or list `values`")
        if dist in ("uniform", "int_uniform", "q_uniform", "log_uniform_values"):
            _check_bounds(path, name, spec, dist)


def _check_bounds(path: Path, name: str, spec: dict, dist: str) -> None:
    """`min` < `max`, both finite numbers (whole numbers for int_uniform), `q` > 0, `min` > 0 for a log scale."""
    whole = dist == "int_uniform"
    low, high = (_number(spec.get(key), whole) for key in ("min", "max"))
    kind = "whole numbers" if whole else "numbers"
    if low is None or high is None or not low < high:
        raise UserError(f"{path}: parameter {name!r} needs `min` < `max`, both {kind}, for {dist} "
                        f"(it has min: {spec.get('min')!r}, max: {spec.get('max')!r})")
    if dist == "q_uniform" and "q" in spec and not ((q := _number(spec["q"], False)) is not None and q > 0):
        raise UserError(f"{path}: parameter {name!r} has q: {spec['q']!r}; q_uniform needs a number q > 0")
    if dist == "log_uniform_values" and low <= 0:
        raise UserError(f"{path}: parameter {name!r}: log_uniform_values needs min > 0")


def _number(value: Any, whole: bool) -> float | int | None:
    """A finite number from a YAML value (PyYAML reads 1e-4 without a dot as a string), None when it is not one."""
    if isinstance(value, bool):
        return None
    try:
        number = int(value) if whole and not isinstance(value, float) else float(value)
    except (TypeError, ValueError):
        return None
    if whole and isinstance(value, float) and not value.is_integer():
        return None
    return number if math.isfinite(number) else None


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
                config[name] = float(rng.uniform(_number(p["min"], False), _number(p["max"], False)))
            elif dist == "int_uniform":
                config[name] = int(rng.integers(_number(p["min"], True), _number(p["max"], True) + 1))
            elif dist == "q_uniform":
                q = _number(p.get("q", 1.0), False)
                config[name] = float(np.round(rng.uniform(_number(p["min"], False), _number(p["max"], False)) / q) * q)
            elif dist == "log_uniform_values":
                lo, hi = math.log(_number(p["min"], False)), math.log(_number(p["max"], False))
                config[name] = float(math.exp(rng.uniform(lo, hi)))
        configs.append(config)
    return configs


def config_to_args(config: dict) -> list[str]:
    """train.py arguments for one configuration, as `--key=value` (the form wandb agents pass)."""
    return [f"--{key}={value}" for key, value in config.items()]
