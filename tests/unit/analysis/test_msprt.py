"""The mixture likelihood ratios equal their defining integrals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from kiln.core.analysis.msprt import (
    cs_half_width,
    log_lr_one_sided,
    log_lr_two_sided,
    proportion_difference,
)


def mixture(theta_hat: float, var: float, tau: float, *, one_sided: bool) -> float:
    """Integrate the likelihood ratio of drift t against 0 over the mixing density."""

    def integrand(t: float) -> float:
        lr = math.exp((t * theta_hat - t * t / 2.0) / var)
        density = norm.pdf(t, scale=tau) * (2.0 if one_sided else 1.0)
        return lr * density

    low = 0.0 if one_sided else -np.inf
    value, _ = integrate.quad(integrand, low, np.inf, limit=200)
    return float(value)


CASES = [(0.002, 1e-5, 0.01), (-0.003, 4e-6, 0.01), (0.0, 1e-4, 0.02), (0.01, 2e-5, 0.005)]


@pytest.mark.parametrize(("theta_hat", "var", "tau"), CASES)
def test_two_sided_closed_form_matches_the_integral(
    theta_hat: float, var: float, tau: float
) -> None:
    expected = math.log(mixture(theta_hat, var, tau, one_sided=False))
    assert float(log_lr_two_sided(theta_hat, var, tau)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("theta_hat", "var", "tau"), CASES)
def test_one_sided_closed_form_matches_the_integral(
    theta_hat: float, var: float, tau: float
) -> None:
    expected = math.log(mixture(theta_hat, var, tau, one_sided=True))
    assert float(log_lr_one_sided(theta_hat, var, tau)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(("var", "tau", "alpha"), [(1e-5, 0.01, 0.01), (3e-6, 0.002, 0.05)])
def test_the_confidence_sequence_edge_is_where_the_two_sided_test_crosses(
    var: float, tau: float, alpha: float
) -> None:
    half = float(cs_half_width(var, tau, alpha))
    assert float(log_lr_two_sided(half, var, tau)) == pytest.approx(math.log(1 / alpha))


def test_functions_broadcast_over_arrays() -> None:
    theta = np.array([[0.0, 0.01], [0.02, -0.01]])
    out = log_lr_one_sided(theta, 1e-5, 0.01)
    assert out.shape == (2, 2)
    assert out[0, 1] == pytest.approx(float(log_lr_one_sided(0.01, 1e-5, 0.01)))


def test_proportion_difference_uses_the_pooled_variance_under_the_null() -> None:
    theta, var = proportion_difference(20, 1000, 10, 1000)
    pooled = 30.5 / 2001
    assert float(theta) == pytest.approx(0.01)
    assert float(var) == pytest.approx(pooled * (1 - pooled) * 2 / 1000)


def test_zero_errors_still_give_a_positive_variance() -> None:
    _, var = proportion_difference(0, 500, 0, 500)
    assert float(var) > 0
