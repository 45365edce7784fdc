"""Intervals for panel metrics replicated over held-out samples and training seeds.

A method's score is a (K seeds x J units) table of cell means: a unit is one held-out (treatment, sample), so
that the replicates and angles of one sample, which share its spectrum, count once. Samples and seeds are crossed
random factors; the mean's variance is estimated by the sum of the two marginal terms,

    se^2 = s^2_units / J + s^2_seeds / K      (s^2_units: variance of the J unit means over seeds, s^2_seeds:
                                                of the K seed means over units)

with Welch-Satterthwaite degrees of freedom. The residual (seed x unit) variance enters both terms, so the
interval errs wide, never narrow; a deterministic method (K = 1) keeps the unit term alone, a t interval
over units. Calibration on nulls with unit and seed effects: tests/test_denoise_intervals.py.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from ..errors import GensynthError


def crossed_interval(cells: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """Mean and ``level`` interval of a (K seeds, J units) table (K may be 1); J must be at least 2."""
    cells = np.atleast_2d(np.asarray(cells, dtype=np.float64))
    seeds, units = cells.shape
    if units < 2:
        raise GensynthError(f"an interval over held-out samples needs at least 2 samples in the panel, got {units}")
    terms = [(cells.mean(axis=0).var(ddof=1) / units, units - 1)]
    if seeds > 1:
        terms.append((cells.mean(axis=1).var(ddof=1) / seeds, seeds - 1))
    variance = sum(term for term, _ in terms)
    mean = float(cells.mean())
    if variance == 0.0:  # every cell equal: the methods agree exactly (the identity against the raw spectra)
        return {"mean": mean, "low": mean, "high": mean, "se": 0.0, "df": float(units - 1), "seeds": seeds, "units": units}
    df = variance**2 / sum(term**2 / dof for term, dof in terms)
    half = float(stats.t.ppf(0.5 + level / 2, df)) * np.sqrt(variance)
    return {"mean": mean, "low": mean - half, "high": mean + half, "se": float(np.sqrt(variance)), "df": float(df), "seeds": seeds, "units": units}
