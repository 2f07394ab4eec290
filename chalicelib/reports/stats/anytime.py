"""An exact anytime-valid test of two conversion rates, and its confidence sequence for their ratio.

Lindon & Malek (2022), "Anytime-valid inference for multinomial count data",
NeurIPS 35 (arXiv:2011.03567), Sections 3-4: events that fall into one of k
streams are a multinomial sequence; a Dirichlet mixture of multinomial
likelihoods over the null's likelihood is a nonnegative martingale under the
null, so by Ville's inequality it exceeds 1/alpha at any time with probability
at most alpha, however often it is looked at. Their Section 5 applies it to
the rates of counting processes: given that an event happens, the stream it
falls into is multinomial with probabilities proportional to allocation x rate.

Here k = 2 and the events are conversions. Each participant is assigned to the
variant with probability pi0 and converts with the arm's rate, independently of
the others; so, given that a participant converted, it is in the variant with
probability

    pi(theta) = pi0 theta / (pi0 theta + 1 - pi0),   theta = r_v / r_c,

and the arms of successive converters are independent Bernoulli(pi(theta)):
exactly, at any counts, whatever the base rate (no normal approximation).
With x_v and x_c converters, the Beta(a, b) mixture (a = kappa pi0,
b = kappa (1 - pi0), centred on the null) against the likelihood at theta is

    E(theta) = B(a + x_v, b + x_c) / B(a, b) / (pi(theta)^x_v (1 - pi(theta))^x_c),

the always-valid p-value is min(1, 1 / E(1)) and the confidence sequence is
{theta : E(theta) < 1 / alpha}: an interval (the log likelihood is concave in
logit pi), which excludes 1 exactly when p < alpha. pi0 is the observed share
of participants in the variant (the design share, measured).

Tuning: the mixture is tightest near kappa + 1 = T* / (-2 log alpha + log(1 - 2 log alpha))
conversions T* (the optimum of the matching normal mixture: Waudby-Smith,
Arbour, Sinha, Kennedy & Ramdas (2024), Annals of Statistics 52(6), Section 2
and Appendix, with rho^2 = 1 / (kappa + 1) the prior's variance of the
conversion share over its Bernoulli variance); T* is the planned participants
times the pooled conversion rate seen so far, and kappa is at least 1.
"""

from __future__ import annotations

import math

_MIN_CONCENTRATION = 1.0
_BISECTION_STEPS = 80
# Bisection stops within this relative (and absolute) step: far below any figure shown.
_TOLERANCE = 1e-10
_TINY_STEP = 1e-14
_LOGIT_REACH = 60.0


def concentration(planned_participants: float, pooled_rate: float, confidence: float) -> float:
    """kappa: the Beta mixture's prior sample size, tuned to the conversions expected at the plan."""
    alpha = 1 - confidence
    planned_conversions = planned_participants * pooled_rate
    optimum = (-2 * math.log(alpha) + math.log(1 - 2 * math.log(alpha)))
    return max(_MIN_CONCENTRATION, planned_conversions / optimum - 1)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _log_likelihood(variant: int, control: int, share_logit: float) -> float:
    """x_v log pi + x_c log(1 - pi), with pi = logistic(share_logit), without overflow."""
    log_pi = -math.log1p(math.exp(-share_logit)) if share_logit > -30 else share_logit
    log_one_minus = -math.log1p(math.exp(share_logit)) if share_logit < 30 else -share_logit
    return (variant * log_pi if variant else 0.0) + (control * log_one_minus if control else 0.0)


def log_mixture(variant: int, control: int, share: float, kappa: float) -> float:
    """log of the Beta(kappa share, kappa (1 - share)) mixture likelihood of the converters' arms."""
    a, b = kappa * share, kappa * (1 - share)
    return _log_beta(a + variant, b + control) - _log_beta(a, b)


def log_e_value(variant: int, control: int, share: float, kappa: float, theta: float = 1.0) -> float:
    """log E(theta) for x_v variant and x_c control converters, pi0 = share."""
    share_logit = math.log(share / (1 - share)) + math.log(theta)
    return log_mixture(variant, control, share, kappa) - _log_likelihood(variant, control, share_logit)


def p_value(variant: int, control: int, share: float, kappa: float) -> float:
    return math.exp(min(0.0, -log_e_value(variant, control, share, kappa)))


def ratio_sequence(variant: int, control: int, share: float, kappa: float, confidence: float) -> tuple[float, float]:
    """{theta : E(theta) < 1 / alpha}: the confidence sequence of r_v / r_c; 0 and inf where open."""
    # E(theta) < 1/alpha  <=>  log likelihood(theta) > log mixture - log(1/alpha)
    threshold = log_mixture(variant, control, share, kappa) - math.log(1 / (1 - confidence))
    null_logit = math.log(share / (1 - share))
    if variant and control:
        estimate = math.log(variant / control)
    else:
        estimate = _LOGIT_REACH if variant else -_LOGIT_REACH if control else null_logit

    def inside(logit: float) -> bool:
        return _log_likelihood(variant, control, logit) > threshold

    low = _edge(inside, estimate, -_LOGIT_REACH + null_logit)
    high = _edge(inside, estimate, _LOGIT_REACH + null_logit)
    # logit pi = logit pi0 + log theta
    return (0.0 if low <= -_LOGIT_REACH + null_logit else math.exp(low - null_logit),
            math.inf if high >= _LOGIT_REACH + null_logit else math.exp(high - null_logit))


def _edge(inside, start: float, end: float) -> float:
    if inside(end):
        return end
    for _ in range(_BISECTION_STEPS):
        if abs(end - start) <= _TOLERANCE * abs(start) + _TINY_STEP:
            break
        middle = (start + end) / 2
        if inside(middle):
            start = middle
        else:
            end = middle
    return start
