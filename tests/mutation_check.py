"""Re-runnable mutation check: does the fast test tier catch deliberate one-line bugs? (not part of `make test`)

    .venv/bin/python tests/mutation_check.py            # every mutation, each against its own test files
    .venv/bin/python tests/mutation_check.py --quick    # each against the whole fast tier (slower, stricter)
    .venv/bin/python tests/mutation_check.py --only gae # mutations whose name contains "gae"

Each mutation names a file, a piece of code that must occur there exactly once, and its replacement, so it is
found by what the code says, not by a line number, and survives code moving around. A mutation whose code is no
longer there is reported as "stale" (update it, do not drop it). The repository is copied to a temporary
directory first, so an interrupted check never leaves a mutated file behind. The last line is JSON.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    find: str       # must occur exactly once in the file
    replace: str
    tests: tuple[str, ...]  # the fast test files that should catch it


MUTATIONS: list[Mutation] = []  # filled in below, grouped by what they break


def copy_repo(dest: Path) -> None:
    """The tracked and untracked-but-not-ignored files of the repository, copied to dest."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def run_tests(repo: Path, tests: list[str], timeout: float) -> tuple[str, str]:
    """('killed' | 'survived' | 'timeout', last output line) of the fast tests in `repo`."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", ""
    last = (result.stdout.strip().splitlines() or [""])[-1]
    return ("survived" if result.returncode == 0 else "killed"), last


def check(mutations: list[Mutation], quick_tier: bool, timeout: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="mutation_check_") as tmp:
        repo = Path(tmp)
        copy_repo(repo)
        for m in mutations:
            path = repo / m.file
            original = path.read_text(encoding="utf-8") if path.is_file() else ""
            count = original.count(m.find)
            if count != 1:
                rows.append({"name": m.name, "status": "stale", "detail": f"code found {count} times in {m.file}"})
                print(f"{'stale':9} {m.name}: code found {count} times in {m.file}", flush=True)
                continue
            path.write_text(original.replace(m.find, m.replace), encoding="utf-8")
            try:
                status, last = run_tests(repo, ["tests"] if quick_tier else list(m.tests), timeout)
            finally:
                path.write_text(original, encoding="utf-8")
            rows.append({"name": m.name, "status": status, "detail": last})
            print(f"{status:9} {m.name}: {last}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="run the whole fast tier for every mutation")
    parser.add_argument("--only", default="", help="only mutations whose name contains this")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per mutation")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only in m.name]
    rows = check(chosen, args.quick, args.timeout)
    survivors = [r["name"] for r in rows if r["status"] != "killed"]
    print(json.dumps({"mutations": len(rows), "killed": len(rows) - len(survivors), "survivors": survivors}))
    return 1 if survivors else 0


def mutation(name: str, file: str, find: str, replace: str, *tests: str) -> None:
    MUTATIONS.append(Mutation(name, file, find, replace, tests))


if __name__ == "__main__":
    sys.exit(main())
