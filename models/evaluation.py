"""In-training evaluation: a policy's deterministic returns over fixed-seed episodes, here or in a worker process.

An evaluation is described by an `EvaluationRequest` (the policy's mean network and the observation statistics of
the evaluated iteration, plus the seed), so it can run in this process (`evaluate_request`) or in an
`EvaluationWorker`: a background process with its own envs that evaluates iteration k while the trainer runs
iteration k + 1. Both run the same function on the same inputs, so their returns are bit-identical.

The worker speaks over its stdin / stdout pipes: each message is an 8-byte little-endian length and a body; a
request body is an .npz archive (read with allow_pickle=False), a reply is JSON (floats round-trip exactly,
NaN included). Nothing is pickled. It imports numpy, gymnasium and our envs, never torch, so it starts in a few
tenths of a second; it exits when its stdin closes, including when the trainer dies.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from envs.resolve import make_env
from models.mlp import NumpyLayers, stack_layers, stacked_numpy_mlp
from models.normalization import normalize_with

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# The worker's products are a few rows by tens of columns: BLAS threads cannot help them, and a second one would
# compete with the trainer for its core (the trainer caps its own BLAS threads: utils.jobs.train.limit_compute_threads).
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class EvaluationRequest:
    """One evaluation's inputs, copied out of the trainer at the evaluated iteration."""

    layers: list[tuple[np.ndarray, np.ndarray]]  # the policy's mean network: (W (out, in), b (out,)) float64, head last
    obs_mean: np.ndarray  # (obs_dim,) float64 observation statistics the policy sees its inputs through
    obs_var: np.ndarray   # (obs_dim,) float64
    obs_norm: bool        # False: observations go in raw (--obs_norm=off)
    seed: int             # episode k of the request resets with seed + k
    episodes: int         # how many episodes

    def split(self, tail: int) -> tuple["EvaluationRequest", "EvaluationRequest"]:
        """The first episodes - tail episodes, and the last `tail` ones (seeded as they are here): two requests
        whose returns, concatenated, are this one's bit for bit (each episode's return is its own; see
        evaluate_policy)."""
        head = self.episodes - tail
        return replace(self, episodes=head), replace(self, seed=self.seed + head, episodes=tail)


def evaluate_policy(policy_layers: NumpyLayers, env_list: list, normalize: Callable[[np.ndarray], np.ndarray],
                    seed: int) -> list[float]:
    """Raw returns of deterministic episodes (action = mean), one per env of `env_list` (episode k reset with
    seed + k), stepped in lockstep with one forward pass per step over all of them (finished ones' rows unused).

    The pass is the stacked one (models.mlp.stacked_numpy_mlp), so each episode's actions, states and return are
    bit-identical to that episode evaluated alone: a (k, in) matrix product would round differently from a
    single row's and make an episode's return depend on how many run beside it."""
    n_episodes = len(env_list)
    if n_episodes == 0:
        return []
    low, high = env_list[0].action_space.low, env_list[0].action_space.high
    layers = stack_layers([policy_layers] * n_episodes)
    obs = np.asarray([e.reset(seed=seed + k)[0] for k, e in enumerate(env_list)], dtype=np.float64)
    returns, active = np.zeros(n_episodes), np.ones(n_episodes, dtype=bool)
    while active.any():
        # finished episodes' rows are computed and left unused: cheaper than slicing the stacked weights
        actions = np.clip(stacked_numpy_mlp(layers, normalize(obs)), low, high)
        for k in np.flatnonzero(active):
            next_obs, reward, terminated, truncated, _ = env_list[k].step(actions[k])
            returns[k] += reward
            obs[k] = next_obs
            active[k] = not (terminated or truncated)
    return returns.tolist()


def evaluate_request(request: EvaluationRequest, env_list: list) -> list[float]:
    """The returns of `request`'s episodes, stepped on the first request.episodes envs of `env_list`."""
    def normalize(states: np.ndarray) -> np.ndarray:
        return normalize_with(states, request.obs_mean, request.obs_var, request.obs_norm)

    return evaluate_policy(request.layers, env_list[:request.episodes], normalize, request.seed)


# --------------------------------------------------------------------------------------------------------------
# The worker process
# --------------------------------------------------------------------------------------------------------------
class EvaluationWorker:
    """A background process owning `n_episodes` envs of `env_id`; one request in flight at a time.

    `submit` sends a request and returns at once; `collect` waits for its returns. If the worker cannot take a
    request or dies before answering, `collect` returns None and `usable` turns False: the caller evaluates the
    request itself (same function, same result) and stops using the worker.
    """

    def __init__(self, env_id: str, n_episodes: int):
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
        self.last_seconds = 0.0  # the worker's own wall seconds for the last evaluation it answered
        self._in_flight = 0      # episodes of the request it is working on (0: none)
        try:
            # cwd: a `models` or `envs` package where the user runs train.py must not shadow ours; its own session:
            # a Ctrl-C meant for the trainer does not interrupt it (it ends when its stdin closes)
            self._process: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "models.evaluation", env_id, str(n_episodes)], cwd=PROJECT_ROOT,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": path, **ONE_THREAD}, start_new_session=True)
        except OSError:  # no process to be had (limits, memory): evaluations stay in the trainer
            self._process = None
        self.usable = self._process is not None

    def submit(self, request: EvaluationRequest) -> None:
        if not self.usable:
            return
        try:
            _write_message(self._process.stdin, request_to_bytes(request))
            self._in_flight = request.episodes
        except OSError:  # the worker is gone (BrokenPipeError) or its pipe failed
            self.usable = False

    def collect(self) -> list[float] | None:
        """The returns of the request in flight, or None when the worker failed (then it is not used again)."""
        if not (self.usable and self._in_flight):
            return None
        expected, self._in_flight = self._in_flight, 0
        try:
            reply = _read_message(self._process.stdout)
            answer = json.loads(reply) if reply is not None else {}
        except (OSError, ValueError):
            answer = {}
        returns = answer.get("returns")
        if not (isinstance(returns, list) and len(returns) == expected):
            self.usable = False  # died, or the evaluation raised there: the caller reproduces it here
            return None
        self.last_seconds = float(answer["seconds"])
        return [float(r) for r in returns]

    def close(self) -> None:
        if self._process is None:
            return
        try:
            self._process.stdin.close()
        except OSError:
            pass
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:  # still stepping a long evaluation nobody will read
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
        self.usable = False


def request_to_bytes(request: EvaluationRequest) -> bytes:
    arrays = {"obs_mean": request.obs_mean, "obs_var": request.obs_var,
              "meta": np.array([request.seed, int(request.obs_norm), len(request.layers), request.episodes],
                               dtype=np.int64)}
    for i, (W, b) in enumerate(request.layers):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def request_from_bytes(data: bytes) -> EvaluationRequest:
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        seed, obs_norm, n_layers, episodes = (int(v) for v in archive["meta"])
        layers = [(archive[f"W{i}"], archive[f"b{i}"]) for i in range(n_layers)]
        return EvaluationRequest(layers=layers, obs_mean=archive["obs_mean"], obs_var=archive["obs_var"],
                                 obs_norm=bool(obs_norm), seed=seed, episodes=episodes)


def _write_message(stream: BinaryIO, body: bytes) -> None:
    stream.write(len(body).to_bytes(8, "little") + body)
    stream.flush()


def _read_message(stream: BinaryIO) -> bytes | None:
    """The next message's body, or None at the end of the stream (a torn message counts as the end)."""
    header = stream.read(8)
    if len(header) < 8:
        return None
    size = int.from_bytes(header, "little")
    body = stream.read(size)
    return body if len(body) == size else None


def _serve(env_id: str, n_episodes: int) -> None:
    """The worker's loop: answer requests from stdin on stdout until stdin closes."""
    replies = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything a library prints goes where stderr goes, never into the replies
    requests = sys.stdin.buffer
    env_list = [make_env(env_id) for _ in range(n_episodes)]
    while (body := _read_message(requests)) is not None:
        start = time.perf_counter()
        try:
            answer = {"returns": evaluate_request(request_from_bytes(body), env_list),
                      "seconds": time.perf_counter() - start}
        except Exception as err:  # noqa: BLE001 - reported; the trainer re-runs the request itself and sees it
            answer = {"error": f"{type(err).__name__}: {err}"}
        _write_message(replies, json.dumps(answer).encode())


if __name__ == "__main__":
    try:
        _serve(sys.argv[1], int(sys.argv[2]))
    except (KeyboardInterrupt, BrokenPipeError):  # the trainer went away mid-request
        sys.exit(1)
