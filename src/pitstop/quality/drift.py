"""Drift statistics, computed with NumPy over Arrow columns, and the rule that decides.

Per feature, a *reference* sample (a training set, or an earlier window of the serving logs)
is compared with a *current* one (the serving logs of a window):

- **numeric** features (integers, floats): the population stability index (PSI) over ten
  quantile bins of the reference, and the two-sample Kolmogorov–Smirnov test (statistic ``D``,
  the greatest distance between the two empirical distribution functions, and its asymptotic
  p-value);
- **categorical** features (text, booleans): PSI over the categories (the 30 most frequent,
  the rest pooled) and the chi-square test of homogeneity (statistic and p-value);
- **null rate**: the share of null values on each side, and its change.

Null and NaN values are left out of the distributions and counted in the null rate.

**The rule** (``monitoring.thresholds`` in ``feature_store.yaml``, or ``pitstop monitor``'s
flags). A numeric feature drifts when its KS test is significant (``p < p_value``) *and* it
moved far enough: ``D >= ks_statistic`` or ``PSI >= psi``; a categorical feature when its
chi-square test is significant and ``PSI >= psi``. A null-rate change of ``null_rate_change``
or more is a breach of its own. Significance keeps small samples from raising noise;
the distances keep large samples, where every difference is significant, from raising
differences too small to matter. Fewer than ``min_rows`` non-null values on a side: no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from pitstop.config import DriftThresholds

TOP_CATEGORIES = 30
OTHER = "(other)"
PLOT_BINS = 20
_PSI_FLOOR = 1e-4  # a bin's share where one side has no value (PSI would be infinite)

OK, DRIFT, TOO_FEW, SKIPPED = "ok", "drift", "too_few_rows", "skipped"


# --- statistics ---------------------------------------------------------------------------


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two histograms (counts over the same bins):
    ``sum((c - r) * ln(c / r))`` over the bins' shares."""
    import numpy as np

    r = np.maximum(reference / max(reference.sum(), 1), _PSI_FLOOR)
    c = np.maximum(current / max(current.sum(), 1), _PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The two-sample Kolmogorov–Smirnov statistic ``D`` and its asymptotic p-value."""
    import numpy as np

    return ks_sorted(np.sort(a), np.sort(b))


def ks_sorted(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """:func:`ks_2samp` of two samples already sorted. The distance between the two step
    functions is greatest at a value of one of the samples, so each side's distinct values
    (where its own ECDF is known from the positions) are looked up in the other side."""
    import numpy as np

    n, m = len(a), len(b)
    values_a, ecdf_a = _distinct(a)
    values_b, ecdf_b = _distinct(b)
    d = max(float(np.max(np.abs(ecdf_a - np.searchsorted(b, values_a, "right") / m))),
            float(np.max(np.abs(np.searchsorted(a, values_b, "right") / n - ecdf_b))))  # fmt: skip
    en = math.sqrt(n * m / (n + m))
    return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


def _distinct(ordered: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted sample and its ECDF at each (the share at or below)."""
    import numpy as np

    last = np.empty(len(ordered), dtype=bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    last[-1] = True
    at = np.flatnonzero(last)
    return ordered[at], (at + 1) / len(ordered)


def quantiles(ordered: np.ndarray, q: Sequence[float] | np.ndarray) -> np.ndarray:
    """Quantiles of a sorted sample (linear interpolation, as ``numpy.quantile``'s default)."""
    import numpy as np

    at = np.asarray(q, dtype=np.float64) * (len(ordered) - 1)
    low = np.floor(at).astype(np.int64)
    high = np.minimum(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def bin_counts(ordered: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """How many values of a sorted sample fall in each bin ``[inner[i-1], inner[i])``, the
    first and last bins open-ended."""
    import numpy as np

    cuts = np.searchsorted(ordered, inner, side="left")
    return np.diff(np.concatenate([[0], cuts, [len(ordered)]]))


def kolmogorov_sf(lam: float) -> float:
    """``P(K > lam)`` for Kolmogorov's distribution: ``2 sum (-1)^(k-1) exp(-2 k^2 lam^2)``."""
    if lam < 0.2:
        return 1.0
    total, sign = 0.0, 1.0
    for k in range(1, 101):
        term = sign * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
        sign = -sign
    return min(1.0, max(0.0, 2.0 * total))


def chi2_sf(stat: float, dof: int) -> float:
    """``P(X > stat)`` for a chi-square variable with ``dof`` degrees of freedom."""
    if dof <= 0 or stat <= 0:
        return 1.0
    return gamma_q(dof / 2.0, stat / 2.0)


def gamma_q(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function ``Q(a, x)``: a power series below
    ``x = a + 1``, a continued fraction (modified Lentz) above."""
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1.0
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def chi2_homogeneity(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-square test that two samples' category counts come from one distribution."""
    import numpy as np

    keep = (reference + current) > 0
    table = np.vstack([reference[keep], current[keep]]).astype(np.float64)
    if table.shape[1] < 2 or table[0].sum() == 0 or table[1].sum() == 0:
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    return stat, chi2_sf(stat, table.shape[1] - 1)


# --- one feature --------------------------------------------------------------------------


@dataclass(frozen=True)
class Histogram:
    """Counts of both sides over shared bins: ``edges`` (numeric, one more than the counts)
    or ``categories``."""

    reference: list[int]
    current: list[int]
    edges: list[float] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FeatureDrift:
    """The comparison of one feature; ``status`` is ``ok``, ``drift``, ``too_few_rows``
    (no verdict on the distribution) or ``skipped`` (a type drift is not measured for)."""

    feature: str
    kind: str  # "numeric", "categorical" or the dtype skipped
    status: str
    reference_rows: int
    current_rows: int
    reference_null_rate: float
    current_null_rate: float
    null_rate_breach: bool
    psi: float | None = None
    ks_statistic: float | None = None
    ks_p_value: float | None = None
    chi2: float | None = None
    chi2_p_value: float | None = None
    histogram: Histogram | None = None

    @property
    def null_rate_change(self) -> float:
        return self.current_null_rate - self.reference_null_rate

    @property
    def breach(self) -> bool:
        return self.status == DRIFT or self.null_rate_breach

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "histogram"}
        out["null_rate_change"] = self.null_rate_change
        out["breach"] = self.breach
        return out


def compare(
    name: str,
    kind: str,
    reference: pa.ChunkedArray | pa.Array,
    current: pa.ChunkedArray | pa.Array,
    thresholds: DriftThresholds,
    bins: int = 10,
) -> FeatureDrift:
    """Compare one feature's ``reference`` and ``current`` values (``kind``: ``numeric``,
    ``categorical``, anything else is skipped)."""
    ref_n, cur_n = len(reference), len(current)
    ref_values, cur_values = _valid(reference, kind), _valid(current, kind)
    ref_null = 1 - len(ref_values) / ref_n if ref_n else 0.0
    cur_null = 1 - len(cur_values) / cur_n if cur_n else 0.0
    enough_rows = min(ref_n, cur_n) >= thresholds.min_rows
    null_breach = enough_rows and abs(cur_null - ref_null) >= thresholds.null_rate_change
    base: dict[str, Any] = {
        "feature": name, "kind": kind, "reference_rows": ref_n, "current_rows": cur_n,
        "reference_null_rate": ref_null, "current_null_rate": cur_null,
        "null_rate_breach": null_breach,
    }  # fmt: skip
    if kind not in ("numeric", "categorical"):
        return FeatureDrift(status=SKIPPED, **base)
    if min(len(ref_values), len(cur_values)) < thresholds.min_rows:
        return FeatureDrift(status=TOO_FEW, **base)
    if kind == "numeric":
        return _numeric(ref_values, cur_values, thresholds, bins, base)
    return _categorical(ref_values, cur_values, thresholds, base)


def _valid(values: pa.ChunkedArray | pa.Array, kind: str) -> Any:
    """The non-null values: float64 NumPy for numeric, an Arrow array otherwise."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if kind != "numeric":
        return values.drop_null()
    numbers = pc.cast(values.drop_null(), pa.float64()).to_numpy(zero_copy_only=False)
    return numbers[~np.isnan(numbers)]


def _numeric(
    ref: np.ndarray, cur: np.ndarray, t: DriftThresholds, bins: int, base: dict[str, Any]
) -> FeatureDrift:
    import numpy as np

    ref, cur = np.sort(ref), np.sort(cur)  # once: the tests, the bins and the plot use them
    inner = np.unique(quantiles(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    # PSI's bins are (edge, next edge]: a value equal to a quantile counts below it
    ref_counts = np.diff(np.concatenate([[0], np.searchsorted(ref, inner, "right"), [len(ref)]]))
    cur_counts = np.diff(np.concatenate([[0], np.searchsorted(cur, inner, "right"), [len(cur)]]))
    index = psi(ref_counts, cur_counts)
    d, p = ks_sorted(ref, cur)
    drift = p < t.p_value and (d >= t.ks_statistic or index >= t.psi)
    return FeatureDrift(status=DRIFT if drift else OK, psi=index, ks_statistic=d, ks_p_value=p,
                        histogram=_plot_bins(ref, cur), **base)  # fmt: skip


def _plot_bins(ref: np.ndarray, cur: np.ndarray) -> Histogram:
    """Shared equal-width bins over both (sorted) sides; the outer 0.5% of each side's values
    at either end fall in the end bins, so that a few outliers do not squash the picture."""
    import numpy as np

    ends = np.concatenate([quantiles(ref, [0.005, 0.995]), quantiles(cur, [0.005, 0.995])])
    low, high = float(ends.min()), float(ends.max())
    if high <= low:
        low, high = float(min(ref[0], cur[0])), float(max(ref[-1], cur[-1]))
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, PLOT_BINS + 1)
    ref_counts, cur_counts = bin_counts(ref, edges[1:-1]), bin_counts(cur, edges[1:-1])
    return Histogram(ref_counts.tolist(), cur_counts.tolist(), edges=edges.tolist())


def _categorical(
    ref: pa.Array, cur: pa.Array, t: DriftThresholds, base: dict[str, Any]
) -> FeatureDrift:
    import numpy as np

    ref_counts, cur_counts = _counts(ref), _counts(cur)
    order = sorted(set(ref_counts) | set(cur_counts),
                   key=lambda k: (-(ref_counts.get(k, 0) + cur_counts.get(k, 0)), k))  # fmt: skip
    top, rest = order[:TOP_CATEGORIES], order[TOP_CATEGORIES:]
    r = [ref_counts.get(k, 0) for k in top]
    c = [cur_counts.get(k, 0) for k in top]
    if rest:
        top.append(OTHER)
        r.append(sum(ref_counts.get(k, 0) for k in rest))
        c.append(sum(cur_counts.get(k, 0) for k in rest))
    r_arr, c_arr = np.array(r, dtype=np.int64), np.array(c, dtype=np.int64)
    index = psi(r_arr, c_arr)
    stat, p = chi2_homogeneity(r_arr, c_arr)
    drift = p < t.p_value and index >= t.psi
    return FeatureDrift(status=DRIFT if drift else OK, psi=index, chi2=stat, chi2_p_value=p,
                        histogram=Histogram(r, c, categories=top), **base)  # fmt: skip


def _counts(values: pa.Array) -> dict[str, int]:
    import pyarrow.compute as pc

    counted = pc.value_counts(values)
    keys = counted.field("values").to_pylist()
    counts = counted.field("counts").to_pylist()
    return {_category(k): int(n) for k, n in zip(keys, counts, strict=True)}


def _category(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def kind_of(dtype: Any) -> str:
    """``numeric``, ``categorical``, or the dtype's name (not measured) for a feature dtype."""
    from pitstop.types import Bool, Float32, Float64, Int32, Int64, String

    if dtype in (Int32, Int64, Float32, Float64):
        return "numeric"
    if dtype in (String, Bool):
        return "categorical"
    return str(dtype)
