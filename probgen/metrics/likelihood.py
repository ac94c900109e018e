"""Negative log-likelihood and bits per dimension with their standard errors.

From per-example log-likelihoods ``l_i`` (nats, data units) of ``N`` test examples with ``D``
dimensions each:

    NLL = -1/N sum_i l_i,             se(NLL) = s / sqrt(N)   (s: sample std of l, ddof = 1)
    bits/dim = NLL / (D ln 2),        se(bits/dim) = se(NLL) / (D ln 2)

For discrete data dequantised with uniform noise, a continuous density's bits/dim is an upper
bound on the discrete model's; for an ELBO, NLL is an upper bound on the true NLL.

References: Theis et al. 2016, "A note on the evaluation of generative models".
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from probgen.errors import DataError
from probgen.metrics._arrays import as_float64

if TYPE_CHECKING:
    from numpy.typing import ArrayLike


def likelihood_summary(log_likelihoods: ArrayLike, dim: int) -> dict[str, float]:
    """``dict(nll, nll_se, bits_per_dim, bits_per_dim_se)`` from per-example ``log_likelihoods``."""
    ll = as_float64(log_likelihoods, "log_likelihoods", ndim=1)
    if ll.size < 2:
        raise DataError(f"a standard error needs at least 2 log-likelihoods, got {ll.size}")
    nll = float(-ll.mean())
    nll_se = float(ll.std(ddof=1) / math.sqrt(ll.size))
    scale = dim * math.log(2.0)
    return {
        "nll": nll,
        "nll_se": nll_se,
        "bits_per_dim": nll / scale,
        "bits_per_dim_se": nll_se / scale,
    }
