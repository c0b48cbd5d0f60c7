"""The front of points not beaten on both axes: faster and with less quality loss (pure).

A point is beaten when another is at least as fast with at most as much loss, and better in
one of the two. The points left are the front: the choices worth making, each buying speed
with quality or quality with speed. Ties (the same speed and loss twice) both stay.
"""

from __future__ import annotations

from collections.abc import Sequence


def beaten(point: tuple[float, float], by: tuple[float, float]) -> bool:
    """Whether ``by`` (speed, loss) beats ``point``: no slower, no more loss, and better in one."""
    return by[0] >= point[0] and by[1] <= point[1] and (by[0] > point[0] or by[1] < point[1])


def front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For each (speed, loss), whether no other point beats it (quadratic: a chart's few points)."""
    return [not any(beaten(p, q) for j, q in enumerate(points) if j != i) for i, p in enumerate(points)]
