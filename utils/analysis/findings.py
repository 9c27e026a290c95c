"""The paper's five findings, measured on evaluated runs, each with a verdict by an explicit criterion.

Input: runs as evaluate.py leaves them (summary.json + history.csv rows, `utils.analysis.history`), of one env.
Every number is per architecture: mean, minimum and maximum over its seeds (runs) of a quantity at the first
evaluated checkpoint ("start", iteration 0: the initial policy), at the last one ("end"), and of end / start.
Only the deterministic policy's columns are used (the paper's main figures; `--add_stochastic` is extra).

Verdicts (docs/design.md, "The report"): each finding has a per-architecture rule that says holds / does not hold /
inconclusive from the seeds' range; the finding holds when it holds for every architecture, does not hold when it
fails for every architecture, and is inconclusive otherwise (including: no data). The thresholds are constants
below and are printed next to every verdict, so a reader can disagree with them and recompute from findings.json.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

HOLDS, FAILS, UNCLEAR = "holds", "does not hold", "inconclusive"
POLICY = "deterministic"

# Thresholds read from the paper's wording ("rises only moderately", "much longer", "falls", "same order",
# "different"); a ratio is end / start of one seed.
FLAT = 0.05          # a change of at most 5% either way is no change (finding 1 "rises", finding 3 "falls")
MODERATE = 3.0       # "rises only moderately": at most tripled
MUCH_LONGER = 2.0    # "grows much longer": at least doubled
SAME_ORDER = 10.0    # "of the same order": largest / smallest within a factor of 10
DIFFERENT = 1.5      # "different densities": a factor of 1.5 or more either way

FIXED_DENSITY = f"{POLICY}_fixed_normalized_density"
CURRENT_DENSITY = f"{POLICY}_current_normalized_density"
CURRENT_LENGTH = f"{POLICY}_current_trajectory_length_normalized"
CURRENT_PER_LENGTH = f"{POLICY}_current_transitions_per_length"
FIXED_PER_LENGTH = f"{POLICY}_fixed_transitions_per_length"
RANDOM_PER_LENGTH = "mean_normalized_num_transitions_random_trajectories"
LINES = ("mean_num_regions_random_lines_origin", "mean_num_regions_random_lines_mean")
FIXED_REGIONS = f"num_regions_{POLICY}_fixed"

STATEMENTS = {
    1: "Along a fixed trajectory (an episode of the best policy), the normalized region density rises only "
       "moderately over training.",
    2: "The current policy's trajectory grows much longer over training.",
    3: "Along the current policy's trajectory, the normalized region density falls over training (the same "
       "regions spread over a longer path).",
    4: "Normalized per neuron, region densities are of the same order across widths and depths.",
    5: "Random-action trajectories (and random lines) see region densities different from those along policy "
       "trajectories.",
}
CRITERIA = {
    1: f"per architecture, end/start of the fixed-trajectory density: holds when every seed's ratio is in "
       f"({1 + FLAT:g}, {MODERATE:g}]; does not hold when every seed's ratio is <= {1 + FLAT:g} (no rise) or "
       f"every seed's is > {MODERATE:g} (more than moderate); holds overall when it holds for every architecture, "
       f"does not hold when it fails for every architecture, else inconclusive",
    2: f"per architecture, end/start of the current trajectory's length (normalized input space): holds when "
       f"every seed's ratio is >= {MUCH_LONGER:g}; does not hold when every seed's is < {MUCH_LONGER:g}; "
       f"overall as for finding 1",
    3: f"per architecture, end/start of the current-trajectory density: holds when every seed's ratio is "
       f"< {1 - FLAT:g}; does not hold when every seed's is >= {1 - FLAT:g}; overall as for finding 1",
    4: f"the end (last checkpoint) fixed-trajectory density of each architecture: holds when the largest seed "
       f"value over all architectures is within a factor {SAME_ORDER:g} of the smallest; does not hold when even "
       f"the architectures' closest seeds (highest-mean architecture's smallest vs lowest-mean architecture's "
       f"largest) differ by more than {SAME_ORDER:g}; else (or with fewer than two architectures) inconclusive",
    5: f"per architecture, at the last checkpoint, random-trajectory transitions per unit length / current "
       f"policy trajectory's: holds when every seed's ratio is >= {DIFFERENT:g} or every seed's is "
       f"<= 1/{DIFFERENT:g}; does not hold when every seed's is within (1/{DIFFERENT:g}, {DIFFERENT:g}); overall "
       f"as for finding 1. Random lines are reported (regions per line, start and end) but not judged: a whole "
       f"line has no length to normalize by",
}


@dataclass(frozen=True)
class Run:
    """One evaluated run: its summary.json and its history rows sorted by timesteps."""

    summary: dict
    rows: tuple[dict, ...]

    @property
    def architecture(self) -> str:
        return self.summary["architecture"]


def make_runs(summaries: Sequence[dict], histories: dict[str, list[dict]]) -> list[Run]:
    """Runs from read_sweep_results' output, each history sorted by timesteps."""
    return [Run(s, tuple(sorted(histories.get(s["run_id"], []), key=lambda r: r["timesteps"]))) for s in summaries]


def _value(row: dict, column: str) -> float:
    v = row.get(column)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan


def start_end(rows: Sequence[dict], column: str) -> tuple[float, float]:
    """(value at the first row, value at the last row) of a column; NaN where the cell is empty or missing."""
    if not rows:
        return math.nan, math.nan
    return _value(rows[0], column), _value(rows[-1], column)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, NaN when the denominator is not positive or either is not finite."""
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0:
        return math.nan
    return numerator / denominator


def spread(values: Sequence[float]) -> dict:
    """{"mean", "min", "max", "seeds", "values"} over the finite values (None when there are none); "values" keeps
    every seed's value (None for a missing one), so findings.json holds every number behind a verdict."""
    finite = [v for v in values if math.isfinite(v)]
    out = {"seeds": len(finite), "values": [v if math.isfinite(v) else None for v in values]}
    if finite:
        out.update(mean=sum(finite) / len(finite), min=min(finite), max=max(finite))
    else:
        out.update(mean=None, min=None, max=None)
    return out


def architectures(runs: Sequence[Run]) -> list[tuple[str, list[Run]]]:
    """(architecture, its runs) smallest first: by hidden neurons, depth, name (metric_plots.architecture_order)."""
    keys = {r.architecture: (r.summary.get("n", 0), r.summary.get("depth", 0), r.architecture) for r in runs}
    return [(a, [r for r in runs if r.architecture == a]) for a in sorted(keys, key=keys.get)]


def _shape(run: Run) -> dict:
    s = run.summary
    return {"depth": s.get("depth"), "width": s.get("width"), "n": s.get("n")}


def change(runs: Sequence[Run], column: str) -> dict:
    """Start, end and end/start of one column over an architecture's seeds (spread of each), with run ids."""
    pairs = [start_end(r.rows, column) for r in runs]
    return {"column": column, "run_ids": [r.summary["run_id"] for r in runs],
            "start": spread([p[0] for p in pairs]), "end": spread([p[1] for p in pairs]),
            "ratio": spread([ratio(p[1], p[0]) for p in pairs])}


def _ratios(entry: dict) -> list[float] | None:
    """Every seed's ratio, or None when a seed has none (then no rule can say anything for all seeds)."""
    values = entry["ratio"]["values"]
    return None if not values or any(v is None for v in values) else values


def combine(verdicts: Sequence[str]) -> str:
    """Holds for every architecture -> holds; fails for every one -> does not hold; else (or none) inconclusive."""
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    if verdicts and all(v == FAILS for v in verdicts):
        return FAILS
    return UNCLEAR


def _ratio_finding(number: int, runs: Sequence[Run], column: str, rule: Callable[[list[float]], str]) -> dict:
    rows = []
    for arch, members in architectures(runs):
        entry = {"architecture": arch, **_shape(members[0]), **change(members, column)}
        values = _ratios(entry)
        entry["verdict"] = rule(values) if values is not None else UNCLEAR
        if values is None:
            entry["reason"] = f"a seed has no end/start ratio of {column} (missing, or 0 at the start)"
        rows.append(entry)
    return _finding(number, rows, combine([r["verdict"] for r in rows]))


def _finding(number: int, architectures_: list[dict], verdict: str, **extra) -> dict:
    return {"number": number, "statement": STATEMENTS[number], "criterion": CRITERIA[number], "verdict": verdict,
            "architectures": architectures_, **extra}


def finding_1(runs: Sequence[Run]) -> dict:
    def rule(r: list[float]) -> str:
        if all(1 + FLAT < v <= MODERATE for v in r):
            return HOLDS
        if all(v <= 1 + FLAT for v in r) or all(v > MODERATE for v in r):
            return FAILS
        return UNCLEAR
    return _ratio_finding(1, runs, FIXED_DENSITY, rule)


def finding_2(runs: Sequence[Run]) -> dict:
    def rule(r: list[float]) -> str:
        return HOLDS if all(v >= MUCH_LONGER for v in r) else FAILS if all(v < MUCH_LONGER for v in r) else UNCLEAR
    return _ratio_finding(2, runs, CURRENT_LENGTH, rule)


def finding_3(runs: Sequence[Run]) -> dict:
    def rule(r: list[float]) -> str:
        return HOLDS if all(v < 1 - FLAT for v in r) else FAILS if all(v >= 1 - FLAT for v in r) else UNCLEAR
    return _ratio_finding(3, runs, CURRENT_DENSITY, rule)


def finding_4(runs: Sequence[Run]) -> dict:
    rows = [{"architecture": arch, **_shape(members[0]), **change(members, FIXED_DENSITY)}
            for arch, members in architectures(runs)]
    ends = [r for r in rows if r["end"]["seeds"] == len(r["run_ids"]) and r["end"]["min"] is not None]
    numbers = {"architectures_compared": [r["architecture"] for r in ends]}
    if len(ends) < 2 or len(ends) < len(rows) or min(r["end"]["min"] for r in ends) <= 0:
        numbers["reason"] = ("fewer than two architectures with an end density for every seed" if len(ends) < 2
                             else "an architecture lacks a seed's end density" if len(ends) < len(rows)
                             else "a density of 0 has no order of magnitude")
        return _finding(4, rows, UNCLEAR, comparison=numbers)
    high = max(ends, key=lambda r: r["end"]["mean"])
    low = min(ends, key=lambda r: r["end"]["mean"])
    extreme = ratio(max(r["end"]["max"] for r in ends), min(r["end"]["min"] for r in ends))
    closest = ratio(high["end"]["min"], low["end"]["max"])
    numbers.update(highest_mean=high["architecture"], lowest_mean=low["architecture"],
                   mean_ratio=ratio(high["end"]["mean"], low["end"]["mean"]), extreme_ratio=extreme,
                   closest_ratio=closest)
    verdict = HOLDS if extreme <= SAME_ORDER else FAILS if closest > SAME_ORDER else UNCLEAR
    return _finding(4, rows, verdict, comparison=numbers)


def finding_5(runs: Sequence[Run]) -> dict:
    rows = []
    for arch, members in architectures(runs):
        ends = [start_end(r.rows, c)[1] for c in (RANDOM_PER_LENGTH, CURRENT_PER_LENGTH, FIXED_PER_LENGTH)
                for r in members]
        k = len(members)
        random_, current, fixed = ends[:k], ends[k:2 * k], ends[2 * k:]
        vs_current = [ratio(a, b) for a, b in zip(random_, current)]
        entry = {"architecture": arch, **_shape(members[0]), "run_ids": [r.summary["run_id"] for r in members],
                 "random_per_length_end": spread(random_), "current_per_length_end": spread(current),
                 "fixed_per_length_end": spread(fixed), "random_over_current": spread(vs_current),
                 "random_over_fixed": spread([ratio(a, b) for a, b in zip(random_, fixed)]),
                 "random_lines": [change(members, c) for c in LINES],
                 "fixed_trajectory_regions": change(members, FIXED_REGIONS)}
        if not all(math.isfinite(v) for v in vs_current):
            entry["verdict"] = UNCLEAR
            entry["reason"] = (f"a seed lacks {RANDOM_PER_LENGTH} or {CURRENT_PER_LENGTH} at the last checkpoint "
                               f"(evaluate with --evaluate_random_trajectories)")
        elif all(v >= DIFFERENT for v in vs_current):
            entry["verdict"], entry["how"] = HOLDS, "random-action trajectories are denser than the policy's"
        elif all(v <= 1 / DIFFERENT for v in vs_current):
            entry["verdict"], entry["how"] = HOLDS, "random-action trajectories are sparser than the policy's"
        elif all(1 / DIFFERENT < v < DIFFERENT for v in vs_current):
            entry["verdict"], entry["how"] = FAILS, "random-action and policy trajectories have similar densities"
        else:
            entry["verdict"] = UNCLEAR
        rows.append(entry)
    return _finding(5, rows, combine([r["verdict"] for r in rows]))


def returns_reached(runs: Sequence[Run]) -> list[dict]:
    """Per architecture: the training eval return at the first evaluated checkpoint, the best and the final one."""
    out = []
    for arch, members in architectures(runs):
        first = [next((_value(row, "eval_return") for row in r.rows if math.isfinite(_value(row, "eval_return"))),
                      math.nan) for r in members]
        best = [_number(r.summary.get("best_eval_return")) for r in members]
        final = [_number(r.summary.get("final_eval_return")) for r in members]
        out.append({"architecture": arch, **_shape(members[0]), "run_ids": [r.summary["run_id"] for r in members],
                    "first": spread(first), "best": spread(best), "final": spread(final)})
    return out


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.nan


def all_findings(runs: Sequence[Run]) -> list[dict]:
    """The five findings (in the paper's order) measured on the runs of one env."""
    return [finding_1(runs), finding_2(runs), finding_3(runs), finding_4(runs), finding_5(runs)]
