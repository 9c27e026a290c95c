"""wandb tracking that never crashes or prompts: online when logged in, else offline, or disabled on request."""
from __future__ import annotations

import logging
import netrc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

logger = logging.getLogger("deep_rl_regions")
MODES = ("online", "offline", "disabled")


def wandb_logged_in(environ: Mapping[str, str] = os.environ) -> bool:
    """True when an API key is available without prompting (WANDB_API_KEY or a netrc entry for the wandb host)."""
    if environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(environ.get("NETRC")).authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def choose_mode(requested: str | None, unobserve: bool = False,
                environ: Mapping[str, str] = os.environ) -> tuple[str, str | None]:
    """The wandb mode to use and a notice line when it differs from what was asked.

    Precedence: --wandb_mode, then --unobserve (the paper's flag for offline), then WANDB_MODE, then online if logged in
    (environment variables are read from `environ`).
    """
    env_mode = environ.get("WANDB_MODE", "").strip().lower()
    env_mode = {"dryrun": "offline", "run": "online"}.get(env_mode, env_mode)
    mode = requested or ("offline" if unobserve else None) or (env_mode if env_mode in MODES else None) or "online"
    if mode == "online" and not wandb_logged_in(environ):
        note = None if requested is None and not env_mode else "requested online, but "
        return "offline", f"notice: wandb: {note or ''}not logged in; logging offline (sync later with `wandb sync`)"
    return mode, None


@dataclass
class Tracker:
    """A wandb run, or nothing when disabled; every call is safe to make either way."""

    mode: str = "disabled"
    run: object | None = None
    notices: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str | None:
        return getattr(self.run, "id", None)

    @property
    def url(self) -> str | None:
        return getattr(self.run, "url", None) if self.mode == "online" else None

    def _safely(self, action, *args) -> None:
        """Run a wandb call; on any failure stop tracking with one logged notice (the run store has everything)."""
        if self.run is None:
            return
        try:
            action(*args)
        except Exception as err:  # a tracking hiccup must never stop training
            logger.warning("wandb stopped working (%s: %s); continuing without it", type(err).__name__, err)
            self.run, self.mode = None, "disabled"

    def log(self, metrics: dict, step: int | None = None) -> None:
        self._safely(lambda: self.run.log(metrics, step=step))

    def set_summary(self, values: dict) -> None:
        self._safely(lambda: self.run.summary.update(values))

    def log_checkpoint(self, path: Path, run_id: str, iteration: int) -> None:
        """Online only: the checkpoint becomes a version of the run-scoped artifact `checkpoints-<run_id>`."""
        if self.mode != "online":
            return

        def upload():
            import wandb
            artifact = wandb.Artifact(f"checkpoints-{run_id}", type="model", metadata={"iteration": iteration})
            artifact.add_file(str(path), name=f"{iteration:06d}.pt")
            self.run.log_artifact(artifact, aliases=[f"iteration-{iteration}", "latest"])

        self._safely(upload)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            try:
                self.run.finish(exit_code=exit_code)
            except Exception as err:  # tracking must never take down a finished run
                logger.warning("wandb finish failed: %s", err)
            self.run = None


def start_tracking(mode: str, *, run_id: str, run_dir: Path, config: dict, project: str,
                   entity: str | None, name: str | None = None, job_type: str = "train", group: str | None = None,
                   resume: bool = False) -> Tracker:
    """Start (or resume) the wandb run whose id is `run_id`; falls back to disabled with a notice on any failure."""
    if mode == "disabled":
        return Tracker("disabled")
    os.environ.setdefault("WANDB_SILENT", "true")
    # wandb validates WANDB_MODE itself and refuses to start on an empty or unknown value; `mode` already decided
    if os.environ.get("WANDB_MODE", "").strip().lower() not in (*MODES, "dryrun", "run"):
        os.environ.pop("WANDB_MODE", None)
    try:
        import wandb
        run = wandb.init(
            id=run_id, project=project, entity=entity or None, name=name, config=config,
            dir=str(run_dir), mode=mode, job_type=job_type, group=group, resume="allow" if resume else None,
            reinit="create_new",
            # a short init timeout: with a key but no network, fall back quickly instead of waiting 90 s
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True, init_timeout=20),
        )
        return Tracker(mode, run)
    except Exception as err:  # wandb problems never stop training
        reason = " ".join(str(err).split())[:120]  # one line, whatever wandb's message looks like
        return Tracker("disabled", None, [f"notice: wandb could not start ({type(err).__name__}: {reason}); "
                                          f"continuing without it, results are in {run_dir}"])
