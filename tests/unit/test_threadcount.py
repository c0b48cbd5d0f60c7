"""The one rule for threads used, over raw per-thread CPU seconds."""

import pytest

from orchestrator.results.threadcount import ThreadCpu, derive, from_result


def threads(*cpu_s, pid=None):
    return [ThreadCpu(tid=100 + i, cpu_s=c, pid=pid) for i, c in enumerate(cpu_s)]


def test_compute_threads_count_and_helpers_do_not():
    verdict = derive(2, threads(1.0, 0.8, 0.01, 0.0), engine_reported=2)
    assert verdict.used == 2 and verdict.basis == "per-thread CPU" and verdict.counted == (100, 101)
    assert verdict.problem() is None


def test_the_boundary_is_ten_percent_of_the_busiest():
    assert derive(2, threads(1.0, 0.1), None).used == 2
    assert derive(2, threads(1.0, 0.0999), None).used == 1


def test_fewer_threads_than_asked_is_a_finding_not_an_invalid_cell():
    # The engine claims 2 threads, but only one did the work: counted from the raw figures,
    # shown as a note (an engine may leave a thread idle on a small model, or ignore the knob).
    verdict = derive(2, threads(1.0, 0.02), engine_reported=2)
    assert verdict.used == 1 and verdict.problem() is None
    assert "1 of the 2 threads" in verdict.shortfall() and verdict.to_json()["note"] == verdict.shortfall()
    assert derive(2, threads(1.0, 0.9), 2).shortfall() is None


def test_one_thread_too_many_is_caught():
    assert "ran with 3 threads" in derive(2, threads(1.0, 0.9, 0.95), 2).problem()


def test_threads_of_a_child_process_tree_count_too():
    # A server engine: the runner's own process idles, the server's two workers compute.
    figures = threads(0.001, pid=1) + [ThreadCpu(200, 2.0, "worker", 7), ThreadCpu(201, 1.9, "worker", 7)]
    verdict = derive(2, figures, None)
    assert verdict.used == 2 and verdict.counted == (200, 201)


def test_a_helper_s_fixed_cost_on_a_tiny_cell_is_not_a_compute_thread():
    # one generated token through a server: the HTTP thread ran 11 % of the compute thread's
    # CPU time, but under the 5 ms floor
    verdict = derive(1, threads(0.0081, 0.0009, 0.0001), engine_reported=1)
    assert verdict.used == 1 and verdict.basis == "per-thread CPU" and verdict.problem() is None
    # a second compute thread of a small 2-thread CELL still counts, and a rogue one is still caught
    assert derive(2, threads(0.0397, 0.008), engine_reported=2).used == 2
    assert "ran with 2 threads" in derive(1, threads(0.0397, 0.008), engine_reported=1).problem()
    # under the floor on every thread: nothing to count from, the engine's figure
    assert derive(1, threads(0.004, 0.003), engine_reported=1).basis == "engine"


def test_without_usable_figures_the_engine_figure_is_the_basis():
    verdict = derive(2, threads(0.0, 0.0), engine_reported=2)
    assert verdict.used == 2 and verdict.basis == "engine"


def test_nothing_to_count_from_is_a_problem():
    verdict = derive(1, [], None)
    assert verdict.used is None and "cannot be derived" in verdict.problem()


def test_from_result_reads_the_raw_figures_and_judges_against_the_cell():
    result = {"threads": {"requested": 2, "how": "t", "engine_reported": 2,
                          "per_thread": [{"tid": 1, "cpu_s": 0.5}, {"tid": 2, "cpu_s": 0.4, "pid": 1, "name": "w"}]}}
    assert from_result(2, result).used == 2
    assert from_result(1, result).problem() is not None


@pytest.mark.parametrize("share", [0.5, 0.11])
def test_verdict_json_names_rule_and_counted_threads(share):
    document = derive(2, threads(1.0, share), 2).to_json()
    assert document["used"] == 2 and document["counted_tids"] == [100, 101] and "10%" in document["rule"]
