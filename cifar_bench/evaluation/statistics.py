"""95% intervals for the results table, in plain Python (scipy is used for t quantiles when installed).

- one run: the Wilson score interval of its accuracy on the test images (binomial);
- several runs (seeds) of one model: a t-interval of the mean accuracy across runs;
- two models on the same test images: the accuracy difference with a normal interval on the
  discordant pairs, and McNemar's exact (binomial) p-value;
- two models without their predictions: the difference of their accuracies with Newcombe's hybrid
  interval built from each one's own interval (as if independent: wider than the paired one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Z_975 = 1.959963984540054
# Two-sided 95% quantiles t_{0.975, df} for df = 1..30 (standard tables).
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_quantile(df: int) -> float:
    """t_{0.975} with ``df`` degrees of freedom: scipy's if installed, else the table (the normal quantile past 30)."""
    if df < 1:
        raise ValueError(f"need at least one degree of freedom (got {df})")
    try:
        from scipy.stats import t
    except ImportError:
        return T_975[df - 1] if df <= len(T_975) else Z_975
    return float(t.ppf(0.975, df))


def wilson_interval(correct: float, n: int, z: float = Z_975) -> tuple[float, float]:
    """Wilson score interval of a proportion correct / n."""
    if n <= 0:
        raise ValueError("no trials")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def t_interval(values: Sequence[float]) -> tuple[float, float]:
    """Mean ± t_{0.975, n-1} · s / √n over two values or more."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def mcnemar_exact_p(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: the binomial(b + c, 1/2) test on the discordant pairs."""
    n = b + c
    if n == 0:
        return 1.0
    log_half = n * math.log(0.5)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + log_half)
        for k in range(min(b, c) + 1)
    )
    return min(1.0, 2 * tail)


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
        "first_accuracy": sum(right_a) / n,
        "second_accuracy": sum(right_b) / n,
        "difference": difference,
        "ci_low": difference - Z_975 * se,
        "ci_high": difference + Z_975 * se,
        "only_first_right": only_first,
        "only_second_right": only_second,
        "mcnemar_p": mcnemar_exact_p(only_first, only_second),
    }


def newcombe_difference(
    first: tuple[float, float, float], second: tuple[float, float, float]
) -> tuple[float, float, float]:
    """The difference of two accuracies, each given as (estimate, low, high) of its 95% interval, with
    Newcombe's hybrid interval (his method 10 for Wilson intervals; used here for t intervals too)."""
    (p1, l1, u1), (p2, l2, u2) = first, second
    difference = p1 - p2
    return difference, difference - math.hypot(p1 - l1, u2 - p2), difference + math.hypot(u1 - p1, p2 - l2)
