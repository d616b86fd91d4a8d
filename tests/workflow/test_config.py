"""The config schema: every key documented with a default; the shipped config is valid."""

from __future__ import annotations

import copy
import re

import pytest
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from conftest import REPO

SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def walk(properties: dict, prefix: str = ""):
    for key, spec in properties.items():
        yield prefix + key, spec
        if spec.get("type") == "object" and "properties" in spec:
            yield from walk(spec["properties"], f"{prefix}{key}.")
        if spec.get("type") == "array" and "properties" in spec.get("items", {}):
            yield from walk(spec["items"]["properties"], f"{prefix}{key}[].")


def test_every_key_has_description_and_default():
    schema = yaml.safe_load(SCHEMA.read_text())
    for key, spec in walk(schema["properties"]):
        assert spec.get("description"), f"{key} has no description"
        if key not in {"simulation.sites", "simulation.sites[].name"}:
            assert "default" in spec, f"{key} has no default"


def _merged(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base`` as Snakemake merges config files (dicts deep, else replaced)."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merged(out[key], value) if both else value
    return out


@pytest.mark.parametrize("path", sorted((REPO / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    base = yaml.safe_load((REPO / "config/config.yaml").read_text())
    config = _merged(base, yaml.safe_load(path.read_text()))
    validate(config, str(SCHEMA))


def test_empty_config_gets_defaults():
    config = {}
    validate(config, str(SCHEMA))
    assert config["bids_dir"] == "simulated" and config["modalities"] == ["T1w"]


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"modalities": ["FLAIR"]}, "T1w"),
        ({"on_unlisted_scan": "ignore"}, "ignore"),
        ({"simulation": {"voxel_size": 8}}, "8"),
        ({"typo_key": 1}, "typo_key"),
    ],
)
def test_bad_config_is_rejected(change, pattern):
    config = copy.deepcopy(yaml.safe_load((REPO / "config/config.yaml").read_text()))
    config.update(change)
    with pytest.raises(WorkflowError, match=pattern):
        validate(config, str(SCHEMA))


def test_config_readme_documents_every_key():
    schema = yaml.safe_load(SCHEMA.read_text())
    readme = (REPO / "config/README.md").read_text()
    for key, _ in walk(schema["properties"]):
        leaf = key.split(".")[-1].removesuffix("[]")
        assert re.search(rf"`([\w.]+\.)?{leaf}[`*.]", readme), f"{key} is not documented"


def test_the_study_preset_restates_every_slimmed_model_setting():
    """A --configfile merges sections key by key: a model key the demo sets and the preset
    leaves out would keep the demo's CPU-slim value."""
    demo = yaml.safe_load((REPO / "config/config.yaml").read_text())["models"]
    study = yaml.safe_load((REPO / "config/study.yaml").read_text())["models"]
    for name in study["names"]:
        kept = set(demo.get(name, {})) - set(study.get(name, {}))
        assert not kept, f"models.{name}: {sorted(kept)} keep the demo's values"


def test_the_study_preset_plans_a_cohort_of_a_thousand(tmp_path):
    """A dry run of the preset on a planned simulated cohort of 1,000 participants at 2 mm:
    every scan preprocessed, 25 base models (study 3's 5 members x 4 regions among them)
    in each of 5 folds."""
    import subprocess

    from conftest import SNAKEMAKE

    cohort = tmp_path / "cohort.yaml"
    cohort.write_text(yaml.safe_dump({"simulation": {"n_subjects": 1000, "voxel_size": 2.0}}))
    configs = [str(REPO / "config/config.yaml"), str(REPO / "config/study.yaml"), str(cohort)]
    command = [*SNAKEMAKE, "--directory", str(tmp_path), "--configfile", *configs, "-n",
               "--quiet", "rules"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, flags=re.MULTILINE))
    assert int(jobs["preprocess_t1w"]) >= 1000
    assert int(jobs["train"]) == 5 * 25 and int(jobs["train_voxel"]) == 5
