"""Special functions: the normal, Student's t, beta and gamma figures the statistics use.

They stand in for scipy.stats and scipy.special because they ship in the
Lambda zip: numpy and scipy would add tens of megabytes to the package and
their import time to every cold start, for a handful of functions. So this
module uses the standard library only (math, statistics.NormalDist). Each
function is checked in tests/test_stats.py against scipy/statsmodels through
the statistics built on it: Student's t p-values and quantiles against
scipy.stats.t up to a trillion participants, the chi-square survival against
scipy.stats.chisquare, the normal tail against statsmodels' log rate ratio
test, and the Stirling log-gamma ratio inside the Bayesian figures against
scipy quadratures of scipy.special's beta densities.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_STANDARD_NORMAL = NormalDist()
_CONTINUED_FRACTION_EPS = 1e-15
_CONTINUED_FRACTION_MAX_ITER = 100_000
_TINY = 1e-300


def clamp_probability(p: float) -> float:
    return min(1.0, max(0.0, p))


def two_sided_z(confidence: float) -> float:
    return _STANDARD_NORMAL.inv_cdf(0.5 + confidence / 2)


def two_sided_normal_p(z: float) -> float:
    # erfc keeps full relative precision far into the tail, unlike 1 - cdf.
    return math.erfc(abs(z) / math.sqrt(2))


def _log_beta_fn(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


# From here on Stirling's series with three correction terms is exact to double precision.
_STIRLING_MIN = 1e6


def log_gamma_ratio(x: float, step: float) -> float:
    """lgamma(x + step) - lgamma(x), without the cancellation of two huge lgammas.

    Stirling's series (Abramowitz & Stegun 6.1.41) for large x:
        lgamma(y) = (y - 1/2) log y - y + log(2 pi)/2 + 1/(12 y) - 1/(360 y^3) + 1/(1260 y^5),
    whose difference is (x - 1/2) log1p(step/x) + step log(x + step) - step + corrections.
    """
    if x < _STIRLING_MIN:
        return math.lgamma(x + step) - math.lgamma(x)
    y = x + step

    def correction(z: float) -> float:
        return 1 / (12 * z) - 1 / (360 * z**3) + 1 / (1260 * z**5)

    return (x - 0.5) * math.log1p(step / x) + step * math.log(y) - step + correction(y) - correction(x)


# Beyond this many degrees of freedom the incomplete beta's continued fraction
# converges too slowly and its lgamma terms lose precision; the first term of
# the large-df expansion is then within 1e-11 of the exact value.
_T_EXPANSION_MIN_DF = 1e5


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom.

    Up to _T_EXPANSION_MIN_DF: I_x(df/2, 1/2) with x = df / (df + t^2)
    (Abramowitz & Stegun, Handbook of Mathematical Functions, Section 26.7).
    Beyond: the expansion in
    powers of 1/df (Fisher (1925), "Expansion of 'Student's' integral in
    powers of n^-1", Metron 5:109-112; also Abramowitz & Stegun Section 26.7)
        P(|T| >= t) = 2 (1 - Phi(t)) + 2 phi(t) (t^3 + t) / (4 df) + O(df^-2).
    """
    if df > _T_EXPANSION_MIN_DF:
        t = abs(t)
        density = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
        return min(1.0, two_sided_normal_p(t) + 2 * density * (t**3 + t) / (4 * df))
    t_squared = t * t
    return _regularized_incomplete_beta(df / (df + t_squared), df / 2, 0.5, complement=t_squared / (df + t_squared))


def student_t_critical(confidence: float, df: float) -> float:
    """t > 0 with P(|T| >= t) = 1 - confidence, by bisection."""
    alpha = 1 - confidence
    low, high = 0.0, max(1.0, 2 * two_sided_z(confidence))
    while student_t_two_sided_p(high, df) > alpha:
        low, high = high, 2 * high
    while high - low > 1e-12 * high:
        middle = (low + high) / 2
        if student_t_two_sided_p(middle, df) > alpha:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def chi_square_survival(statistic: float, df: int) -> float:
    return _regularized_upper_gamma(df / 2, statistic / 2)


def _regularized_incomplete_beta(x: float, a: float, b: float, complement: float | None = None) -> float:
    """I_x(a, b), via the continued fraction (Numerical Recipes' betai).

    `complement` is 1 - x when the caller knows it more precisely than 1 - x rounds.
    """
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    one_minus_x = 1.0 - x if complement is None else complement
    log_x = math.log1p(-complement) if complement is not None and complement < 0.5 else math.log(x)
    log_one_minus_x = math.log(complement) if complement is not None else math.log1p(-x)
    log_front = a * log_x + b * log_one_minus_x - _log_beta_fn(a, b)
    # The fraction converges fast only left of the mean; use the mirror image otherwise.
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _incomplete_beta_fraction(x, a, b) / a
    return 1.0 - math.exp(log_front) * _incomplete_beta_fraction(one_minus_x, b, a) / b


def _incomplete_beta_fraction(x: float, a: float, b: float) -> float:
    """Continued fraction of I_x(a, b), evaluated with the modified Lentz method."""

    def guarded(value: float) -> float:
        return value if abs(value) > _TINY else _TINY

    c = 1.0
    d = 1.0 / guarded(1.0 - (a + b) * x / (a + 1))
    result = d
    for m in range(1, _CONTINUED_FRACTION_MAX_ITER + 1):
        even_step = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        d = 1.0 / guarded(1.0 + even_step * d)
        c = guarded(1.0 + even_step / c)
        result *= d * c
        odd_step = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 / guarded(1.0 + odd_step * d)
        c = guarded(1.0 + odd_step / c)
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < _CONTINUED_FRACTION_EPS:
            return result
    raise ArithmeticError(f"incomplete beta did not converge for x={x}, a={a}, b={b}")


def _regularized_upper_gamma(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a): series below a + 1, continued fraction above."""
    if x <= 0.0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        return 1.0 - math.exp(log_front) * _lower_gamma_series(a, x)
    return math.exp(log_front) * _upper_gamma_fraction(a, x)


def _lower_gamma_series(a: float, x: float) -> float:
    term = total = 1.0 / a
    denominator = a
    for _ in range(_CONTINUED_FRACTION_MAX_ITER):
        denominator += 1
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _CONTINUED_FRACTION_EPS:
            return total
    raise ArithmeticError(f"incomplete gamma series did not converge for a={a}, x={x}")


def _upper_gamma_fraction(a: float, x: float) -> float:
    b = x + 1 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    result = d
    for i in range(1, _CONTINUED_FRACTION_MAX_ITER + 1):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = 1.0 / (d if abs(d) > _TINY else _TINY)
        c = b + an / c
        c = c if abs(c) > _TINY else _TINY
        delta = d * c
        result *= delta
        if abs(delta - 1.0) < _CONTINUED_FRACTION_EPS:
            return result
    raise ArithmeticError(f"incomplete gamma fraction did not converge for a={a}, x={x}")
