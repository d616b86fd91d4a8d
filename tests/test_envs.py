"""The conda envs used by `--use-conda` must pin exactly what pyproject.toml pins."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from conftest import REPO

ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def pins(requirements: list[str]) -> dict[str, str]:
    parsed = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^\s;]+)", requirement.strip())
        assert match, f"'{requirement}' is not pinned with =="
        parsed[match[1].lower()] = match[2]
    return parsed


@pytest.fixture(scope="module")
def project_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return pins(project["dependencies"]) | pins(project["optional-dependencies"]["test"])


def test_there_are_envs():
    assert {p.stem for p in ENV_FILES} >= {"simulate", "inputs"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_match_pyproject(env_file, project_pins):
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    for name, version in pins(pip_section).items():
        assert name in project_pins, (
            f"{env_file.name}: {name} is not a dependency in pyproject.toml"
        )
        assert project_pins[name] == version, (
            f"{env_file.name}: {name}=={version} but pyproject.toml pins {project_pins[name]}"
        )


def test_every_rule_env_exists():
    referenced = set()
    for rule_file in (REPO / "workflow" / "rules").glob("*.smk"):
        referenced |= set(re.findall(r'"\.\./\.\./envs/([\w-]+\.yaml)"', rule_file.read_text()))
    assert referenced, "no rule declares a conda env"
    assert referenced <= {p.name for p in ENV_FILES}
