"""Noise guards and measured frequency on made-up counter readings."""

from orchestrator.host import noise

STAT0 = "cpu  100 0 50 1000 0 0 0 0 0 0\ncpu0 50 0 25 500 0 0 0 0 0 0\ncpu1 50 0 25 500 0 0 0 0 0 0\n"


def reading(at, cpu1, pswpin=10, throttle=None):
    # cpu1 fields: user nice system idle iowait irq softirq steal
    stat = noise.parse_stat(STAT0)
    stat["cpu1"] = cpu1
    return noise.Reading(at, stat, pswpin, throttle)


def test_quiet_batch_trips_no_guard():
    # 10 s on cpu1 at 100 ticks/s: the cell used 9.9 s, the CPU was busy 990 ticks, no steal
    before = reading(0.0, [50, 0, 25, 500, 0, 0, 0, 0])
    after = reading(10.0, [1040, 0, 25, 510, 0, 0, 0, 0])
    found = noise.assess(before, after, (1,), cell_cpu_s=9.9, ticks=100)
    assert found["steal_s"] == 0 and abs(found["other_cpu_s"]) < 1e-9 and found["flags"] == []
    assert found["swap_in_pages"] == 0 and found["throttle_events"] is None and "throttle_events" in found["unmeasured"]


def test_other_processes_steal_swap_and_throttling_are_flagged():
    before = reading(0.0, [50, 0, 25, 500, 0, 0, 0, 0], pswpin=10, throttle={1: 3})
    # busy 1000 ticks = 10 s, of which steal 50 ticks = 0.5 s; the cell used 8 s -> others 1.5 s (15 %)
    after = reading(10.0, [900, 0, 125, 500, 0, 0, 0, 50], pswpin=12, throttle={1: 4})
    found = noise.assess(before, after, (1,), cell_cpu_s=8.0, ticks=100)
    assert found["steal_s"] == 0.5 and found["steal_share"] == 0.05
    assert abs(found["other_cpu_s"] - 1.5) < 1e-9 and abs(found["other_cpu_share"] - 0.15) < 1e-9
    assert found["swap_in_pages"] == 2 and found["throttle_events"] == 1
    assert found["flags"] == ["steal", "other-processes", "swap-in", "throttled"]


def test_unknown_cell_cpu_leaves_other_processes_unmeasured():
    before = reading(0.0, [50, 0, 25, 500, 0, 0, 0, 0])
    after = reading(1.0, [150, 0, 25, 500, 0, 0, 0, 0])
    found = noise.assess(before, after, (1,), cell_cpu_s=None, ticks=100)
    assert found["other_cpu_s"] is None and "other_cpu_s" in found["unmeasured"]


def test_frequency_measured_else_advertised_else_null_with_reason():
    measured = noise.frequency([2000.0, 3000.0], "scaling_cur_freq", (2, 3), {"ghz": 3.5, "source": "max"})
    assert measured["ghz"] == 2.5 and measured["source"].startswith("sampled") and "2,3" in measured["source"]
    advertised = noise.frequency([], None, (1,), {"ghz": 3.5, "source": "cpuinfo_max_freq"})
    assert advertised["ghz"] == 3.5 and advertised["source"].startswith("advertised: cpuinfo_max_freq")
    unknown = noise.frequency([], None, (1,), {"ghz": None, "reason": "no MHz on arm64"})
    assert unknown["ghz"] is None and "no MHz on arm64" in unknown["reason"]
