"""Core assignment on made-up machines."""

import pytest

from orchestrator.errors import PlacementError
from orchestrator.host.cpuset import Cpu, assign, format_cpulist, parse_cpulist


def machine(cores: int, smt: int = 1, nodes: int = 1):
    """Linux-style numbering: CPU i is core i % cores, SMT siblings come after all cores."""
    per_node = cores // nodes
    return tuple(Cpu(id=t * cores + c, core=c, package=0, node=c // per_node) for t in range(smt) for c in range(cores))


def test_two_cores_one_thread_keeps_core_zero_free():
    placed = assign(1, machine(2))
    assert placed.cpus == (1,) and placed.host_core_reserved and placed.note is None


def test_two_cores_two_threads_uses_both_and_says_so():
    placed = assign(2, machine(2))
    assert placed.cpus == (0, 1) and not placed.host_core_reserved
    assert "could not keep a core free" in placed.note


def test_all_policy_does_not_reserve():
    placed = assign(1, machine(2), policy="all")
    assert placed.cpus == (0,) and not placed.host_core_reserved


def test_too_many_threads_is_refused_with_a_clear_message():
    with pytest.raises(PlacementError, match="asks for 3 threads but only 2 logical CPU"):
        assign(3, machine(2))


def test_physical_cores_before_smt_siblings():
    placed = assign(3, machine(4, smt=2))  # CPUs 0-3 cores, 4-7 siblings
    assert placed.cpus == (1, 2, 3) and placed.host_core_reserved
    assert placed.note is None


def test_smt_siblings_when_cores_run_out():
    placed = assign(5, machine(4, smt=2))
    # Core 0 (CPUs 0 and 4) stays free; 3 cores + 2 siblings.
    assert 0 not in placed.cpus and 4 not in placed.cpus
    assert placed.cpus == (1, 2, 3, 5, 6)
    assert "SMT siblings" in placed.note


def test_one_numa_node_when_it_fits():
    placed = assign(3, machine(8, nodes=2))  # node 0: cores 0-3, node 1: cores 4-7
    assert placed.cpus == (1, 2, 3) and placed.mems == (0,)
    assert placed.cpuset_mems == "0"


def test_numa_prefers_the_node_that_fits_whole():
    placed = assign(4, machine(8, nodes=2))  # node 0 has 3 free cores after the reserve
    assert placed.cpus == (4, 5, 6, 7) and placed.mems == (1,)


def test_single_node_machine_sets_no_mems():
    assert assign(1, machine(4)).mems is None


def test_allowed_cpus_restrict_the_pool():
    placed = assign(2, machine(8), allowed="4-7")
    assert placed.cpus == (5, 6)
    with pytest.raises(PlacementError):
        assign(5, machine(8), allowed="4-7")


def test_cpulists_round_trip():
    assert parse_cpulist("0-2,5,7-8") == (0, 1, 2, 5, 7, 8)
    assert format_cpulist((0, 1, 2, 5, 7, 8)) == "0-2,5,7-8"
    assert format_cpulist(()) == ""
