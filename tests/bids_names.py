"""Files of a BIDS-derivatives dataset checked against the BIDS schema's own rules
(``bidsschematools``: the entities, their order, the suffixes, extensions and data types
of the derivative imaging files), the dataset's ``.bidsignore`` honoured.

bidsschematools' validator knows only raw data, so the rules are read from its schema.
"""

from __future__ import annotations

import fnmatch
import re
from functools import cache
from pathlib import Path

NAME = re.compile(
    r"^(?P<entities>(?:[a-zA-Z]+-[A-Za-z0-9]+_)*)(?P<suffix>[A-Za-z0-9]+)(?P<ext>\..+)$"
)
TOP_LEVEL = {"dataset_description.json", ".bidsignore", "README", "README.md", "CHANGES"}


@cache
def schema_rules() -> tuple[dict[str, str], list[str], list[dict]]:
    """Short entity name → long name, the entities' order, and the derivative imaging
    file rules, from the installed BIDS schema."""
    from bidsschematools.schema import load_schema

    schema = load_schema()
    names = {entity["name"]: key for key, entity in schema.objects.entities.items()}
    rules = [dict(rule) for rule in schema.rules.files.deriv.imaging.values()]
    return names, list(schema.rules.entities), rules


def name_problems(path: str) -> list[str]:
    """Why ``path`` (relative to its dataset's root) breaks the BIDS rules (none: it is a
    valid derivative file)."""
    parts = Path(path).parts
    if len(parts) == 1 and parts[0] in TOP_LEVEL:
        return []
    found = NAME.match(parts[-1])
    if not found:
        return [f"{path}: not <key>-<value>_..._<suffix>.<extension>"]
    names, order, rules = schema_rules()
    pairs = [p.split("-", 1) for p in found["entities"].rstrip("_").split("_") if p]
    keys = [k for k, _ in pairs]
    problems = [f"{path}: unknown entity {k}" for k in keys if k not in names]
    if problems:
        return problems
    long = [names[k] for k in keys]
    if [order.index(k) for k in long] != sorted(order.index(k) for k in long):
        problems.append(f"{path}: entities {keys} not in the schema's order")
    values = dict(pairs)
    folders = [f"sub-{values.get('sub')}"] + ([f"ses-{values['ses']}"] if "ses" in values else [])
    if list(parts[:-2]) != folders:
        return [*problems, f"{path}: not in {'/'.join(folders)}/<datatype>/"]
    if "run" in values and not values["run"].isdigit():
        problems.append(f"{path}: run-{values['run']} is not an index")
    datatype = parts[-2] if len(parts) > 1 else ""
    matching = [
        rule
        for rule in rules
        if found["suffix"] in rule["suffixes"]
        and found["ext"] in rule["extensions"]
        and datatype in rule["datatypes"]
        and set(long) <= set(rule["entities"])
        and all(k in long for k, v in rule["entities"].items() if v == "required")
    ]
    if not matching:
        problems.append(
            f"{path}: no derivative rule of the schema has suffix {found['suffix']}, "
            f"extension {found['ext']}, data type {datatype!r} and entities {keys}"
        )
    return problems


def dataset_problems(root: Path) -> list[str]:
    """:func:`name_problems` of every file under ``root`` that its ``.bidsignore`` does not
    exclude (hidden files are ignored, as by BIDS), and whether ``root`` describes itself."""
    ignore = root / ".bidsignore"
    patterns = [
        line.strip()
        for line in (ignore.read_text().splitlines() if ignore.is_file() else [])
        if line.strip() and not line.startswith("#")
    ]
    problems = [] if (root / "dataset_description.json").is_file() else ["no description"]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root).as_posix()
        if path.name.startswith(".") and path.name != ".bidsignore":
            continue  # BIDS ignores hidden files (Snakemake's .snakemake_timestamp)
        if not any(_ignored(relative, pattern) for pattern in patterns):
            problems += name_problems(relative)
    return problems


def _ignored(relative: str, pattern: str) -> bool:
    """Whether a .bidsignore pattern (gitignore-like) excludes ``relative``."""
    if pattern.endswith("/"):
        return relative.startswith(pattern) or f"/{pattern}" in f"/{relative}"
    return fnmatch.fnmatch(Path(relative).name, pattern) or fnmatch.fnmatch(relative, pattern)
