"""The shipped profiles: ``--profile profiles/slurm`` runs with exactly its own settings.

Snakemake loads a folder ``profiles/default`` beside the Snakefile by itself, as the
*workflow profile*, and its settings override those of ``--profile``; and a
``--set-resources`` on the command line replaces the profile's whole block.
"""

from __future__ import annotations

import re
import subprocess

import yaml

from conftest import REPO, SNAKEMAKE

SLURM = REPO / "profiles/slurm/config.yaml"


def dry_run(tmp_path, *args: str) -> str:
    """A dry run of the default config in ``tmp_path``: Snakemake's messages."""
    command = [
        *SNAKEMAKE, "--directory", str(tmp_path), "--configfile", str(REPO / "config/config.yaml"),
        "--dry-run", *args,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout + result.stderr


def resources(output: str, rule: str) -> dict[str, str]:
    """The resources the dry run lists for the first job of ``rule``."""
    pattern = rf"^(?:rule|checkpoint) {rule}:\n(?:.*\n)*?\s+resources: (.*)$"
    block = re.search(pattern, output, re.MULTILINE)
    assert block, f"no {rule} job in the dry run"
    return dict(item.split("=", 1) for item in block.group(1).split(", "))


def test_no_profile_is_loaded_behind_the_users_back(tmp_path):
    assert not (REPO / "profiles/default").exists()
    output = dry_run(tmp_path, "--profile", str(REPO / "profiles/slurm"))
    assert "workflow specific profile" not in output
    wanted = yaml.safe_load(SLURM.read_text())["set-resources"]["simulate_cohort"]
    assert resources(output, "simulate_cohort")["cpus_per_task"] == str(wanted["cpus_per_task"])
    assert resources(output, "validate_inputs")["runtime"] == "30"  # the rule's own


def test_a_users_profile_with_site_values_keeps_the_shipped_ones(tmp_path):
    """The documented way (docs/cluster.md): the site's account and partitions added to a
    copy of profiles/slurm keep every shipped request beside them."""
    shipped = yaml.safe_load(SLURM.read_text())
    mine = dict(shipped)
    mine["default-resources"] = {**shipped["default-resources"], "slurm_account": "lab123"}
    mine["set-resources"] = {
        **shipped["set-resources"],
        "simulate_cohort": {**shipped["set-resources"]["simulate_cohort"],
                            "slurm_partition": "cpu"},
    }  # fmt: skip
    folder = tmp_path / "mylab"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(mine))
    found = resources(dry_run(tmp_path / "run", "--profile", str(folder)), "simulate_cohort")
    assert found["slurm_partition"] == "cpu" and found["slurm_account"] == "lab123"
    assert found["cpus_per_task"] == "4"
