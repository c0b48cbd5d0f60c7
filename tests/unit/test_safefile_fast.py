"""The fast JSON path accepts exactly what the strict path accepts, with the same document."""

import json
import math

import pytest

from orchestrator.files import reading
from tests.unit.records import record

HOSTILE = ['{"a":1}', "[1e999]", "[-1e999]", "[1e308, 1e308]", '{"a":1,"a":2}', "[" * 32 + "]" * 32,
           "[" * 33 + "]" * 33, "[" * 5000 + "]" * 5000, "[" + "9" * 25 + "]", "[1, " + "9" * 19 + "]",
           "[-" + "9" * 19 + "]", "[-1" + "0" * 19 + "]", '"' + "x" * 70000 + '"', '["' + "x" * 70000 + '"]',
           "[NaN]", "[Infinity]", '{"k":[1.5,-2,"s",null,true]}', "1.0", '"x"', '{"' + "k" * 70000 + '":1}',
           '["\\ud800"]', '{"\\udfff": 1}', "[1, 2.5, true]", "[" + "9" * 400 + "]", "[1e300, -1e300]", "[]", "{}",
           '[[1, 2], [3, "x"], {"a": [1e400]}]']


def strict(text: str):
    """The strict path alone: the parse_json hooks and shape_problem, no fast path."""
    try:
        document = json.loads(text, parse_constant=reading._no_constant, parse_float=reading._finite_float,
                              parse_int=reading._bounded_int, object_pairs_hook=reading._no_duplicates)
    except (ValueError, RecursionError):
        return reading._UNSURE
    return reading._UNSURE if reading.shape_problem(document) else document


@pytest.mark.parametrize("text", HOSTILE)
def test_fast_path_never_accepts_what_the_strict_path_refuses(text):
    fast = reading._parse_plainly_safe(text)
    want = strict(text)
    if fast is not reading._UNSURE:
        assert want is not reading._UNSURE and fast == want
    if want is reading._UNSURE:
        with pytest.raises(reading.Refused):
            reading.parse_json(text.encode(), "t")


def test_a_real_shaped_record_takes_the_fast_path():
    rec = record(decode=(0.3, 0.31, 0.29))
    text = json.dumps(rec)
    assert reading._parse_plainly_safe(text) == rec == reading.parse_json(text.encode(), "t")


def test_huge_numbers_go_the_strict_way_and_are_refused():
    # 1e308 is finite, but two of them sum to infinity (a CPU time of 1e308 broke the TABLE): any
    # float beyond MAX_FLOAT is left to the strict path, which refuses it with the reason.
    assert not math.isfinite(sum([1e308, 1e308]))
    assert reading._parse_plainly_safe("[1e308, 1e308]") is reading._UNSURE
    with pytest.raises(reading.Refused, match="beyond the 1e\\+12"):
        reading.parse_json(b"[1e308, 1e308]", "t")
    assert reading.parse_json(b"[1e12, -1e12, 0.5]", "t") == [1e12, -1e12, 0.5]
    assert reading._parse_plainly_safe("[1e12, 2.5]") == [1e12, 2.5]


@pytest.mark.parametrize("text", ['{"a": 1, "a" : 2}', '{"a":1,"b":{"c":2,"c":3}}', '{"x": "\\":", "a": 1, "a": 2}',
                                  '\ufeff{"a": 1}', '{"a"\n:\t1, "b" :2}', '[1, 2, 3,]', "[01]", '{"a":1}x',
                                  '"\\u0000"', '"tab\there"', '[1.0e-400]', "[-0.0]", "[18446744073709551615]"])
def test_duplicates_bom_and_other_edges_agree_with_the_strict_path(text):
    fast = reading._parse_plainly_safe(text)
    want = strict(text)
    if fast is not reading._UNSURE:
        assert want is not reading._UNSURE and fast == want
