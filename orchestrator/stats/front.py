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
    """For each (speed, loss), whether no other point beats it: one sweep from the fastest down (n log n).

    A point survives the faster points when its loss is below the least loss among them, and the points of its
    own speed when its loss is the least among those."""
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], points[i][1]))
    kept = [False] * len(points)
    best = float("inf")  # the least loss of the points strictly faster than the current speed
    start = 0
    while start < len(order):
        speed, least = points[order[start]]
        end = start
        while end < len(order) and points[order[end]][0] == speed:
            kept[order[end]] = points[order[end]][1] == least and least < best
            end += 1
        best = min(best, least)
        start = end
    return kept
