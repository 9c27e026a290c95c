"""Shared command-line helpers: a parser whose errors are one line, and flag types wandb agents can pass."""
from __future__ import annotations

import argparse
import os

import torch

from utils.errors import UserError


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UserError -> `error: ...`, exit code 2) instead of usage dumps."""

    def error(self, message: str):  # noqa: D401 (argparse API)
        raise UserError(f"{message}; see `python {self.prog} --help`")


def str2bool(value: str | bool) -> bool:
    """Accepts true/false spellings so wandb agents can pass `--flag=True`."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y", "on"):
        return True
    if text in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def add_bool_flag(parser: argparse.ArgumentParser, name: str, help: str) -> None:
    """`--name` alone means True; `--name=False` also works (as wandb agents write it)."""
    parser.add_argument(name, nargs="?", const=True, default=False, type=str2bool, help=help)


def positive_int(value: str) -> int:
    """A whole number >= 1; accepts 100000, 1e5 and 100000.0 (wandb agents may pass floats)."""
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (number >= 1 and number.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(number)


def non_negative_int(value: str) -> int:
    """A whole number >= 0."""
    return 0 if str(value).strip() in ("0", "0.0") else positive_int(value)


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and cgroups that set them)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def check_device(device: str) -> str:
    """Validate --device; cuda must actually be available."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device={device} but CUDA is not available on this machine; use --device=cpu")
        return device
    if device != "cpu":
        raise UserError(f"--device={device} is not supported; use --device=cpu or --device=cuda")
    return device
