"""stats/front.py: the speed-quality front, with known answers."""

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
