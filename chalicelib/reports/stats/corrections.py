"""Multiple comparisons: Holm's step-down and the Benjamini-Hochberg step-up procedure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Correction = Literal["holm", "bh", "none"]
CORRECTIONS: tuple[Correction, ...] = ("holm", "bh", "none")


def adjust_p_values(p_values: Sequence[float | None], method: Correction) -> list[float | None]:
    """Adjusted p-values of one family of comparisons; None entries are not part of it.

    holm: Holm (1979), "A simple sequentially rejective multiple test
    procedure", Scand. J. Statist. 6:65-70, controls the family-wise error:
    with p sorted ascending, adjusted_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    bh: Benjamini & Hochberg (1995), "Controlling the false discovery rate",
    JRSS B 57:289-300, controls the false discovery rate:
    adjusted_(i) = min_{j >= i} min(1, m p_(j) / j).
    none: the raw p-values.
    """
    if method not in CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {method!r}")
    present = sorted((p, index) for index, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = list(p_values)
    m = len(present)
    if method == "holm":
        running = 0.0
        for rank, (p, index) in enumerate(present):
            running = max(running, min(1.0, (m - rank) * p))
            adjusted[index] = running
    elif method == "bh":
        running = 1.0
        for rank in range(m - 1, -1, -1):
            p, index = present[rank]
            running = min(running, m * p / (rank + 1))
            adjusted[index] = min(1.0, running)
    return adjusted
