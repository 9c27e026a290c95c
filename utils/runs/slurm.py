"""SLURM array sharding: which contiguous share of a list of work items this array task takes."""
from __future__ import annotations

import os
from typing import Mapping, Sequence

from utils.errors import UserError


def slurm_shard(items: Sequence, environ: Mapping[str, str] | None = None) -> list:
    """This SLURM array task's contiguous chunk of `items` (all of them outside a SLURM array).

    SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN is the chunk index, SLURM_ARRAY_TASK_COUNT the number of chunks;
    chunk sizes differ by at most one, earlier chunks are the larger ones.
    """
    environ = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in environ:
        return list(items)
    try:
        count = int(environ.get("SLURM_ARRAY_TASK_COUNT", "1"))
        index = int(environ["SLURM_ARRAY_TASK_ID"]) - int(environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    except ValueError:
        raise UserError("SLURM_ARRAY_TASK_ID/COUNT/MIN must be whole numbers; run inside a SLURM array job") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"SLURM array task {index} is outside 0..{count - 1}; check SLURM_ARRAY_TASK_MIN/COUNT")
    base, extra = divmod(len(items), count)
    start = index * base + min(index, extra)
    return list(items[start:start + base + (1 if index < extra else 0)])
