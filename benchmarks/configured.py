"""A config's settings for one architecture, completed with the schema's defaults (the
benchmarks train models outside the workflow with what the workflow would give them)."""

from __future__ import annotations

from pathlib import Path

import yaml
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"


def model_params(config_path: Path, architecture: str, max_epochs: int | None = None) -> dict:
    """``models.<architecture>`` of the config at ``config_path`` with the schema's
    defaults, without the keys that only name base models (inputs, regions, members);
    ``max_epochs`` overrides the epochs (and the patience)."""
    config = yaml.safe_load(Path(config_path).read_text())
    validate(config, str(SCHEMA))
    params = dict(config["models"][architecture])
    for key in ("inputs", "regions", "members"):
        params.pop(key, None)
    if max_epochs:
        params.update(max_epochs=max_epochs, patience=max_epochs)
    return params
