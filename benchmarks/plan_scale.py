"""How long Snakemake takes to plan brainpad for large cohorts, and how many SLURM jobs.

Builds a synthetic BIDS tree of N subjects (one T1w each, as empty files: planning never
opens them) with a valid participants.tsv, then times ``snakemake -n`` on it and counts
the jobs and the SLURM submissions the profile's grouping gives
(``groups``/``group-components`` of profiles/slurm/config.yaml). Each cohort is planned
twice: one preprocessing job per scan (config ``preprocess.batches: 0``, the default) and
in batches of about ``--batch-size`` scans (``preprocess.batches: N / batch size``).

The time is the wall clock of the whole ``snakemake -n --quiet rules`` process (start-up,
parsing, DAG, the dry-run's job listing, which ``--quiet rules`` keeps off the terminal).

Usage: python benchmarks/plan_scale.py [--subjects 1000 10000] [--batch-size 50]
       [--work /tmp/brainpad_plan_scale]
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GROUPS = ["HC", "sMCI", "pMCI", "AD"]


def build_dataset(root: Path, n: int) -> None:
    """A BIDS tree of ``n`` subjects with empty T1w files (reused if already there)."""
    marker = root / f".complete-{n}"
    if marker.is_file():
        return
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text('{"Name": "plan", "BIDSVersion": "1.8.0"}')
    rows = ["participant_id\tage\tsex\tsite\tgroup"]
    for i in range(1, n + 1):
        pid = f"sub-{i:05d}"
        group = GROUPS[0] if i % 10 < 7 else GROUPS[i % 10 - 6]
        rows.append(f"{pid}\t{20 + i % 70}\t{'FM'[i % 2]}\tsite{i % 5}\t{group}")
        anat = root / pid / "anat"
        anat.mkdir(parents=True, exist_ok=True)
        (anat / f"{pid}_T1w.nii.gz").touch()
    (root / "participants.tsv").write_text("\n".join(rows) + "\n")
    marker.touch()


def plan(workdir: Path, bids: Path, batches: int) -> tuple[float, dict[str, int]]:
    """Seconds of ``snakemake -n`` and its job counts per rule."""
    config = {
        "bids_dir": str(bids),
        "modalities": ["T1w"],
        "preprocess": {"voxel_size": 2.0, "batches": batches},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir), "--configfile", str(workdir / "config.yaml"),
        "-n", "--quiet", "rules",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEMAKE")}
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"snakemake -n failed:\n{result.stderr[-3000:]}")
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    return seconds, {k: int(v) for k, v in counts.items()}


def slurm_jobs(counts: dict[str, int]) -> tuple[int, int]:
    """SLURM submissions without and with the profile's grouping (`all` runs locally)."""
    profile = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    ungrouped = counts["total"] - counts.get("all", 0)
    grouped = ungrouped
    by_group: dict[str, int] = {}
    for rule, group in profile.get("groups", {}).items():
        by_group[group] = by_group.get(group, 0) + counts.get(rule, 0)
    for group, jobs in by_group.items():
        size = profile.get("group-components", {}).get(group, 1)
        grouped += math.ceil(jobs / size) - jobs
    return ungrouped, grouped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--work", type=Path, default=Path("/tmp/brainpad_plan_scale"))
    args = parser.parse_args()
    print("subjects  batches   jobs  plan_s  slurm_jobs(ungrouped -> grouped)")
    for n in args.subjects:
        bids = args.work / f"bids-{n}"
        t0 = time.perf_counter()
        build_dataset(bids, n)
        built = time.perf_counter() - t0
        for batches in (0, math.ceil(n / args.batch_size)):
            workdir = args.work / f"run-{n}-{batches}"
            workdir.mkdir(parents=True, exist_ok=True)
            seconds, counts = plan(workdir, bids, batches)
            ungrouped, grouped = slurm_jobs(counts)
            print(
                f"{n:8d}  {batches:7d}  {counts['total']:5d}  {seconds:6.1f}"
                f"  {ungrouped} -> {grouped}   (dataset built in {built:.1f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
