"""Site effects on brain-PAD, before and after harmonisation (``stats/harmonisation.tsv``).

Every run writes the table: without harmonisation its ``after`` column is empty and the
``before`` column shows the site effect there is to remove. With ``harmonise.enabled``
(:mod:`brainpad.harmonise.tables`) ``before`` is ``brain_pad_unharmonised`` and ``after``
the harmonised ``brain_pad_corrected``. The measures:

* ``controls_mean`` and ``controls_sd`` per site: the healthy controls' corrected
  brain-PAD (one scan per participant; out-of-fold or held-out predictions);
* ``icc_between_site`` and ``icc_test_retest``: ICC(2,1) of the two scans of participants
  scanned at two sites, or twice at one;
* ``cohens_d`` per patient group against the controls aged ``control_min_age`` or more:
  harmonisation must not erase the disease effect.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from brainpad.local.measures import repeat_pairs
from brainpad.stats.measures import icc_2_1
from brainpad.stats.tables import baseline_scans, compare_groups, comparison_people

COLUMNS = ["measure", "subset", "n", "before", "after"]
BEFORE, AFTER = "brain_pad_unharmonised", "brain_pad_corrected"


def harmonisation_table(
    table: pd.DataFrame, control_group: str, control_min_age: float
) -> pd.DataFrame:
    """The measures of the module, before and after (``after`` NaN when not harmonised).

    Parameters
    ----------
    table : DataFrame
        The brain-age table (``results/ensemble/brain_age.tsv``).
    """
    harmonised = BEFORE in table
    columns = {"before": BEFORE if harmonised else AFTER, "after": AFTER if harmonised else None}
    usable = table[~table["role"].isin(["excluded", "unlabelled"]) & table["age"].notna()]

    def values(frame: pd.DataFrame, which: str) -> pd.Series:
        column = columns[which]
        return frame[column] if column else pd.Series(np.nan, index=frame.index)

    rows = []
    controls = baseline_scans(usable[usable["group"] == control_group])
    for site, part in controls.groupby("site"):
        for measure, reduce in (("controls_mean", "mean"), ("controls_sd", "std")):
            rows.append([measure, site, len(part)] + [
                getattr(values(part, w), reduce)() for w in ("before", "after")
            ])  # fmt: skip
    pairs = repeat_pairs(usable)
    by_scan = usable.set_index("scan_id")
    for kind, part in pairs.groupby("kind"):
        iccs = []
        for which in ("before", "after"):
            scans = by_scan.loc[np.r_[part["first"], part["second"]]]
            score = values(scans, which).to_numpy(float).reshape(2, -1).T
            iccs.append(float(icc_2_1(score)) if len(part) > 1 else np.nan)
        rows.append([f"icc_{kind.replace('-', '_')}", "pairs", len(part), *iccs])
    people = comparison_people(usable, control_group, control_min_age)
    for group in [g for g in people["group"].unique() if g != control_group]:
        pair = [(group, control_group)]
        ds = [
            compare_groups(people.assign(value=values(people, w)), "value", pairs=pair)["d"]
            for w in ("before", "after")
        ]
        n = int(people["group"].isin([group, control_group]).sum())
        rows.append(["cohens_d", f"{group} vs {control_group}", n,
                     *[float(d.iloc[0]) if len(d) else np.nan for d in ds]])  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)
