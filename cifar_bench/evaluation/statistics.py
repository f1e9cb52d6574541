"""95% intervals for the results table, from scipy.stats:

- one run: the Wilson score interval of its accuracy on the test images (binomial);
- several runs (seeds) of one model: a t-interval of the mean accuracy across runs;
- two models on the same test images: the accuracy difference with a normal interval on the
  discordant pairs, and McNemar's exact (binomial) p-value; over several seeds of both, the mean of
  each seed's paired difference, its interval widened by the test images' own sampling noise;
- two models without their predictions: the difference of their accuracies with Newcombe's hybrid
  interval built from each one's own interval (as if independent: wider than the paired one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from scipy import stats

CONFIDENCE = 0.95
Z_975 = float(stats.norm.ppf(0.975))


def wilson_interval(correct: int, n: int) -> tuple[float, float]:
    """Wilson score interval of a proportion correct / n."""
    interval = stats.binomtest(correct, n).proportion_ci(CONFIDENCE, method="wilson")
    return float(interval.low), float(interval.high)


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean ± t_{0.975, n-1} · s / √n over two values or more (the mean itself when they all agree)."""
    mean = sum(values) / len(values)
    half = float(stats.t.ppf(0.975, len(values) - 1) * stats.sem(values))
    return mean - half, mean + half


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the binomial(b + c, 1/2) test on the discordant pairs."""
    return float(stats.binomtest(b, b + c).pvalue) if b + c else 1.0


def paired_difference(labels: Sequence[int], first: Sequence[int], second: Sequence[int]) -> dict:
    """Accuracy of ``first`` minus that of ``second`` on the same images, with its 95% interval
    (normal approximation for paired proportions) and McNemar's exact p-value."""
    n = len(labels)
    if not n or len(first) != n or len(second) != n:
        raise ValueError("the two models' predictions must cover the same, non-empty set of images")
    right_a = [p == y for p, y in zip(first, labels)]
    right_b = [p == y for p, y in zip(second, labels)]
    only_first = sum(a and not b for a, b in zip(right_a, right_b))
    only_second = sum(b and not a for a, b in zip(right_a, right_b))
    difference = (only_first - only_second) / n
    se = math.sqrt(max(0.0, only_first + only_second - (only_first - only_second) ** 2 / n)) / n
    return {
        "images": n,
        "se": se,
        "first_accuracy": sum(right_a) / n,
        "second_accuracy": sum(right_b) / n,
        "difference": difference,
        "ci_low": difference - Z_975 * se,
        "ci_high": difference + Z_975 * se,
        "only_first_right": only_first,
        "only_second_right": only_second,
        "mcnemar_p": mcnemar_exact_p(only_first, only_second),
    }


def seeds_difference_interval(differences: Sequence[float], standard_errors: Sequence[float]) -> tuple[float, float]:
    """95% interval of the mean of several seeds' paired differences on one test set: the seeds' spread (t over
    the seeds) and the test images' sampling noise, which every seed shares and their spread therefore leaves
    out (each seed's paired standard error, averaged), added in quadrature."""
    mean = sum(differences) / len(differences)
    seeds = float(stats.t.ppf(0.975, len(differences) - 1) * stats.sem(differences))
    images = Z_975 * sum(standard_errors) / len(standard_errors)
    half = math.hypot(seeds, images)
    return mean - half, mean + half


def newcombe_difference(
    first: tuple[float, float, float], second: tuple[float, float, float]
) -> tuple[float, float, float]:
    """The difference of two accuracies, each given as (estimate, low, high) of its 95% interval, with
    Newcombe's hybrid interval (his method 10 for Wilson intervals; used here for t intervals too).
    scipy has no such interval for a difference."""
    (p1, l1, u1), (p2, l2, u2) = first, second
    difference = p1 - p2
    return difference, difference - math.hypot(p1 - l1, u2 - p2), difference + math.hypot(u1 - p1, p2 - l2)
