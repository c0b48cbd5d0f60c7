"""The linear-time Markdown table writes exactly what tabulate writes."""

import random

import pandas as pd

from orchestrator.report import mdtable

STRINGS = ["a", "llama.cpp", "gguf-q8_0", "64/64", "12/64 DISAGREE", "ref", "c-0001", "0-1", "x y", ""]
FLOATS = [0.0, 1.5, 2.0, 1234.5678, 1e-5, 12345678.9, -0.25, 3.0e10, 0.1, 7.0, float("inf")]


def tabulated(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g", missingval="-")


def test_random_tables_match_tabulate():
    rng = random.Random(15)
    fast = 0
    for _ in range(200):
        data, rows = {}, rng.randint(1, 8)
        for c in range(rng.randint(1, 6)):
            kind = rng.choice(["str", "int", "float", "mixed", "none"])
            pick = {"str": lambda: rng.choice(STRINGS), "int": lambda: rng.choice([0, 1, 2, 5, 64, 1000, -3]),
                    "float": lambda: rng.choice(FLOATS) * rng.choice([1, 1.37]),
                    "mixed": lambda: rng.choice([1, 2.5, 3, 1e6, 0.001]), "none": lambda: None}[kind]
            data[rng.choice(["h", "threads", "gen tok/s", "a much longer heading"]) + str(c)] = [
                None if rng.random() < 0.15 else pick() for _ in range(rows)]
        frame = pd.DataFrame(data).astype(object)
        frame = frame.where(frame.notna(), None)
        text = mdtable.pipe_table(list(frame.columns), [frame[c].tolist() for c in frame.columns])
        if text is not None:
            fast += 1
            assert text == tabulated(frame), data
    assert fast > 120  # the fast path is the common path


def test_values_only_tabulate_understands_are_left_to_it():
    assert mdtable.pipe_table(["x"], [[True, False]]) is None  # bools
    assert mdtable.pipe_table(["x"], [["12", "a"]]) is None  # a string that reads as a number
    assert mdtable.pipe_table(["x"], [["é"]]) is None  # widths of non-ASCII text
