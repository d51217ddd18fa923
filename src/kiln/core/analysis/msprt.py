"""The mixture sequential probability ratio test and its confidence sequence.

Pure math, written with numpy ufuncs so the same functions serve the judge
(one float at a time) and the benchmark (arrays of thousands of runs).

Setting (Johari, Koomen, Pekelis, Walsh, "Always Valid Inference: Continuous
Monitoring of A/B Tests", Operations Research 70(3), 2022, section 4, the
two-stream normal mSPRT): ``theta_hat`` estimates the difference ``theta``
between canary and baseline, with variance ``var``. Write ``I = 1/var`` (the
information) and ``S = theta_hat * I``; approximately, ``S`` is a Brownian
motion with drift ``theta`` in information time ``I``. For every ``t`` the
likelihood ratio ``exp(t*S - t^2*I/2)`` of drift ``t`` against drift 0 is a
martingale under ``theta = 0``, so any mixture of them over a prior on ``t`` is
too, and Ville's inequality bounds the chance that the mixture ever exceeds
``1/alpha`` by ``alpha``. That is what makes the test valid under continuous
monitoring: we may look after every scrape and stop at the first crossing.

* Two-sided: mix over ``t ~ N(0, tau^2)`` (Johari et al., eq. for the normal
  mSPRT)::

      Lambda = sqrt(V / (V + tau^2)) * exp(tau^2 theta_hat^2 / (2 V (V + tau^2)))

* One-sided ("the canary is worse"): mix over a half-normal on ``t > 0``; the
  integral gives an extra factor ``2 * Phi(theta_hat * tau / sqrt(V (V + tau^2)))``.
  Under ``theta <= 0`` each component is a supermartingale, so the bound holds
  for the whole composite null "canary no worse than baseline".

* Confidence sequence (Howard, Ramdas, McAuliffe, Sekhon, "Time-uniform,
  nonparametric, nonasymptotic confidence sequences", Annals of Statistics
  49(2), 2021, the normal-mixture boundary): with ``rho = 1/tau^2``, the set
  ``|theta_hat - theta| <= sqrt((I + rho) log((I + rho) / (rho alpha^2))) / I``
  covers ``theta`` at every time simultaneously with probability ``1 - alpha``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import log_ndtr

FloatArray = NDArray[np.float64]


def _arrays(*values: ArrayLike) -> list[FloatArray]:
    return [np.asarray(v, dtype=np.float64) for v in values]


def log_lr_two_sided(theta_hat: ArrayLike, var: ArrayLike, tau: ArrayLike) -> Any:
    """log Lambda of the two-sided normal-mixture SPRT of ``theta = 0``."""
    th, v, t = _arrays(theta_hat, var, tau)
    t2 = t * t
    with np.errstate(divide="ignore", invalid="ignore"):
        return 0.5 * np.log(v / (v + t2)) + t2 * th * th / (2.0 * v * (v + t2))


def log_lr_one_sided(theta_hat: ArrayLike, var: ArrayLike, tau: ArrayLike) -> Any:
    """log Lambda of the one-sided (``theta > 0``) half-normal-mixture SPRT.

    Increasing in ``theta_hat`` for a fixed variance: more harm, more evidence.
    """
    th, v, t = _arrays(theta_hat, var, tau)
    t2 = t * t
    with np.errstate(divide="ignore", invalid="ignore"):
        z = th * t / np.sqrt(v * (v + t2))
        return (
            np.log(2.0)
            + 0.5 * np.log(v / (v + t2))
            + t2 * th * th / (2.0 * v * (v + t2))
            + log_ndtr(z)
        )


def cs_half_width(var: ArrayLike, tau: ArrayLike, alpha: float) -> Any:
    """Half-width of the normal-mixture confidence sequence for ``theta``."""
    v, t = _arrays(var, tau)
    with np.errstate(divide="ignore", invalid="ignore"):
        info = 1.0 / v
        rho = 1.0 / (t * t)
        return np.sqrt((info + rho) * np.log((info + rho) / (rho * alpha * alpha))) / info


def proportion_difference(
    canary_events: ArrayLike,
    canary_total: ArrayLike,
    baseline_events: ArrayLike,
    baseline_total: ArrayLike,
    tolerance: float = 0.0,
) -> tuple[Any, Any]:
    """``theta_hat`` and its variance for "canary rate minus (1 + tolerance) x baseline rate".

    The variance uses the pooled rate (the null's common rate) when
    ``tolerance`` is 0 and the two unpooled rates otherwise; rates are shrunk by
    half an event (``(x + 0.5) / (n + 1)``) so that zero events never give a
    zero variance.
    """
    xc, nc, xb, nb = _arrays(canary_events, canary_total, baseline_events, baseline_total)
    with np.errstate(divide="ignore", invalid="ignore"):
        pc = xc / nc
        pb = xb / nb
        theta = pc - (1.0 + tolerance) * pb
        if tolerance == 0.0:
            pooled = (xc + xb + 0.5) / (nc + nb + 1.0)
            var = pooled * (1.0 - pooled) * (1.0 / nc + 1.0 / nb)
        else:
            sc = (xc + 0.5) / (nc + 1.0)
            sb = (xb + 0.5) / (nb + 1.0)
            var = sc * (1.0 - sc) / nc + (1.0 + tolerance) ** 2 * sb * (1.0 - sb) / nb
    return theta, var


# --- counts: the canary's share of events, exact under the null ------------------------
#
# For error rates and "slower than b" latencies kiln does not need the normal
# approximation above. Take one batch (the traffic between two scrapes): the
# canary served ``n_c`` requests and the baseline ``n_b``, and between them they
# made ``m`` events. If every request of both has the same event probability
# (the null: the canary is no worse), the canary's count given ``m`` is
# hypergeometric, whatever that common probability is, and it may drift from
# batch to batch. If instead the canary's event rate is ``r`` times the
# baseline's (a Poisson rate ratio), its count is Binomial(m, q(r)) with
# ``q(r) = r s / (r s + 1 - s)`` and ``s = n_c / (n_c + n_b)``.
#
# The product over batches of ``q(r)/s`` per canary event and
# ``(1 - q(r))/(1 - s)`` per baseline event is the binomial likelihood ratio of
# ``r`` against 1. Under a binomial null it is a martingale with mean 1; the real
# null is hypergeometric, which is smaller than the binomial in the convex order
# (W. Hoeffding, "Probability inequalities for sums of bounded random
# variables", JASA 58, 1963, theorem 4), so for this convex function of the
# count its mean is at most 1: a supermartingale. A canary *better* than the
# baseline makes the count stochastically smaller (Fisher's noncentral
# hypergeometric), which lowers it further. Ville's inequality then bounds the
# chance that it ever reaches ``1/alpha`` by ``alpha``, with no normal
# approximation and no level to estimate. Mixing over several ``r`` with
# weights summing to one keeps all of this. M. Lindon, C. Sanden, V. Shirikian,
# "Rapid Regression Detection in Software Deployments through Sequential
# Testing", KDD 2022, use the same conditional construction for canary counts.


def share_of_events(ratio: ArrayLike, share: ArrayLike) -> Any:
    """``q(r)``: the canary's expected share of events when its rate is ``ratio`` x."""
    r, s = _arrays(ratio, share)
    return r * s / (r * s + 1.0 - s)


def log_lr_share(
    canary_events: ArrayLike,
    baseline_events: ArrayLike,
    share: ArrayLike,
    ratio: ArrayLike,
    null_ratio: ArrayLike = 1.0,
) -> Any:
    """log likelihood ratio of one batch's events: rate ratio ``ratio`` against ``null_ratio``.

    ``share`` is the canary's share of the batch's requests (strictly between 0
    and 1). Zero events give 0: a batch without events carries no evidence.
    """
    xc, xb, s = _arrays(canary_events, baseline_events, share)
    q1 = share_of_events(ratio, s)
    q0 = share_of_events(null_ratio, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        return xc * np.log(q1 / q0) + xb * np.log((1.0 - q1) / (1.0 - q0))


def log_mixture(log_components: ArrayLike, weights: ArrayLike) -> Any:
    """log of ``sum_k weights[k] * exp(log_components[k])`` over the first axis, stably."""
    logs, w = _arrays(log_components, weights)
    shaped = np.log(w).reshape((-1,) + (1,) * (logs.ndim - 1)) + logs
    top = shaped.max(axis=0)
    return top + np.log(np.exp(shaped - top).sum(axis=0))
