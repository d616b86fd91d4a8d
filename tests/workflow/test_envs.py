"""The conda envs used by `--use-conda` must pin exactly what pyproject.toml pins, and each
rule's env must hold every package its `brainpad <command>` imports."""

from __future__ import annotations

import argparse
import ast
import functools
import inspect
import re
import sys
import textwrap
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

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


def env_pins(env_file: Path) -> dict[str, str]:
    """The pip pins of a conda env file."""
    env = yaml.safe_load(env_file.read_text())
    return pins(next(d["pip"] for d in env["dependencies"] if isinstance(d, dict)))


@pytest.fixture(scope="module")
def project_pins() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    return pins(project["dependencies"]) | {k: v for e in extras for k, v in pins(e).items()}


def test_there_are_envs():
    assert {p.stem for p in ENV_FILES} >= {"simulate", "inputs"}


@pytest.mark.parametrize("env_file", ENV_FILES, ids=lambda p: p.name)
def test_env_pins_match_pyproject(env_file, project_pins):
    env = yaml.safe_load(env_file.read_text())
    assert env["channels"] == ["conda-forge"]
    deps = env["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    for name, version in env_pins(env_file).items():
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


# --- every rule's env holds what its command imports -------------------------------------

SRC = REPO / "src"


def rule_commands() -> list[tuple[str, str, str]]:
    """(rule, env file name, brainpad subcommand) for every rule that calls brainpad."""
    found = []
    for rule_file in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        blocks = re.split(r"^[ ]*(?:rule|checkpoint) (\w+):", rule_file.read_text(), flags=re.M)
        for rule, body in zip(blocks[1::2], blocks[2::2], strict=True):
            env = re.search(r'"\.\./\.\./envs/([\w-]+\.yaml)"', body)
            for command in re.findall(r"\bbrainpad ([a-z][a-z-]*)", body):
                found.append((rule, env[1] if env else "", command))
    return found


def _module_file(name: str) -> Path | None:
    """The source file of brainpad module ``name``, or None if it is not one."""
    base = SRC.joinpath(*name.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.AST) -> set[str]:
    """Modules imported anywhere under ``tree`` except ``if TYPE_CHECKING:`` blocks.

    ``from pkg import name`` counts ``pkg.name`` too when that is a brainpad module.
    """
    names: set[str] = set()
    pending = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        pending.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {
                f"{node.module}.{alias.name}"
                for alias in node.names
                if _module_file(f"{node.module}.{alias.name}")
            }
    return names


@functools.cache
def _module_imports(name: str) -> frozenset[str]:
    """Every import of brainpad module ``name`` (parsed once per test session)."""
    return frozenset(_imports(ast.parse(_module_file(name).read_text())))


def third_party_imports(command: str) -> set[str]:
    """Top-level third-party packages a ``brainpad <command>`` run may import.

    The closure starts at the command's handler function and at the CLI modules' own
    top-level imports; a brainpad module contributes all its imports, deferred ones
    included (a conservative bound), and importing ``a.b`` imports package ``a`` first.
    """
    from brainpad.cli import STAGES, build_parser

    subparsers = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    handler = subparsers.choices[command].get_default("func")
    pending = _imports(ast.parse(textwrap.dedent(inspect.getsource(handler))))
    cli_modules = (
        {"brainpad", "brainpad.cli"}
        | {f"brainpad.cli.{stage.__name__.rsplit('.', 1)[-1]}" for stage in STAGES}
        | {"brainpad.cli.common"}
    )
    for cli_module in cli_modules:
        tree = ast.parse(_module_file(cli_module).read_text())
        tree.body = [node for node in tree.body if not isinstance(node, ast.FunctionDef)]
        pending |= _imports(tree)
    seen = set(cli_modules)
    outside: set[str] = set()
    while pending:
        parts = pending.pop().split(".")
        if parts[0] != "brainpad":
            outside.add(parts[0])
            continue
        for depth in range(1, len(parts) + 1):
            module = ".".join(parts[:depth])
            if module not in seen and _module_file(module) is not None:
                seen.add(module)
                pending |= _module_imports(module)
    return {
        name for name in outside if name not in sys.stdlib_module_names and name != "__future__"
    }


def test_every_rule_calls_brainpad():
    text = "".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    declared = set(re.findall(r"^[ ]*(?:rule|checkpoint) (\w+):", text, flags=re.M))
    assert declared
    assert {rule for rule, _, _ in rule_commands()} == declared


@pytest.mark.parametrize(
    ("rule", "env_file", "command"), rule_commands(), ids=lambda value: str(value)
)
def test_rule_env_holds_its_command_imports(rule, env_file, command):
    assert env_file, f"rule {rule} declares no conda env"
    importable = {
        package: {re.sub(r"[-_.]+", "-", d).lower() for d in dists}
        for package, dists in packages_distributions().items()
    }
    available = {re.sub(r"[-_.]+", "-", name) for name in env_pins(REPO / "envs" / env_file)}
    missing = {
        package
        for package in third_party_imports(command)
        if not importable.get(package, set()) & available
    }
    assert not missing, (
        f"rule {rule} runs `brainpad {command}` in envs/{env_file}, which lacks the "
        f"distributions of {sorted(missing)}"
    )
