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
