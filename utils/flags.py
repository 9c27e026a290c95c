"""Command-line flags generated from settings dataclasses, with one-line errors and the value types wandb agents pass.

A settings field declares its flag with ``flag(default, help, ...)``; ``build_parser`` turns every field of a
settings dataclass into one argparse argument (name ``--<field>`` unless ``names`` says otherwise, plus aliases),
and ``parse_settings`` returns the frozen dataclass. The dataclass is then the one source of each flag's name,
default, help and validation (utils/settings.py).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

from utils.errors import UserError

S = TypeVar("S")


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (UserError -> `error: ...`, exit code 2) instead of usage dumps."""

    def error(self, message: str):  # noqa: D401 (argparse API)
        raise UserError(f"{message}; see `python {self.prog} --help`")


class _HelpWithDefaults(argparse.HelpFormatter):
    """--help shows each flag's default, except where there is none to show (None, off switches) or the help
    text already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS)) or "default" in text:
            return text
        default = ",".join(map(str, action.default)) if isinstance(action.default, (list, tuple)) else action.default
        return f"{text} (default: {default})"


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


def int_in(low: int, high: int) -> Callable[[str], int]:
    """The type of a whole-number flag within [low, high] (bounds the code below can take: numpy seeds, sizes that
    fit in memory); accepts 100000, 1e5 and 100000.0 as wandb agents write them."""
    def parse(value: str) -> int:
        try:
            number = float(value) if value.isascii() else float("nan")  # float() also reads non-ASCII digits
        except (ValueError, OverflowError):
            number = float("nan")
        if not (math.isfinite(number) and number.is_integer() and low <= number <= high):
            wanted = f"a positive whole number up to {high}" if low == 1 else f"a whole number from {low} to {high}"
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value!r}")
        return int(number)
    parse.bounds, parse.whole = (low, high), True
    return parse


def float_in(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    """The type of a finite float flag within [low, high] ((low, high] with low_open)."""
    def parse(value: str) -> float:
        try:
            number = float(value) if value.isascii() else float("nan")  # float() also reads non-ASCII digits
        except ValueError:
            number = float("nan")
        if not (math.isfinite(number) and (number > low if low_open else number >= low) and number <= high):
            wanted = (f"a positive finite number up to {high:g}" if low_open and low == 0 else
                      f"a finite number in {'(' if low_open else '['}{low:g}, {high:g}]")
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value!r}")
        return number
    parse.bounds, parse.whole = (low, high), False
    return parse


NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


NAME_RULE = "use 1-100 letters, digits, '_', '-' or '.', starting with a letter or digit (a path is not an id)"


def is_name(value: str) -> bool:
    """Whether `value` is a valid run or sweep id (also for ids that do not come from a flag: wandb's, the API's)."""
    return bool(NAME_PATTERN.match(value))


def name(value: str) -> str:
    """The type of an id flag (run, sweep): letters, digits, '_', '-', '.', at most 100, never a path."""
    if not is_name(value):
        raise argparse.ArgumentTypeError(f"{value!r} is not an id: {NAME_RULE}")
    return value


def non_empty(value: str) -> str:
    """The type of a path flag: any non-empty text (an empty value usually means an unset shell variable)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected a non-empty value (an unset shell variable?)")
    return value


def non_empty_path(value: str) -> Path:
    return Path(non_empty(value))


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


# ---------------------------------------------------------------------------------------------------------------
# Settings dataclasses -> argparse
# ---------------------------------------------------------------------------------------------------------------
def flag(default: Any, help: str, *, names: tuple[str, ...] = (), aliases: tuple[str, ...] = (),
         type: Callable[[str], Any] | None = None, choices: tuple | None = None, metavar: str | None = None,
         nargs: str | None = None, positional: bool = False, repeatable: bool = False) -> Any:
    """A settings field that is also a command-line flag.

    names: the flag's spellings when they differ from ``--<field name>``; aliases: extra spellings kept working
    (e.g. the paper's); type: converts the command-line text (default: from the field's annotation); a type may
    raise UserError for a message of its own, or argparse.ArgumentTypeError for argparse's "argument --x: ...";
    repeatable (with nargs="+"): `--x a --x=b` gives [a, b] instead of keeping only the last.
    """
    kwargs = {"default_factory": lambda: list(default)} if isinstance(default, list) else {"default": default}
    return dataclasses.field(**kwargs, metadata={
        "help": help, "names": names, "aliases": aliases, "type": type, "choices": choices, "metavar": metavar,
        "nargs": nargs, "positional": positional, "repeatable": repeatable})


def _base_type(annotation: Any) -> Any:
    """int for `int`, `int | None` and 'int | None'; list for list[...]."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else str
    return typing.get_origin(annotation) or annotation


def flag_names(settings_cls: type) -> dict[str, str]:
    """{every accepted spelling without dashes (names and aliases): field name} of a settings dataclass."""
    out = {}
    for f in dataclasses.fields(settings_cls):
        meta = f.metadata
        for name in (meta.get("names") or (f"--{f.name}",)) + tuple(meta.get("aliases", ())):
            out[name.lstrip("-")] = f.name
    return out


def build_parser(settings_cls: type, prog: str, description: str, *, defaults: bool = True) -> Parser:
    """An argparse parser with one argument per field of `settings_cls` (a dataclass whose fields use `flag`);
    with defaults=False, flags not given are left out of the parsed namespace instead of getting their default."""
    parser = Parser(prog=prog, description=description, formatter_class=_HelpWithDefaults)
    hints = typing.get_type_hints(settings_cls)
    for f in dataclasses.fields(settings_cls):
        meta = f.metadata
        if "help" not in meta:
            continue  # not a command-line setting
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        base = _base_type(hints[f.name])
        kwargs: dict[str, Any] = {"help": meta["help"], "default": default if defaults else argparse.SUPPRESS}
        if meta["choices"]:
            kwargs["choices"] = meta["choices"]
        if meta["metavar"]:
            kwargs["metavar"] = meta["metavar"]
        if base is bool:
            # `--flag` alone means True; `--flag=False` also works (as wandb agents write it).
            kwargs.update(nargs="?", const=True, type=str2bool)
        else:
            kwargs["type"] = meta["type"] or (non_empty_path if base is Path else base if base in (int, float) else str)
            if meta["nargs"]:
                kwargs["nargs"] = meta["nargs"]
            if meta.get("repeatable"):
                kwargs["action"] = "extend"
        if meta["positional"]:
            kwargs.setdefault("nargs", "?")
            parser.add_argument(f.name, **kwargs)
        else:
            names = (meta["names"] or (f"--{f.name}",)) + tuple(meta["aliases"])
            parser.add_argument(*names, dest=f.name, **kwargs)
    return parser


def parse_settings(settings_cls: type[S], argv: list[str] | None, prog: str, description: str) -> S:
    """Parse argv into a frozen settings dataclass; bad values and bad combinations raise UserError."""
    namespace = build_parser(settings_cls, prog, description).parse_args(argv)
    return settings_cls(**vars(namespace))


def given_flags(settings_cls: type, argv: list[str] | None) -> frozenset[str]:
    """Field names of the flags spelled out in `argv` (None: sys.argv), whatever their value, so that `--seed=0`
    can be told apart from no --seed at all. Call it after parse_settings accepted the same argv."""
    namespace, _ = build_parser(settings_cls, "", "", defaults=False).parse_known_args(argv)
    return frozenset(vars(namespace))
