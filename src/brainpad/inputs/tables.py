"""BIDS TSV files (participants.tsv, sessions.tsv) read as text and checked against a schema.

Every cell that fails the JSON schema (``brainpad/inputs/schemas/``, shipped with the
package) is reported with its row, column, value and fix, all at once. Two BIDS habits are
read as BIDS means them: a top-coded age such as ``89+`` is read as 89 (with a warning),
and sex ``O``/``other`` as unknown (n/a).
"""

from __future__ import annotations

import io
import logging
import math
import re
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import yaml

from brainpad.inputs.errors import InputError, raise_problems

log = logging.getLogger(__name__)

SEX_CODES = {"m": "M", "male": "M", "f": "F", "female": "F", "o": None, "other": None}
"""Sex as written → M, F or unknown (None): BIDS allows ``O``/``other``, which no sex
covariate can model, so it is read as unknown, like ``n/a``."""
SCHEMAS = Path(__file__).resolve().parent / "schemas"
SCHEMA_PATH = SCHEMAS / "participants.schema.yaml"
SESSIONS_SCHEMA_PATH = SCHEMAS / "sessions.schema.yaml"
MISSING = {"n/a", "na", "nan", ""}
TOP_CODED = re.compile(r"^(\d+(?:\.\d+)?)\s*\+$")
"""A top-coded number (BIDS writes the oldest participants' age as ``89+``)."""


# --------------------------------------------------------------------------- participants
def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The JSON schema of one participants.tsv row."""
    return yaml.safe_load(Path(path).read_text())


def _coerce(value: str, kinds: list[str]) -> object:
    """Turn a TSV cell into the JSON type the schema expects (or leave it for an error)."""
    text = value.strip()
    if text.lower() in MISSING:
        return None if "null" in kinds else text
    if "number" in kinds:
        if top := TOP_CODED.match(text):
            return float(top.group(1))
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def _describe(error: jsonschema.ValidationError) -> str:
    kind = error.validator
    if kind == "type":
        wanted = [t for t in np.atleast_1d(error.validator_value) if t != "null"]
        return "is not a number" if "number" in wanted else f"is not of type {wanted[0]}"
    if kind == "minimum":
        return f"is below the minimum {error.validator_value:g}"
    if kind == "maximum":
        return f"is above the maximum {error.validator_value:g}"
    if kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value if v is not None)
        return f"is not one of {allowed}"
    if kind == "pattern":
        return f"does not match the pattern {error.validator_value}"
    return error.message


def read_tsv(path: Path, what: str) -> pd.DataFrame:
    """Read a BIDS TSV as text cells, or raise an InputError that says what is wrong.

    Refused: a folder in its place, an empty file, text that is not UTF-8, rows that do
    not parse, duplicate or blank column names. A UTF-8 byte-order mark and spaces around
    column names are tolerated; comma-separated files get a hint.
    """
    if path.is_symlink() and not path.exists():
        msg = f"{path} is a broken symbolic link; fix it or copy the {what} file in its place"
        raise InputError(msg)
    if path.is_dir():
        msg = f"{path} is a folder, not a file; replace it with the tab-separated {what} table"
        raise InputError(msg)
    try:
        raw = path.read_bytes()
    except OSError as err:
        msg = f"{path} cannot be read ({err.strerror}); fix its permissions (chmod u+r)"
        raise InputError(msg) from err
    if not raw.strip():
        msg = (
            f"{path} is empty; write a tab-separated header row ({what} columns) and one row "
            "per entry"
        )
        raise InputError(msg)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        msg = (
            f"{path} is not UTF-8 text (byte {err.start}: {raw[err.start : err.start + 1]!r}); "
            "save it as UTF-8 tab-separated text"
        )
        raise InputError(msg) from err
    lines = text.splitlines()
    header = [c.strip() for c in lines[0].split("\t")]
    if len(header) == 1 and "," in header[0]:
        msg = (
            f"{path} has one column '{header[0]}': it looks comma-separated; BIDS tables "
            "are tab-separated — save it as TSV"
        )
        raise InputError(msg)
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled or "" in header:
        names = ", ".join(repr(c) for c in doubled) if doubled else "a blank name"
        msg = f"{path}: the header has {names} more than once or blank; give every column one name"
        raise InputError(msg)
    for number, line in enumerate(lines[1:], start=1):
        cells = line.count("\t") + 1
        if line.strip() and cells != len(header):
            msg = (
                f"{path} row {number} has {cells} cells but the header has {len(header)}; "
                "give every row one cell per column (n/a where a value is missing)"
            )
            raise InputError(msg)
    try:
        table = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, ValueError) as err:
        msg = f"{path} cannot be parsed as a tab-separated table ({err}); save it as UTF-8 TSV"
        raise InputError(msg) from err
    table.columns = header
    return table.apply(lambda column: column.str.strip())


def check_rows(table: pd.DataFrame, schema: dict, path: Path, id_column: str) -> list[dict]:
    """Typed records of ``table``'s rows, or an InputError listing every cell that fails.

    Each cell is coerced to the schema's type (``n/a`` or empty = missing) and the row is
    validated; problems name the file, the row, the entry's id, the column, the value and
    the schema's ``fix``. Ids must be unique.
    """
    missing = [c for c in schema.get("required", []) if c not in table.columns]
    if missing:
        msg = (
            f"{path} has no column(s) {', '.join(missing)} (found: {', '.join(table.columns)}); "
            f"add them: {schema.get('columns_fix', 'see the schema')}"
        )
        raise InputError(msg)
    if table.empty:
        msg = f"{path} has a header but no rows; add one row per {id_column.split('_')[0]}"
        raise InputError(msg)
    properties = schema["properties"]
    validator = jsonschema.Draft202012Validator(schema)
    problems, records = [], []
    for row_number, row in enumerate(table.to_dict("records"), start=1):
        record = {}
        for column, raw in row.items():
            kinds = list(np.atleast_1d(properties.get(column, {}).get("type", ["string", "null"])))
            record[column] = _coerce(raw, kinds)
        if isinstance(record.get("sex"), str):
            record["sex"] = SEX_CODES.get(record["sex"].lower(), record["sex"])
        entry = row.get(id_column, "?")
        for column, raw in row.items():
            if TOP_CODED.match(raw.strip()) and isinstance(record[column], float):
                log.warning(
                    "%s row %d (%s): %s %r is top-coded; read as %g",
                    path.name, row_number, entry, column, raw, record[column],
                )  # fmt: skip
        for error in sorted(validator.iter_errors(record), key=lambda e: list(e.path)):
            column = error.path[0] if error.path else "?"
            fix = properties.get(column, {}).get("fix", "correct the value")
            problems.append(
                f"{path.name} row {row_number} ({entry}): {column} "
                f"{row.get(column, '')!r} {_describe(error)}; {fix}"
            )
        records.append(record)
    ids = table[id_column]
    for entry, rows in ids.groupby(ids).groups.items():
        if len(rows) > 1:
            where = " and ".join(str(r + 1) for r in rows)
            problems.append(
                f"{path.name} rows {where}: {id_column} '{entry}' appears "
                f"{len(rows)} times; each must have exactly one row"
            )
    if problems:
        raise_problems(problems, str(path))
    return records
