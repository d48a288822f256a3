"""The drift statistics (PSI, Kolmogorov-Smirnov, chi-square) and the verdict rule."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from pitstop.config import DriftThresholds
from pitstop.quality.drift import (
    DRIFT,
    OK,
    SKIPPED,
    TOO_FEW,
    bin_counts,
    chi2_homogeneity,
    chi2_sf,
    compare,
    gamma_q,
    kind_of,
    kolmogorov_sf,
    ks_2samp,
    psi,
    quantiles,
)
from pitstop.types import Bool, Bytes, Float32, Int64, String, UnixTimestamp

DEFAULTS = DriftThresholds()


@pytest.mark.parametrize(
    ("stat", "dof", "p"),
    [(3.841, 1, 0.05), (6.635, 1, 0.01), (5.991, 2, 0.05), (18.307, 10, 0.05),
     (23.209, 10, 0.01), (124.342, 100, 0.05), (0.455, 1, 0.5)],
)  # fmt: skip
def test_chi2_survival_matches_the_tables(stat: float, dof: int, p: float) -> None:
    assert chi2_sf(stat, dof) == pytest.approx(p, abs=2e-4)


def test_incomplete_gamma_both_branches_and_edges() -> None:
    # Q(1, x) = exp(-x): the series below a + 1, the continued fraction above
    for x in (0.1, 1.5, 2.5, 30.0):
        assert gamma_q(1.0, x) == pytest.approx(math.exp(-x), rel=1e-9)
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(5.0, 0) == 1.0


@pytest.mark.parametrize(("lam", "p"), [(1.3581, 0.05), (1.6276, 0.01), (1.2239, 0.1)])
def test_kolmogorov_distribution_matches_its_critical_values(lam: float, p: float) -> None:
    assert kolmogorov_sf(lam) == pytest.approx(p, abs=2e-4)
    assert kolmogorov_sf(0.1) == 1.0


def test_ks_statistic_is_the_greatest_distance_between_the_ecdfs() -> None:
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = np.array([3.5, 4.5, 5.5, 6.5])
    d, _ = ks_2samp(a, b)
    assert d == pytest.approx(0.75)  # at 3: 3/4 of a, 0 of b
    assert ks_2samp(a, a)[0] == 0.0


@pytest.mark.parametrize("ties", [True, False])
def test_ks_statistic_equals_the_definition(ties: bool) -> None:
    """Against the ECDFs evaluated at every point of both samples."""
    rng = np.random.default_rng(2)
    for _ in range(20):
        a, b = rng.normal(0, 1, 700), rng.normal(0.1, 1.2, 300)
        if ties:
            a, b = np.round(a, 1), np.round(b, 1)
        points = np.concatenate([a, b])
        ecdf_a = (a[None, :] <= points[:, None]).mean(axis=1)
        ecdf_b = (b[None, :] <= points[:, None]).mean(axis=1)
        assert ks_2samp(a, b)[0] == pytest.approx(np.abs(ecdf_a - ecdf_b).max())


def test_quantiles_and_bin_counts_of_sorted_samples() -> None:
    rng = np.random.default_rng(4)
    values = np.sort(np.round(rng.normal(size=1001), 1))
    q = np.linspace(0, 1, 11)
    assert quantiles(values, q) == pytest.approx(np.quantile(values, q))
    inner = np.array([-1.0, 0.0, 1.0])
    counts = bin_counts(values, inner)
    assert counts.tolist() == [
        int((values < -1).sum()),
        int(((values >= -1) & (values < 0)).sum()),
        int(((values >= 0) & (values < 1)).sum()),
        int((values >= 1).sum()),
    ]


def test_ks_p_values_are_calibrated_under_no_drift() -> None:
    """Under the null hypothesis about 5% of p-values fall below 0.05; a shift of half a
    standard deviation is found nearly every time at these sizes."""
    rng = np.random.default_rng(7)
    null = [ks_2samp(rng.normal(size=300), rng.normal(size=400))[1] for _ in range(400)]
    rate = np.mean(np.array(null) < 0.05)
    assert 0.02 <= rate <= 0.08, rate
    shifted = [ks_2samp(rng.normal(size=300), rng.normal(0.5, size=400))[1] for _ in range(50)]
    assert np.mean(np.array(shifted) < 0.01) >= 0.9


def test_chi2_p_values_are_calibrated_under_no_drift() -> None:
    rng = np.random.default_rng(11)
    shares = [0.5, 0.3, 0.15, 0.05]
    ps = []
    for _ in range(400):
        a = np.bincount(rng.choice(4, 500, p=shares), minlength=4)
        b = np.bincount(rng.choice(4, 700, p=shares), minlength=4)
        ps.append(chi2_homogeneity(a, b)[1])
    assert 0.02 <= np.mean(np.array(ps) < 0.05) <= 0.08


def test_psi_by_hand() -> None:
    ref, cur = np.array([50, 50]), np.array([25, 75])
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert psi(ref, cur) == pytest.approx(expected)
    assert psi(ref, ref) == 0.0
    assert math.isfinite(psi(np.array([10, 0]), np.array([0, 10])))  # empty bins are floored


def _numbers(rng: np.random.Generator, n: int, mean: float, nulls: float = 0.0) -> pa.Array:
    values = rng.normal(mean, 10.0, n)
    mask = rng.random(n) < nulls
    return pa.array(values, mask=mask)


def test_injected_numeric_drift_is_found_and_no_drift_passes() -> None:
    rng = np.random.default_rng(3)
    reference = _numbers(rng, 5000, 50.0)
    same = compare("amount", "numeric", reference, _numbers(rng, 4000, 50.0), DEFAULTS)
    assert same.status == OK and not same.breach
    assert same.psi is not None and same.psi < 0.05
    assert same.ks_p_value is not None and same.ks_p_value > DEFAULTS.p_value
    moved = compare("amount", "numeric", reference, _numbers(rng, 4000, 56.0), DEFAULTS)
    assert moved.status == DRIFT and moved.breach
    assert moved.ks_statistic is not None and moved.ks_statistic > 0.2
    assert moved.histogram is not None
    assert len(moved.histogram.edges) == len(moved.histogram.reference) + 1


def test_a_tiny_significant_shift_is_not_drift() -> None:
    """With 200,000 rows a shift of 0.02 standard deviations is significant but too small
    to matter: the distances decide."""
    rng = np.random.default_rng(5)
    found = compare("x", "numeric", _numbers(rng, 200_000, 50.0), _numbers(rng, 200_000, 50.2),
                    DEFAULTS)  # fmt: skip
    assert found.ks_p_value is not None and found.ks_p_value < DEFAULTS.p_value
    assert found.status == OK


def test_injected_categorical_drift_is_found_and_no_drift_passes() -> None:
    rng = np.random.default_rng(9)
    names = np.array(["bronze", "silver", "gold"])

    def draw(n: int, p: list[float]) -> pa.Array:
        return pa.array(names[rng.choice(3, n, p=p)])

    reference = draw(3000, [0.6, 0.3, 0.1])
    same = compare("segment", "categorical", reference, draw(3000, [0.6, 0.3, 0.1]), DEFAULTS)
    assert same.status == OK
    moved = compare("segment", "categorical", reference, draw(3000, [0.3, 0.3, 0.4]), DEFAULTS)
    assert moved.status == DRIFT
    assert moved.chi2_p_value is not None and moved.chi2_p_value < 1e-10
    assert moved.histogram is not None and set(moved.histogram.categories) == set(names)


def test_many_categories_are_pooled() -> None:
    values = pa.array([f"c{i % 50}" for i in range(5000)])
    found = compare("c", "categorical", values, values, DEFAULTS)
    assert found.histogram is not None
    assert len(found.histogram.categories) == 31 and found.histogram.categories[-1] == "(other)"
    assert found.psi == 0.0


def test_null_rate_change_is_a_breach_of_its_own() -> None:
    rng = np.random.default_rng(1)
    found = compare("x", "numeric", _numbers(rng, 2000, 5.0, nulls=0.01),
                    _numbers(rng, 2000, 5.0, nulls=0.2), DEFAULTS)  # fmt: skip
    assert found.status == OK  # the values themselves did not move
    assert found.null_rate_breach and found.breach
    assert found.null_rate_change == pytest.approx(0.19, abs=0.03)


def test_nan_counts_as_null_and_few_rows_give_no_verdict() -> None:
    values = pa.array([1.0, float("nan"), None, 2.0])
    found = compare("x", "numeric", values, values, DEFAULTS)
    assert found.status == TOO_FEW
    assert found.reference_null_rate == 0.5
    assert compare("x", "Bytes", values, values, DEFAULTS).status == SKIPPED


def test_kinds_by_dtype() -> None:
    assert kind_of(Int64) == kind_of(Float32) == "numeric"
    assert kind_of(String) == kind_of(Bool) == "categorical"
    assert kind_of(Bytes) == "Bytes" and kind_of(UnixTimestamp) == "UnixTimestamp"
