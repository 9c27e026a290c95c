"""reproduce.py's library: the report that checks the paper's five findings on evaluated sweeps, and the presets.

Report (docs/design.md, "The report"): from `<results_dir>/<sweep_id>/<run_id>/{summary.json, history.csv}` of
one or more sweeps (runs trained here or imported with import_policy.py --sweep_id), grouped by env, write into
the report folder
- findings.json: every number behind every verdict (utils.analysis.findings), the setup and the returns;
- figures/<env>/*.png and *.pdf (utils.pictures.report_figures);
- REPORT.md (figures as relative PNG links) and report.html (the same, PNGs inlined as data: URIs; opens offline).

Study (`run_study`, `--preset`): the preset's sweep files (PRESETS), each as a sweep of a fixed id
`<preset>_<file stem>` (the stem alone when it starts with the preset's name) in the run store, then for each sweep its random data (randomized_metric_helper's library)
and its evaluation with random lines and trajectories (evaluate's library), then the report of all of them.
Re-running continues where it stopped: a sweep that exists is resumed (finished runs are skipped), random data
that exist are kept, evaluated checkpoints are not evaluated again.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import platform
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

from utils.analysis.findings import Run, all_findings, architectures, make_runs, returns_reached
from utils.analysis.history import read_sweep_results
from utils.analysis.sources import local_sweep_runs
from utils.errors import RunFailed, UserError
from utils.runs.io import json_text, write_text_if_changed
from utils.runs.store import check_creatable_dir, check_writable_dir
from utils.settings import ReproduceSettings

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Preset:
    """A study: the sweep files it trains (paths relative to the repository) and what it is for."""

    sweep_files: tuple[str, ...]
    about: str


PRESETS = {
    "quick": Preset(("sweeps/quick_halfcheetah_widths.yaml", "sweeps/quick_halfcheetah_depths.yaml",
                     "sweeps/car1d_widths.yaml"),
                    "HalfCheetah-v5, one hidden layer of 8/16/32 neurons and 32 neurons as 1x32, 2x16, 4x8, "
                    "3 seeds, 200k steps each; plus the Car1D width grid"),
    "paper": Preset(tuple(f"sweeps/{name}.yaml" for name in ("halfcheetah", "hopper", "walker2d", "ant", "swimmer")),
                    "the paper's grid: five MuJoCo tasks, depth 1-4 x 32/64/96/128 neurons x 5 seeds, 1M steps"),
}

DIFFERENCES = (
    "Environments are gymnasium's maintained MuJoCo -v5 versions (the paper used mujoco-py -v2/-v3 ids; legacy ids "
    "are mapped to -v5, and observation sizes can differ, e.g. Ant-v5 observes 105 numbers where Ant-v2 had 111).",
    "PPO is this project's implementation (Stable-Baselines3's defaults, separate ReLU policy and value MLPs, "
    "float64 numpy updates on the CPU), not the paper's Stable-Baselines3 run; returns need not match theirs.",
    "The fixed trajectory is one deterministic episode of best.pt (the highest in-training eval return); start "
    "values are the first evaluated checkpoint (iteration 0, the initial policy), end values the last one.",
    "Budgets, seeds and architectures are those listed under Setup, which may be smaller than the paper's grid.",
)


# ----------------------------------------------------------------------------------------------------------------
# Plan: which runs, checked before anything is written
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportPlan:
    settings: ReproduceSettings
    runs_by_env: dict[str, list[Run]]                 # env id -> evaluated runs (all the sweeps', merged)
    run_infos: dict[str, dict] = field(default_factory=dict)  # run id -> run.json, for runs in the run store

    @property
    def report_dir(self) -> Path:
        return Path(self.settings.report_dir)


def evaluate_command(settings: ReproduceSettings, sweep_id: str) -> str:
    return (f"python randomized_metric_helper.py --sweep_id={sweep_id} --checkpoints_dir={settings.checkpoints_dir} "
            f"&& python evaluate.py --sweep_id={sweep_id} --checkpoints_dir={settings.checkpoints_dir} "
            f"--results_dir={settings.results_dir} --evaluate_random_trajectories --evaluate_random_lines")


def plan_report(settings: ReproduceSettings) -> ReportPlan:
    """Read every sweep's results (and the run store's run.json of its runs) and check that every run is evaluated;
    writes nothing."""
    if settings.preset is not None:
        raise ValueError("plan_report builds the report of given sweeps; run_study runs a preset")
    check_creatable_dir(Path(settings.report_dir), "--report_dir")
    runs, infos = [], {}
    for sweep_id in settings.sweep_id:
        stored = local_sweep_runs(settings.checkpoints_dir, sweep_id) if Path(settings.checkpoints_dir).is_dir() else []
        summaries, histories = read_sweep_results(Path(settings.results_dir) / sweep_id)
        evaluated = {s["run_id"] for s in summaries if histories.get(s["run_id"])}
        if not stored and not summaries:
            raise UserError(f"sweep '{sweep_id}' has no runs in {settings.checkpoints_dir} and no results in "
                            f"{Path(settings.results_dir) / sweep_id}; pass the id sweep.py or import_policy.py "
                            f"--sweep_id gave (python runs.py --checkpoints_dir={settings.checkpoints_dir} lists them)")
        missing = sorted({r.run_id for r in stored} - evaluated) + sorted(
            s["run_id"] for s in summaries if s["run_id"] not in evaluated)
        if missing:
            shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise UserError(f"{len(missing)} run(s) of sweep '{sweep_id}' have no evaluation in "
                            f"{Path(settings.results_dir) / sweep_id} ({shown}); run {evaluate_command(settings, sweep_id)}")
        infos.update({r.run_id: r.info for r in stored})
        runs += make_runs(summaries, histories)
    seen = [r.summary["run_id"] for r in runs]
    twice = sorted({i for i in seen if seen.count(i) > 1})
    if twice:
        raise UserError(f"run(s) {', '.join(twice)} are in more than one of the sweeps given; pass each sweep once")
    by_env: dict[str, list[Run]] = {}
    for run in runs:  # mixed envs are reported side by side, one section each: a finding is judged per env
        by_env.setdefault(run.summary.get("env_id") or "unknown env", []).append(run)
    return ReportPlan(settings, dict(sorted(by_env.items())), infos)


# ----------------------------------------------------------------------------------------------------------------
# Setup: what the runs were
# ----------------------------------------------------------------------------------------------------------------
def machine() -> dict:
    """This machine, where the report was built (the runs' own machines are not recorded)."""
    return {"platform": platform.platform(), "python": platform.python_version(), "processor": platform.processor()
            or platform.machine(), "cpus": os.cpu_count()}


def _distinct(values) -> list:
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


def env_setup(runs: Sequence[Run], infos: dict[str, dict]) -> dict:
    """Envs as requested and resolved, budgets, seeds, architectures, sweeps and package versions of the runs."""
    known = [infos[r.summary["run_id"]] for r in runs if r.summary["run_id"] in infos]
    configs = [i.get("config", {}) for i in known]
    return {"env_id": _distinct(r.summary.get("env_id") for r in runs),
            "env_requested": _distinct(i.get("env_requested") for i in known if i.get("env_requested")),
            "sweeps": _distinct(r.summary.get("sweep_id") for r in runs),
            "sources": _distinct(r.summary.get("source") for r in runs),
            "architectures": [arch for arch, _ in architectures(runs)],
            "seeds": sorted(_distinct(r.summary.get("seed") for r in runs), key=lambda s: (s is None, s)),
            "runs": len(runs),
            "total_timesteps": _distinct(c.get("total_timesteps") for c in configs if "total_timesteps" in c),
            "final_timesteps": _distinct(r.rows[-1]["timesteps"] for r in runs if r.rows),
            "checkpoints_evaluated": _distinct(len(r.rows) for r in runs),
            "packages": _distinct(i.get("packages") for i in known if i.get("packages")),
            "runs_without_run_json": sorted(r.summary["run_id"] for r in runs if r.summary["run_id"] not in infos)}


# ----------------------------------------------------------------------------------------------------------------
# The report: findings.json, figures, REPORT.md, report.html
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportResult:
    report_dir: Path
    files: tuple[Path, ...]
    verdicts: dict[str, list[str]]  # env id -> the five verdicts


def slug(env_id: str) -> str:
    """A folder name for an env id (envs:Car1DEnv-v1 -> envs_Car1DEnv-v1)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id).strip("._") or "env"


def partition_drawing(plan: ReportPlan, runs: Sequence[Run], folder: Path) -> tuple[dict, str]:
    """({"run_id", "sheet", "animation"}, "") after drawing the partition of every checkpoint of the env's run with
    the highest best eval return that is in the run store (visualize_hd.py --run_id=RUN --all_checkpoints: the
    state space of a 2-D env, else a plane through three states of its best policy), or ({}, why not)."""
    from utils.jobs.visualize import plan_job, run_job
    from utils.settings import VisualizeSettings

    if plan.settings.no_partitions:
        return {}, "not drawn (--no_partitions)"
    stored = [r for r in runs if r.summary["run_id"] in plan.run_infos]
    if not stored:
        return {}, "not drawn: none of these runs is in the run store (--checkpoints_dir)"
    best = max(stored, key=lambda r: (_return_key(r.summary.get("best_eval_return")), r.summary["run_id"]))
    settings = VisualizeSettings(run_id=best.summary["run_id"], checkpoints_dir=Path(plan.settings.checkpoints_dir),
                                 all_checkpoints=True, save_path=folder, quiet=True, dpi=120)
    try:
        paths = run_job(plan_job(settings)).paths
    except UserError as err:  # e.g. an imported run with best.pt only: the report goes on without the drawing
        return {}, f"not drawn for run {best.summary['run_id']}: {err}"
    sheet = next(p for p in paths if p.suffix == ".png")
    animation = next((p for p in paths if p.suffix == ".gif"), None)
    return {"run_id": best.summary["run_id"], "sheet": sheet, "animation": animation}, ""


def _return_key(value) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf


def build_report(plan: ReportPlan) -> ReportResult:
    """Write findings.json, the figures, REPORT.md and report.html into the report folder; returns what it wrote."""
    from utils.pictures.metric_plots import write_figures
    from utils.pictures.report_figures import report_figures

    out = check_writable_dir(plan.report_dir, "--report_dir")
    envs, files, verdicts = {}, [], {}
    for env_id, runs in plan.runs_by_env.items():
        findings = all_findings(runs)
        verdicts[env_id] = [f["verdict"] for f in findings]
        summaries = [r.summary for r in runs]
        histories = {r.summary["run_id"]: list(r.rows) for r in runs}
        figures = report_figures(summaries, histories)
        folder = out / "figures" / slug(env_id)
        pngs = write_figures(figures, folder, "png")
        files += pngs + write_figures(figures, folder, "pdf")
        drawn, why_not = partition_drawing(plan, runs, folder / "partition")
        partition = {"note": why_not} if not drawn else {
            "run_id": drawn["run_id"], "sheet": str(drawn["sheet"].relative_to(out)),
            "animation": str(drawn["animation"].relative_to(out)) if drawn["animation"] else None}
        files += [p for p in (drawn.get("sheet"), drawn.get("animation")) if p is not None]
        envs[env_id] = {"setup": env_setup(runs, plan.run_infos), "returns": returns_reached(runs),
                        "findings": findings, "partition": partition,
                        "figures": {stem: str(p.relative_to(out)) for stem, p in zip(figures, pngs)}}
    record = {"sweeps": list(plan.settings.sweep_id), "machine": machine(), "differences_from_paper": list(DIFFERENCES),
              "envs": envs}
    findings_json = out / "findings.json"
    write_text_if_changed(findings_json, json_text(_finite(record)))
    blocks = report_blocks(record)
    md, page = out / "REPORT.md", out / "report.html"
    write_text_if_changed(md, render_markdown(blocks))
    write_text_if_changed(page, render_html(blocks, out))
    return ReportResult(out, (findings_json, md, page, *files), verdicts)


def _finite(value):
    """NaN and infinities as null: findings.json is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# A report is a list of blocks, rendered once as Markdown and once as HTML, so both say the same.
def _num(v) -> str:
    return "–" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def _spread_text(s: dict) -> str:
    if s.get("mean") is None:
        return "–"
    return f"{_num(s['mean'])} [{_num(s['min'])}, {_num(s['max'])}]"


FIGURE_OF = {1: ("report_density",), 2: ("report_trajectory_length",), 3: ("report_density",),
             4: ("report_density_vs_size",), 5: ("report_random_trajectories", "report_random_lines")}


def report_blocks(record: dict) -> list[tuple]:
    """The report as ("h", level, text) / ("p", text) / ("table", header, rows) / ("list", items) / ("img", alt, path)
    blocks."""
    b: list[tuple] = [("h", 1, "Reproduction report: Understanding the Evolution of Linear Regions in Deep RL"),
                      ("p", "Cohan, Kim, Rolnick, van de Panne (NeurIPS 2022), re-run with deep_rl_regions. Sweeps: "
                            + ", ".join(record["sweeps"]) + ". Spread over seeds is written mean [min, max]; "
                            "start = first evaluated checkpoint (the initial policy), end = last; every number is "
                            "in findings.json.")]
    summary_rows = [[env, *[f["verdict"] for f in e["findings"]]] for env, e in record["envs"].items()]
    b.append(("table", ["env", *[f"finding {k}" for k in range(1, 6)]], summary_rows))
    b.append(("h", 2, "What differs from the paper"))
    b.append(("list", record["differences_from_paper"]))
    m = record["machine"]
    b.append(("p", f"Report built on {m['platform']}, Python {m['python']}, {m['cpus']} CPUs ({m['processor']})."))
    for env, e in record["envs"].items():
        s = e["setup"]
        b.append(("h", 2, env))
        b.append(("h", 3, "Setup"))
        packages = "; ".join(", ".join(f"{k} {v}" for k, v in p.items()) for p in s["packages"]) or "not recorded"
        b.append(("table", ["item", "value"], [
            ["env (resolved)", ", ".join(map(str, s["env_id"]))],
            ["env (requested)", ", ".join(s["env_requested"]) or "not recorded"],
            ["sweeps", ", ".join(map(str, s["sweeps"]))], ["run sources", ", ".join(map(str, s["sources"]))],
            ["architectures", ", ".join(s["architectures"])], ["seeds", ", ".join(map(str, s["seeds"]))],
            ["runs", str(s["runs"])], ["budget (total_timesteps)", ", ".join(map(str, s["total_timesteps"])) or "–"],
            ["timesteps at the last checkpoint", ", ".join(map(str, s["final_timesteps"]))],
            ["checkpoints evaluated per run", ", ".join(map(str, s["checkpoints_evaluated"]))],
            ["packages", packages]]))
        b.append(("h", 3, "Returns reached (training eval return)"))
        b.append(("table", ["architecture", "seeds", "first checkpoint", "best", "final"],
                  [[r["architecture"], str(len(r["run_ids"])), _spread_text(r["first"]), _spread_text(r["best"]),
                    _spread_text(r["final"])] for r in e["returns"]]))
        for f in e["findings"]:
            b.append(("h", 3, f"Finding {f['number']}: {f['verdict']}"))
            b.append(("p", f["statement"]))
            b.append(("p", f"Verdict: **{f['verdict']}**. Criterion: {f['criterion']}."))
            b.append(_finding_table(f))
            if f["number"] == 4 and "comparison" in f:
                c = f["comparison"]
                b.append(("p", "Across architectures: " + ", ".join(
                    f"{k.replace('_', ' ')} {_num(v) if not isinstance(v, list) else ', '.join(v)}"
                    for k, v in c.items()) + "."))
            stems = [stem for stem in FIGURE_OF[f["number"]] if stem in e["figures"]]
            b += [("img", f"finding {f['number']}, {env}", e["figures"][stem]) for stem in stems]
            if not stems:
                b.append(("p", "No figure: the runs were evaluated without random lines and trajectories."))
        b.append(("h", 3, "Partition over training"))
        part = e["partition"]
        if "sheet" in part:
            b.append(("p", f"The exact linear regions of run {part['run_id']} (the highest best eval return of the "
                           f"runs in the run store) at its checkpoints, on the 2-D state space or on a plane through "
                           f"three states of its best policy (visualize_hd.py --all_checkpoints); the animation is "
                           f"{part['animation']}."))
            b.append(("img", f"partition over training, {env}", part["sheet"]))
        else:
            b.append(("p", f"Partition {part['note']}."))
    return b


def _finding_table(f: dict) -> tuple:
    if f["number"] == 5:
        return ("table", ["architecture", "seeds", "random / current", "random", "current", "fixed",
                          "regions per random line (origin) start → end", "verdict"],
                [[a["architecture"], str(len(a["run_ids"])), _spread_text(a["random_over_current"]),
                  _spread_text(a["random_per_length_end"]), _spread_text(a["current_per_length_end"]),
                  _spread_text(a["fixed_per_length_end"]),
                  f"{_spread_text(a['random_lines'][0]['start'])} → {_spread_text(a['random_lines'][0]['end'])}",
                  a["verdict"] + (f" ({a['how']})" if "how" in a else f" ({a['reason']})" if "reason" in a else "")]
                 for a in f["architectures"]])
    return ("table", ["architecture", "seeds", "start", "end", "end / start", "verdict"],
            [[a["architecture"], str(len(a["run_ids"])), _spread_text(a["start"]), _spread_text(a["end"]),
              _spread_text(a["ratio"]), a.get("verdict", "–") + (f" ({a['reason']})" if "reason" in a else "")]
             for a in f["architectures"]])


def render_markdown(blocks: Sequence[tuple]) -> str:
    lines = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "table":
            cell = lambda t: str(t).replace("|", "\\|")  # noqa: E731
            lines.append("| " + " | ".join(map(cell, block[1])) + " |")
            lines.append("|" + "---|" * len(block[1]))
            lines += ["| " + " | ".join(map(cell, row)) + " |" for row in block[2]]
            lines.append("")
        elif kind == "list":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "img":
            lines += [f"![{block[1]}]({block[2]})", ""]
    return "\n".join(lines)


CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.4}"
       "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;font-size:90%}"
       "img{max-width:100%;width:34em;display:block;margin:.5em 0}")


def render_html(blocks: Sequence[tuple], report_dir: Path) -> str:
    """The report as one HTML page; every image is the PNG's bytes inlined as a data: URI (no other files)."""
    def inline(text: str) -> str:
        return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))

    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Reproduction report</title>", f"<style>{CSS}</style></head><body>"]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            parts.append(f"<h{block[1]}>{html.escape(block[2])}</h{block[1]}>")
        elif kind == "p":
            parts.append(f"<p>{inline(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in block[1])
            body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>"
                           for row in block[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "list":
            parts.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "img":
            data = base64.b64encode((report_dir / block[2]).read_bytes()).decode("ascii")
            parts.append(f'<img alt="{html.escape(block[1])}" src="data:image/png;base64,{data}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def report(settings: ReproduceSettings, *, notify: Callable[[str], None] = lambda line: None,
           progress: bool = False) -> ReportResult:
    """The report of the given sweeps, or (--preset) of the preset's study after running it."""
    if settings.preset is not None:
        return run_study(settings, notify=notify, progress=progress)
    return build_report(plan_report(settings))


def preset_sweep_files(preset: str) -> list[Path]:
    """The preset's sweep files as paths in this checkout (or absolute paths as given)."""
    return [ROOT / f for f in PRESETS[preset].sweep_files]


# ----------------------------------------------------------------------------------------------------------------
# The study of a preset: sweeps -> random data -> evaluation -> report, skipping finished work
# ----------------------------------------------------------------------------------------------------------------
def preset_sweep_id(preset: str, sweep_file: str) -> str:
    """The fixed id a preset's sweep file trains under (quick_halfcheetah_widths, quick_car1d_widths), so a second
    run of the preset continues the same sweep."""
    stem = Path(sweep_file).stem
    return stem if stem.startswith(f"{preset}_") else f"{preset}_{stem}"


def train_sweep(sweep_file: Path, sweep_id: str, settings: ReproduceSettings,
                notify: Callable[[str], None], progress: bool) -> None:
    """Train what is left of the sweep (a new sweep of `sweep_id` from the file, else --resume of it); a failed,
    busy or interrupted run stops the study with the sweep's logs named (the other runs still ran)."""
    from utils.jobs.sweep import SWEEPS_DIR, open_sweep, run_sweep
    from utils.progress import progress_bar
    from utils.settings import SweepSettings

    exists = (Path(settings.checkpoints_dir) / SWEEPS_DIR / sweep_id / "sweep.json").is_file()
    sweep_settings = SweepSettings(file=None if exists else str(sweep_file), resume=sweep_id if exists else None,
                                   sweep_id=None if exists else sweep_id, save_dir=str(settings.checkpoints_dir),
                                   workers=settings.workers, wandb_mode=settings.wandb_mode, quiet=True)
    with open_sweep(sweep_settings) as record:
        with progress_bar(len(record.configs), f"train {sweep_id}", "run", enabled=progress) as bar:
            def on_update(outcome, counts):
                if outcome is not None:
                    bar.update(1)
            outcomes = run_sweep(record, sweep_settings, on_update)
    if any(o.status == "interrupted" for o in outcomes):
        raise KeyboardInterrupt
    trained = sum(o.status == "finished" for o in outcomes)
    notify(f"sweep {sweep_id}: {trained} run(s) trained, {sum(o.status == 'skipped' for o in outcomes)} already done")
    bad = [o for o in outcomes if o.status in ("failed", "busy")]
    if bad:
        logs = ", ".join(f"{o.run_id} ({o.status}, log {o.log_path})" for o in bad[:3])
        raise RunFailed(f"{len(bad)} run(s) of sweep {sweep_id} did not finish: {logs}; fix the cause and run the "
                        f"same reproduce.py command again (finished work is skipped)")


def make_random_data(sweep_id: str, settings: ReproduceSettings, notify: Callable[[str], None]) -> None:
    """The sweep's random lines and random-action trajectories, unless both files exist for each of its envs."""
    from utils.analysis.random_data import lines_path, trajectories_path
    from utils.jobs.randomize import write_random_data
    from utils.settings import RandomizeSettings

    data_dir = Path(settings.randomized_data_dir)
    envs = {r.info["env_id"] for r in local_sweep_runs(settings.checkpoints_dir, sweep_id)}
    if envs and all(lines_path(data_dir, sweep_id, e).is_file() and trajectories_path(data_dir, sweep_id, e).is_file()
                    for e in envs):
        return
    write_random_data(RandomizeSettings(sweep_id=sweep_id, randomized_data_dir=data_dir,
                                        checkpoints_dir=Path(settings.checkpoints_dir), wandb_mode="disabled"))
    notify(f"sweep {sweep_id}: random lines and trajectories written to {data_dir / sweep_id}")


def evaluate_sweep(sweep_id: str, settings: ReproduceSettings, notify: Callable[[str], None], progress: bool) -> None:
    """Evaluate every checkpoint of the sweep not evaluated yet, with random lines and trajectories (no wandb log)."""
    from utils.jobs.evaluate import evaluate, plan_evaluation
    from utils.settings import EvaluateSettings

    plan = plan_evaluation(EvaluateSettings(
        sweep_id=sweep_id, checkpoints_dir=Path(settings.checkpoints_dir), results_dir=Path(settings.results_dir),
        randomized_data_dir=Path(settings.randomized_data_dir), random_trajectories=True, random_lines=True,
        no_wandb_log=True, wandb_mode="disabled", workers=settings.workers, quiet=not progress))
    result = evaluate(plan, progress=progress, notify=notify)
    done = sum(r.evaluated for r in result.runs)
    notify(f"sweep {sweep_id}: {done} checkpoint(s) evaluated, {sum(r.skipped for r in result.runs)} already done")
    result.raise_for_unreadable()


def run_study(settings: ReproduceSettings, *, notify: Callable[[str], None] = lambda line: None,
              progress: bool = False) -> ReportResult:
    """Train, make random data for, and evaluate each sweep of the preset, then build the report of all of them."""
    files = preset_sweep_files(settings.preset)
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"the {settings.preset} preset's sweep file(s) {', '.join(missing)} are missing; restore "
                        f"them from the repository (git checkout -- sweeps/)")
    check_creatable_dir(Path(settings.report_dir), "--report_dir")
    sweep_ids = []
    for file in files:
        sweep_id = preset_sweep_id(settings.preset, file.name)
        train_sweep(file, sweep_id, settings, notify, progress)
        make_random_data(sweep_id, settings, notify)
        evaluate_sweep(sweep_id, settings, notify, progress)
        sweep_ids.append(sweep_id)
    return build_report(plan_report(replace(settings, preset=None, sweep_id=sweep_ids)))

