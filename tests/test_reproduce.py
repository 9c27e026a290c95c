"""reproduce.py's report: verdicts of the five findings on synthetic evaluated sweeps whose answers are known, the
files it writes (findings.json, REPORT.md, report.html with every figure inline), and its bad-input lines.

The synthetic results are written with the writers evaluate.py uses (history.write_history, history.run_summary,
history.write_sweep_csv), so the report reads exactly the format it reads in real use.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import reproduce
from tests.helpers import assert_user_error, run_cli
from utils.errors import UserError
from utils.analysis import findings as F
from utils.analysis.checkpoint_metrics import expected_columns
from utils.analysis.history import read_sweep_results, run_summary, write_history, write_sweep_csv
from utils.analysis.sources import ResolvedRun
from utils.runs.io import json_text, write_text_atomic
from utils.runs.store import RunPaths

COLUMNS = expected_columns(("deterministic",), random_trajectories=True, random_lines=True)
STEPS = 5  # checkpoints per run: iterations 0..4, 1000 timesteps apart

# Each series: column -> (start, end), linear in between; every seed scales it by (1 + 0.02 seed).
RISING = {"deterministic_fixed_normalized_density": (1.0, 1.6),        # x1.6: a moderate rise
          "deterministic_current_trajectory_length_normalized": (10.0, 60.0),  # x6: much longer
          "deterministic_current_normalized_density": (2.0, 0.6),     # falls
          "deterministic_current_transitions_per_length": (20.0, 6.0),
          "mean_normalized_num_transitions_random_trajectories": (40.0, 24.0),  # 4x the current one at the end
          "mean_num_regions_random_lines_origin": (30.0, 40.0),
          "eval_return": (-300.0, 900.0)}
FLAT = {k: (a, a) for k, (a, _) in RISING.items()} | {
    "mean_normalized_num_transitions_random_trajectories": (20.0, 20.0)}  # = the current trajectory's
OPPOSITE = {"deterministic_fixed_normalized_density": (1.0, 10.0),     # x10: more than moderate
            "deterministic_current_trajectory_length_normalized": (60.0, 10.0),  # shorter
            "deterministic_current_normalized_density": (0.6, 2.0),   # rises
            "deterministic_current_transitions_per_length": (6.0, 20.0),
            "mean_normalized_num_transitions_random_trajectories": (6.0, 21.0),  # about the same as the policy's
            "mean_num_regions_random_lines_origin": (30.0, 30.0),
            "eval_return": (-300.0, -310.0)}


def _rows(series: dict, seed: int, scale: float = 1.0, columns=COLUMNS) -> list[dict]:
    rows = []
    for i in range(STEPS):
        row = {c: 0 for c in columns}
        row.update(iteration=i, timesteps=1000 * i)
        for column, (start, end) in series.items():
            if column not in columns:
                continue
            value = (start + (end - start) * i / (STEPS - 1)) * (1 + 0.02 * seed)
            row[column] = value if column == "eval_return" else value * scale
        rows.append(row)
    return rows


def write_sweep(results: Path, sweep_id: str, archs: dict[str, dict], *, env: str = "HalfCheetah-v5",
                seeds=(0, 1, 2), scales: dict[str, float] | None = None, store: Path | None = None,
                columns: list[str] = COLUMNS) -> list[str]:
    """Evaluated runs of `archs` ({"c8": series}) x seeds under results/<sweep_id>/, plus sweep.csv; with `store`,
    their run.json in a run store too. Returns the run ids."""
    summaries, ids = [], []
    for arch, series in archs.items():
        dims = [int(w) for w in arch[1:].split(",")]
        for seed in seeds:
            run_id = f"{sweep_id}-{arch[1:].replace(',', 'x')}-{seed}"
            rows = _rows(series, seed, (scales or {}).get(arch, 1.0), columns)
            info = {"env_id": env, "sweep_id": sweep_id, "config": {"policy_dims": dims, "seed": seed,
                                                                    "total_timesteps": 4000}}
            best = SimpleNamespace(widths=dims, n_neurons=sum(dims), n_params=10, iteration=STEPS - 1,
                                   timesteps=1000 * (STEPS - 1), eval_return=max(r["eval_return"] for r in rows))
            resolved = ResolvedRun(RunPaths((store or results) / run_id), info)
            summary = run_summary(resolved, best, num_checkpoints=STEPS, num_evaluated=STEPS, bad_checkpoints=[],
                                  fixed_trajectory={"digest": "d"}, evaluation_seed=0, columns=columns,
                                  best_values={f"best_{c}": rows[-1][c] for c in columns[3:]},
                                  final={"final_iteration": STEPS - 1, "final_timesteps": 1000 * (STEPS - 1),
                                         "final_eval_return": rows[-1]["eval_return"]})
            out = results / sweep_id / run_id
            write_history(out / "history.csv", rows, columns)
            write_text_atomic(out / "summary.json", json_text(summary))
            if store is not None:
                write_text_atomic(store / run_id / "run.json", json_text({
                    "run_id": run_id, "obs_dim": 17, "env_requested": "HalfCheetah-v2",
                    "packages": {"numpy": "2.x", "torch": "2.x"}, **info}))
            summaries.append(summary)
            ids.append(run_id)
    write_sweep_csv(results / sweep_id, summaries)
    return ids


def _runs(tmp_path: Path, archs: dict, **kw) -> list[F.Run]:
    write_sweep(tmp_path, "s", archs, **kw)
    return F.make_runs(*read_sweep_results(tmp_path / "s"))


# ----------------------------------------------------------------------------------------------------------------
# Verdicts
# ----------------------------------------------------------------------------------------------------------------
def test_paper_like_series_make_every_finding_hold(tmp_path):
    runs = _runs(tmp_path, {"c8": RISING, "c16": RISING, "c8,8": RISING}, scales={"c16": 2.0})
    assert [f["verdict"] for f in F.all_findings(runs)] == [F.HOLDS] * 5


def test_flat_series_hold_only_the_same_order_finding(tmp_path):
    runs = _runs(tmp_path, {"c8": FLAT, "c16": FLAT})
    assert [f["verdict"] for f in F.all_findings(runs)] == [F.FAILS, F.FAILS, F.FAILS, F.HOLDS, F.FAILS]


def test_opposite_series_make_every_finding_fail(tmp_path):
    runs = _runs(tmp_path, {"c8": OPPOSITE, "c16": OPPOSITE}, scales={"c16": 100.0})
    assert [f["verdict"] for f in F.all_findings(runs)] == [F.FAILS] * 5


def test_architectures_that_disagree_are_inconclusive(tmp_path):
    runs = _runs(tmp_path, {"c8": RISING, "c16": OPPOSITE}, scales={"c16": 3.0})
    found = F.all_findings(runs)
    # findings 1-3 and 5 hold for c8 and fail for c16, so overall they are inconclusive
    assert [a["verdict"] for a in found[0]["architectures"]] == [F.HOLDS, F.FAILS]
    assert [f["verdict"] for f in found] == [F.UNCLEAR, F.UNCLEAR, F.UNCLEAR, F.FAILS, F.UNCLEAR]
    # finding 4: end densities 1.6-1.664 (c8) vs 30-31.2 (c16): even the closest seeds differ by more than 10x
    comparison = found[3]["comparison"]
    assert comparison["closest_ratio"] == pytest.approx(30.0 / (1.6 * 1.04))
    assert comparison["extreme_ratio"] == pytest.approx(31.2 / 1.6)


def test_seeds_on_both_sides_of_a_threshold_are_inconclusive(tmp_path):
    write_sweep(tmp_path, "s", {"c8": RISING}, seeds=(0,))
    write_sweep(tmp_path, "t", {"c8": OPPOSITE}, seeds=(1,))
    runs = F.make_runs(*read_sweep_results(tmp_path / "s")) + F.make_runs(*read_sweep_results(tmp_path / "t"))
    found = F.all_findings(runs)
    assert [f["architectures"][0]["verdict"] for f in found if f["number"] != 4] == [F.UNCLEAR] * 4
    assert found[0]["architectures"][0]["ratio"]["values"] == pytest.approx([1.6, 10.0])


def test_finding_4_needs_two_architectures_and_finding_5_the_random_trajectories(tmp_path):
    columns = expected_columns(("deterministic",))  # evaluated without random trajectories and lines
    found = F.all_findings(_runs(tmp_path, {"c8": RISING}, columns=columns))
    assert found[3]["verdict"] == F.UNCLEAR and "fewer than two" in found[3]["comparison"]["reason"]
    assert found[4]["verdict"] == F.UNCLEAR
    assert "--evaluate_random_trajectories" in found[4]["architectures"][0]["reason"]


def test_a_density_of_zero_at_the_start_has_no_ratio(tmp_path):
    series = RISING | {"deterministic_fixed_normalized_density": (0.0, 1.0)}
    found = F.finding_1(_runs(tmp_path, {"c8": series}))
    assert found["verdict"] == F.UNCLEAR and found["architectures"][0]["ratio"]["mean"] is None


def test_criteria_state_the_thresholds_the_rules_use():
    assert f"({1 + F.FLAT:g}, {F.MODERATE:g}]" in F.CRITERIA[1]
    assert f">= {F.MUCH_LONGER:g}" in F.CRITERIA[2]
    assert f"< {1 - F.FLAT:g}" in F.CRITERIA[3]
    assert f"factor {F.SAME_ORDER:g}" in F.CRITERIA[4]
    assert f">= {F.DIFFERENT:g}" in F.CRITERIA[5]


# ----------------------------------------------------------------------------------------------------------------
# The report's files
# ----------------------------------------------------------------------------------------------------------------
def _argv(tmp_path: Path, *sweeps: str) -> list[str]:
    return ["--sweep_id", *sweeps, f"--results_dir={tmp_path / 'results'}", f"--checkpoints_dir={tmp_path / 'store'}",
            f"--report_dir={tmp_path / 'report'}"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A report of two sweeps of one env (widths, depths) and one sweep of another, built once (about 10 s)."""
    tmp = tmp_path_factory.mktemp("report")
    store = tmp / "store"
    write_sweep(tmp / "results", "widths", {"c8": RISING, "c16": RISING, "c32": RISING}, store=store)
    write_sweep(tmp / "results", "depths", {"c16,16": RISING, "c8,8,8,8": RISING}, store=store)
    write_sweep(tmp / "results", "toy", {"c8,8": FLAT, "c16,16": FLAT}, env="Car1DEnv-v1", store=store)
    assert reproduce.main(_argv(tmp, "widths", "depths", "toy")) == 0
    return tmp / "report"


@pytest.mark.slow
def test_findings_json_holds_every_number_behind_each_verdict(built):
    record = json.loads((built / "findings.json").read_text())
    assert set(record["envs"]) == {"HalfCheetah-v5", "Car1DEnv-v1"}  # mixed envs: one section each
    cheetah = record["envs"]["HalfCheetah-v5"]
    assert [f["verdict"] for f in cheetah["findings"]] == [F.HOLDS] * 5
    assert [f["verdict"] for f in record["envs"]["Car1DEnv-v1"]["findings"]] == [F.FAILS, F.FAILS, F.FAILS,
                                                                                  F.HOLDS, F.FAILS]
    first = cheetah["findings"][0]
    assert [a["architecture"] for a in first["architectures"]] == ["c8", "c16", "c32", "c16,16", "c8,8,8,8"]
    c8 = first["architectures"][0]
    assert c8["start"]["values"] == pytest.approx([1.0, 1.02, 1.04])
    assert c8["end"]["values"] == pytest.approx([1.6, 1.632, 1.664])
    assert c8["ratio"]["min"] == pytest.approx(1.6) and c8["ratio"]["max"] == pytest.approx(1.6)
    assert c8["run_ids"] == ["widths-8-0", "widths-8-1", "widths-8-2"]
    assert first["criterion"] == F.CRITERIA[1]
    setup = cheetah["setup"]
    assert setup["env_requested"] == ["HalfCheetah-v2"] and setup["seeds"] == [0, 1, 2]
    assert setup["total_timesteps"] == [4000] and setup["sweeps"] == ["widths", "depths"]
    returns = {r["architecture"]: r for r in cheetah["returns"]}
    assert returns["c8"]["first"]["mean"] == pytest.approx(-306.0)
    assert returns["c8"]["final"]["mean"] == pytest.approx(918.0)
    assert record["differences_from_paper"] and record["machine"]["cpus"] == os.cpu_count()
    assert "NaN" not in (built / "findings.json").read_text()
    # the runs are in the run store but have no checkpoints: the report says why there is no partition drawing
    assert "has no checkpoints" in cheetah["partition"]["note"] and "sheet" not in cheetah["partition"]


@pytest.mark.slow
def test_report_md_links_figures_that_exist_and_states_each_verdict_with_its_criterion(built):
    text = (built / "REPORT.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert links and all(not Path(link).is_absolute() and (built / link).is_file() for link in links)
    assert {Path(link).name for link in links} == {"report_density.png", "report_trajectory_length.png",
                                                  "report_density_vs_size.png", "report_random_trajectories.png",
                                                  "report_random_lines.png"}
    for link in links:  # every figure also as pdf
        assert (built / link).with_suffix(".pdf").is_file()
    for number in range(1, 6):
        assert F.CRITERIA[number] in text
    assert text.count("Verdict: **holds**") == 5 + 1  # HalfCheetah's five, Car1D's finding 4


@pytest.mark.slow
def test_report_html_inlines_every_figure_and_needs_no_other_file(built):
    page = (built / "report.html").read_text()
    md = (built / "REPORT.md").read_text()
    images = re.findall(r'<img [^>]*src="([^"]+)"', page)
    assert len(images) == len(re.findall(r"!\[", md)) > 0
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from elsewhere


def chromium() -> str:
    """Debian's chromium (`make test` installs it where it can: scripts/ensure_chromium.sh); else the test skips."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium on this machine: run scripts/ensure_chromium.sh (or apt install chromium)")


def run_chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    return subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
                           "--hide-scrollbars", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_report_html_opens_in_a_real_browser_with_every_image_decoded(built, tmp_path):
    """Headless Chromium loads report.html offline; a copy with a probe script reports each image's decoded size
    (naturalWidth 0 = broken), and a screenshot of the page itself is not blank."""
    page = (built / "report.html").read_text()
    probe = ("<script>window.addEventListener('load', () => { const images = [...document.images]; "
             "document.body.setAttribute('data-probe', JSON.stringify({images: images.length, "
             "decoded: images.filter(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0).length, "
             "text: document.body.innerText.length})); });</script>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe + "</body>"))
    dom = run_chromium("--virtual-time-budget=20000", "--dump-dom", probed.as_uri(), profile=tmp_path / "profile1")
    found = re.search(r'data-probe="([^"]+)"', dom.stdout)
    assert found, (dom.returncode, dom.stderr[-2000:])
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] == len(re.findall(r"<img ", page)) > 0
    assert result["decoded"] == result["images"] and result["text"] > 1000

    shot = tmp_path / "shot.png"
    run_chromium(f"--screenshot={shot}", "--window-size=1280,2000", (built / "report.html").as_uri(),
                 profile=tmp_path / "profile2")
    from PIL import Image
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    pixels = list(image.getdata())
    not_white = sum(1 for p in pixels if min(p) < 240) / len(pixels)
    assert not_white > 0.02 and len(set(pixels)) > 50, (not_white, len(set(pixels)))


# ----------------------------------------------------------------------------------------------------------------
# Bad input: one line each
# ----------------------------------------------------------------------------------------------------------------
def test_a_sweep_without_runs_is_refused(tmp_path):
    assert_user_error(reproduce.main, _argv(tmp_path, "nothing"), "sweep 'nothing' has no runs", "runs.py")


def test_runs_without_evaluations_name_the_command_to_run(tmp_path):
    ids = write_sweep(tmp_path / "results", "s", {"c8": RISING}, store=tmp_path / "store")
    write_text_atomic(tmp_path / "store" / "extra" / "run.json", json_text(
        {"run_id": "extra", "env_id": "HalfCheetah-v5", "obs_dim": 17, "sweep_id": "s",
         "config": {"policy_dims": [8], "seed": 5}}))
    assert ids
    assert_user_error(reproduce.main, _argv(tmp_path, "s"), "1 run(s) of sweep 's' have no evaluation", "extra",
                      "python evaluate.py --sweep_id=s", "randomized_metric_helper.py")


def test_a_report_folder_that_is_not_writable_is_refused(tmp_path):
    write_sweep(tmp_path / "results", "s", {"c8": RISING})
    (tmp_path / "report").write_text("a file, not a folder")
    assert_user_error(reproduce.main, _argv(tmp_path, "s"), "--report_dir", "not a directory")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert_user_error(reproduce.main, [*_argv(tmp_path, "s")[:-1], f"--report_dir={locked / 'r'}"],
                          "not writable")


@pytest.mark.parametrize("argv, needles", [
    (["--preset=fast"], ("invalid choice", "fast")),
    ([], ("--preset", "--sweep_id")),
    (["--preset=quick", "--sweep_id", "s"], ("not both",)),
    (["--sweep_id", "../etc"], ("sweep_id",)),
])
def test_bad_flags_are_one_line(argv, needles):
    assert_user_error(reproduce.main, argv, *needles)


def test_sweep_ids_are_given_in_one_flag_or_repeated():
    from utils.flags import parse_settings
    from utils.settings import ReproduceSettings

    for argv in (["--sweep_id", "a", "b"], ["--sweep_id=a", "--sweep_id=b"], ["--sweep_id", "a", "--sweep_id", "b"]):
        assert parse_settings(ReproduceSettings, argv, "reproduce.py", "").sweep_id == ["a", "b"]


def test_a_sweep_given_twice_is_refused(tmp_path):
    write_sweep(tmp_path / "results", "s", {"c8": RISING})
    assert_user_error(reproduce.main, _argv(tmp_path, "s", "s"), "more than one of the sweeps")


@pytest.mark.slow
def test_the_command_line_ends_bad_input_with_one_line_and_exit_2(tmp_path):
    from tests.helpers import assert_one_line_error

    assert_one_line_error(run_cli("reproduce.py", "--preset=fast"), "invalid choice")
    assert_one_line_error(run_cli("reproduce.py", *_argv(tmp_path, "missing")), "has no runs")


# ----------------------------------------------------------------------------------------------------------------
# A whole study: a tiny preset trained, given random data, evaluated and reported; a re-run does nothing new
# ----------------------------------------------------------------------------------------------------------------
TINY_SWEEP = """program: train.py
method: grid
parameters:
  env: {value: Car1DEnv-v1}
  policy_dims: {values: ["c4", "c8"]}
  value_dims: {value: "c8"}
  seed: {values: [0, 1]}
  total_timesteps: {value: 400}
  nsteps: {value: 100}
  n_envs: {value: 2}
  batch_size: {value: 50}
  n_epochs: {value: 2}
  eval_episodes: {value: 1}
  norm_warmup_steps: {value: 20}
"""


def _tiny_preset(tmp_path, monkeypatch) -> list[str]:
    from utils.jobs import reproduce as job

    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(TINY_SWEEP)
    monkeypatch.setitem(job.PRESETS, "tiny", job.Preset((str(sweep_file),), "a test"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return [f"--checkpoints_dir={tmp_path / 'store'}", f"--results_dir={tmp_path / 'results'}",
            f"--randomized_data_dir={tmp_path / 'random'}", f"--report_dir={tmp_path / 'report'}", "--workers=2",
            "--wandb_mode=disabled", "--quiet"]


@pytest.mark.slow
def test_a_preset_runs_the_whole_study_and_a_rerun_skips_finished_work(tmp_path, monkeypatch, capsys):
    from tests.helpers import tree_digest
    from utils.jobs.reproduce import report
    from utils.settings import ReproduceSettings

    argv = _tiny_preset(tmp_path, monkeypatch)
    settings = ReproduceSettings(preset="tiny", checkpoints_dir=tmp_path / "store", results_dir=tmp_path / "results",
                                 randomized_data_dir=tmp_path / "random", report_dir=tmp_path / "report", workers=2,
                                 wandb_mode="disabled", quiet=True)
    assert argv  # the same folders as flags, for the CLI below
    lines: list[str] = []
    result = report(settings, notify=lines.append)
    assert "sweep tiny_tiny: 4 run(s) trained, 0 already done" in lines
    assert any(line.startswith("sweep tiny_tiny: random lines and trajectories written") for line in lines)
    evaluated = next(line for line in lines if "checkpoint(s) evaluated" in line)
    assert not evaluated.startswith("sweep tiny_tiny: 0 ")
    assert set(result.verdicts) == {"Car1DEnv-v1"} and len(result.verdicts["Car1DEnv-v1"]) == 5
    record = json.loads((tmp_path / "report" / "findings.json").read_text())
    setup = record["envs"]["Car1DEnv-v1"]["setup"]
    assert setup["sweeps"] == ["tiny_tiny"] and setup["runs"] == 4 and setup["total_timesteps"] == [400]
    assert setup["packages"]  # from the runs' run.json
    fifth = record["envs"]["Car1DEnv-v1"]["findings"][4]["architectures"][0]
    assert fifth["random_per_length_end"]["seeds"] == 2  # evaluated with random trajectories
    partition = record["envs"]["Car1DEnv-v1"]["partition"]
    assert (tmp_path / "report" / partition["sheet"]).is_file() and (tmp_path / "report" / partition["animation"]).is_file()
    md = (tmp_path / "report" / "REPORT.md").read_text()
    assert f"]({partition['sheet']})" in md
    page = (tmp_path / "report" / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == md.count("![") == 7  # density (findings 1, 3), length, size, random x2, partition
    before = tree_digest(tmp_path / "results") | tree_digest(tmp_path / "random")

    lines.clear()
    report(settings, notify=lines.append)
    assert "sweep tiny_tiny: 0 run(s) trained, 4 already done" in lines
    assert "sweep tiny_tiny: 0 checkpoint(s) evaluated, 12 already done" in lines
    assert not any("random lines" in line for line in lines)
    assert tree_digest(tmp_path / "results") | tree_digest(tmp_path / "random") == before


def test_a_preset_whose_sweep_file_is_missing_is_refused(tmp_path, monkeypatch):
    from utils.jobs import reproduce as job

    monkeypatch.setitem(job.PRESETS, "tiny", job.Preset((str(tmp_path / "gone.yaml"),), "a test"))
    from utils.settings import ReproduceSettings

    with pytest.raises(UserError, match="gone.yaml are missing"):
        job.report(ReproduceSettings(preset="tiny", report_dir=tmp_path / "report"))


def test_the_presets_are_the_sweep_files_the_issue_asks_for():
    from utils.jobs.reproduce import PRESETS, preset_sweep_files, preset_sweep_id
    from utils.jobs.sweep import sweep_configurations
    from utils.settings import SweepSettings

    def grid(preset):
        configs = [c for f in preset_sweep_files(preset) for c in sweep_configurations(SweepSettings(file=str(f)))[1]]
        return {(c["env"], c["policy_dims"], c["seed"], c["total_timesteps"]) for c in configs}

    quick = grid("quick")
    cheetah = {(dims, seed) for env, dims, seed, steps in quick if env == "HalfCheetah-v2" and steps == 200000}
    assert cheetah == {(d, s) for d in ("c8", "c16", "c32", "c16,16", "c8,8,8,8") for s in (0, 1, 2)}
    assert {dims for env, dims, _, _ in quick if env == "Car1DEnv-v1"} == {"c8,8", "c16,16", "c32,32"}
    paper = grid("paper")
    assert len(paper) == 5 * 16 * 5 and {steps for *_, steps in paper} == {1000000}
    assert [preset_sweep_id("quick", f) for f in PRESETS["quick"].sweep_files] == [
        "quick_halfcheetah_widths", "quick_halfcheetah_depths", "quick_car1d_widths"]
