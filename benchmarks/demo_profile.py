"""Where a finished run's time went, per rule: jobs, wall time, CPU time.

Reads the run's Snakemake log (the newest ``.snakemake/log/*.snakemake.log`` of the
working directory that ran jobs, or ``--log``) for when each job started and finished, and the
``results/benchmarks/`` files of the costly rules for their CPU time. Prints one
markdown row per rule, in the order the rules first started:

* ``jobs``: how many ran;
* ``span``: from the rule's first start to its last finish (its stretch of the run;
  stretches of rules that run side by side overlap);
* ``job wall``: the sum of its jobs' wall times, and their mean;
* ``CPU``: the sum of its jobs' CPU time (benchmark files; blank without one), and CPU
  over job wall: ~1 for a job that computes on one core all along, less for a job that
  mostly waits or starts up, up to its threads for a parallel one.

Usage: python benchmarks/demo_profile.py [--workdir .] [--log FILE]
"""

from __future__ import annotations

import argparse
import re
from datetime import datetime
from pathlib import Path

import pandas as pd

STAMP = r"\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]"
START = re.compile(STAMP + r"\n(?:local)?(?:rule|checkpoint) (\w+):\n(?:.*\n)*?\s+jobid: (\d+)")
FINISH = re.compile(STAMP + r"\nFinished jobid: (\d+) \(Rule: (\w+)\)")


def _time(text: str) -> datetime:
    return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")


def job_times(log: Path) -> pd.DataFrame:
    """One row per finished job: rule, start, finish, wall seconds."""
    text = log.read_text()
    starts = {int(j): (rule, _time(t)) for t, rule, j in START.findall(text)}
    rows = []
    for t, j, rule in FINISH.findall(text):
        if int(j) in starts:
            begun = starts[int(j)][1]
            rows.append({"rule": rule, "start": begun, "finish": _time(t)})
    jobs = pd.DataFrame(rows, columns=["rule", "start", "finish"])
    jobs = jobs[jobs["rule"] != "all"]
    jobs["wall"] = (jobs["finish"] - jobs["start"]).dt.total_seconds()
    return jobs


def cpu_times(benchmarks: Path) -> pd.Series:
    """CPU seconds per rule, summed over its benchmark files (first folder level = rule)."""
    from brainpad.models import REGISTRY

    totals: dict[str, float] = {}
    for path in benchmarks.rglob("*.tsv"):
        parts = path.relative_to(benchmarks).parts
        rule = parts[0].removesuffix(".tsv")
        if rule == "preprocess":
            rule = "preprocess_batch" if parts[1] == "batches" else "preprocess_t1w"
        elif rule == "train":  # train/<model>/fold-<k>: networks that map train_voxel
            spec = REGISTRY.get(parts[1])
            rule = "train_voxel" if spec is not None and spec.kind == "voxel" else "train"
        table = pd.read_csv(path, sep="\t")
        totals[rule] = totals.get(rule, 0.0) + float(table["cpu_time"].iloc[-1])
    return pd.Series(totals, dtype=float)


def profile(jobs: pd.DataFrame, cpu: pd.Series) -> pd.DataFrame:
    """The per-rule table (see the module docstring)."""
    table = jobs.groupby("rule", sort=False).agg(
        jobs=("wall", "size"),
        first=("start", "min"),
        last=("finish", "max"),
        job_wall=("wall", "sum"),
        mean_wall=("wall", "mean"),
    )
    table["span"] = (table["last"] - table["first"]).dt.total_seconds()
    table["cpu"] = cpu.reindex(table.index)
    table["cpu_per_wall"] = table["cpu"] / table["job_wall"].where(table["job_wall"] > 0)
    return table.sort_values("first")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("."))
    parser.add_argument("--log", type=Path, help="a Snakemake log (default: the newest)")
    args = parser.parse_args()
    logs = (args.workdir / ".snakemake" / "log").glob("*.snakemake.log")
    runs = [p for p in logs if "Finished jobid" in p.read_text()]  # not --report or -n
    log = args.log or max(runs, key=lambda p: p.stat().st_mtime)
    jobs = job_times(log)
    table = profile(jobs, cpu_times(args.workdir / "results" / "benchmarks"))
    total = (jobs["finish"].max() - jobs["start"].min()).total_seconds()
    print(f"{log.name}: {len(jobs)} jobs, {total / 60:.1f} min from first start to last finish\n")
    print("| rule | jobs | span (min) | job wall (min) | mean job (s) | CPU (min) | CPU / wall |")
    print("|---|---|---|---|---|---|---|")
    for rule, row in table.iterrows():
        cpu = "" if pd.isna(row["cpu"]) else f"{row['cpu'] / 60:.1f}"
        ratio = "" if pd.isna(row["cpu_per_wall"]) else f"{row['cpu_per_wall']:.2f}"
        print(
            f"| {rule} | {row['jobs']} | {row['span'] / 60:.1f} | {row['job_wall'] / 60:.1f} "
            f"| {row['mean_wall']:.0f} | {cpu} | {ratio} |"
        )


if __name__ == "__main__":
    main()
