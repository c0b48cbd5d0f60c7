"""stats/front.py: the speed-quality front, with known answers."""

import random

from orchestrator.stats import front


def test_front_keeps_what_no_other_point_beats_on_both_axes():
    points = [(100.0, 0.00), (160.0, 0.01), (150.0, 0.02), (300.0, 0.40), (90.0, 0.00), (300.0, 0.50)]
    # (150, 0.02) is beaten by (160, 0.01); (90, 0) by (100, 0); (300, 0.5) by (300, 0.4)
    assert front.front(points) == [True, True, False, True, False, False]


def test_ties_both_stay_and_one_point_is_its_own_front():
    assert front.front([(1.0, 0.1), (1.0, 0.1)]) == [True, True]
    assert front.front([(5.0, 0.3)]) == [True]
    assert front.front([]) == []
    assert front.beaten((1.0, 0.2), (1.0, 0.1)) and not front.beaten((1.0, 0.1), (1.0, 0.1))


def test_the_sweep_agrees_with_the_definition_on_random_points():
    rng = random.Random(7)
    for _ in range(200):
        points = [(float(rng.randint(1, 6)), float(rng.randint(0, 4))) for _ in range(rng.randint(1, 12))]
        assert front.front(points) == [not any(front.beaten(p, q) for j, q in enumerate(points) if j != i)
                                       for i, p in enumerate(points)]
