"""Property-based tests (Hypothesis): generated MATRIX files and RESULT files never end in a traceback.

A MATRIX either loads or raises InputError (exit 2) with at least one located problem; a
RESULT is always judged to a status, with a reason unless it is ok. Example counts keep
the module to a few seconds.
"""

import json
import string

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.matrix import matrixfile
from orchestrator.plan import planner
from orchestrator.results.judge import MAX_REASON_CHARS, judge
from tests.conftest import GOOD_MATRIX
from tests.unit.hostile_cases import JOB, valid_result

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])

# Scalars YAML and JSON both hold, plus the awkward ones: huge, negative, NaN-ish, empty.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.integers(), st.floats(),
                    st.text(max_size=20), st.sampled_from(["1e3", ".nan", ".inf", "0", "2g", "0-1", "3-1", "~"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
KEYS = ["version", "engines", "models", "threads", "workloads", "warmup", "repetitions", "placement", "memory_limit",
        "timeout_s", "include", "exclude", "name", "description"]


def _outcome(text):
    """Load a MATRIX and expand its PLAN: CELLs, or InputError with located problems; anything else fails the test."""
    try:
        return planner.expand(matrixfile.parse(text, "m.yaml"))
    except InputError as exc:
        assert exc.problems and exc.exit_code == 2
        assert all(p.message for p in exc.problems)
        return exc


@FAST
@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
def test_generated_mappings_load_or_are_refused(overrides):
    data = yaml.safe_load(GOOD_MATRIX)
    data.update(overrides)
    _outcome(yaml.safe_dump(data, allow_unicode=True))


@FAST
@given(st.text(alphabet=string.printable + "&*!|>-:[]{}\x00\x07\ufeff\ud800é", max_size=300))
def test_generated_text_loads_or_is_refused(text):
    _outcome(text)


@FAST
@given(st.binary(max_size=300), st.integers(0, len(GOOD_MATRIX)))
def test_bytes_spliced_into_a_good_matrix_load_or_are_refused(noise, at):
    raw = GOOD_MATRIX.encode()
    _outcome(raw[:at] + noise + raw[at:])


def _mutate(document, path, value):
    """``document`` with the value at ``path`` (a list of choices) replaced."""
    node = document
    for step in path[:-1]:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            return document
        node = node[keys[step % len(keys)]]
        if not isinstance(node, (dict, list)):
            return document
    keys = list(node) if isinstance(node, dict) else list(range(len(node)))
    if keys:
        node[keys[path[-1] % len(keys)]] = value
    return document


@FAST
@given(st.lists(st.integers(0, 50), min_size=1, max_size=5), values)
def test_generated_results_are_judged_with_a_reason(tmp_path_factory, path, value):
    out = tmp_path_factory.mktemp("out")
    result = _mutate(valid_result(), path, value)
    (out / "result.json").write_text(json.dumps(result, allow_nan=True))
    status, reason, _ = judge(JOB, 0, False, False, "", out / "result.json")
    assert status.value == "ok" or (reason and len(reason) <= MAX_REASON_CHARS + 40)


@FAST
@given(st.binary(max_size=400))
def test_generated_bytes_are_judged_with_a_reason(tmp_path_factory, raw):
    out = tmp_path_factory.mktemp("out")
    (out / "result.json").write_bytes(raw)
    status, reason, _ = judge(JOB, 0, False, False, "", out / "result.json")
    assert status.value == "invalid" and reason
