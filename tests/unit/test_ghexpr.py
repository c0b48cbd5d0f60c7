"""The test-side evaluator of GitHub Actions expressions (tests/unit/ghexpr.py) on GitHub's documented examples."""

import math

import pytest

from tests.unit.ghexpr import Evaluator, ExpressionError, Status, equal, number, parse, truthy

GITHUB = {"event_name": "pull_request", "ref": "refs/pull/7/merge", "run_id": "99",
          "event": {"action": "labeled", "label": {"name": "bug"},
                    "pull_request": {"number": 7, "labels": [{"name": "bug"}, {"name": "Benchmark"}]}}}


def ev(text, **contexts):
    return Evaluator({"github": GITHUB, **contexts}).evaluate(text)


@pytest.mark.parametrize("text, value", [
    ("null", None), ("true", True), ("FALSE", False), ("711", 711.0), ("-9.2", -9.2), ("0xff", 255.0),
    ("-2.99e-2", -0.0299), ("'Mona the Octocat'", "Mona the Octocat"), ("'It''s open source!'", "It's open source!"),
])
def test_literals(text, value):
    assert ev(text) == value


@pytest.mark.parametrize("text, value", [
    ("github.event_name", "pull_request"), ("github.EVENT_NAME", "pull_request"),  # names ignore case
    ("github['event_name']", "pull_request"), ("github.event.pull_request.number", 7.0),
    ("github.event.nothing.at.all", None), ("github.event.pull_request.labels[1].name", "Benchmark"),
    ("github.event.pull_request.labels.*.name", ["bug", "Benchmark"]),
])
def test_contexts_and_dereference(text, value):
    assert ev(text) == value


@pytest.mark.parametrize("text, value", [
    ("'abc' == 'ABC'", True), ("null == 0", True), ("'' == 0", True), ("true == 1", True), ("'1' == 1", True),
    ("'a' == 0", False), ("fromJSON('[]') == fromJSON('[]')", False), ("1 != 2", True), ("'b' > 'A'", True),
    ("2 >= '2'", True), ("!null", True), ("!'x'", False),
    ("github.event.label && 'yes' || 'no'", "yes"), ("github.nope && 'yes' || 'no'", "no"),
    ("'' || 'default'", "default"), ("0 && 'x'", 0.0),
])
def test_operators_coerce_as_documented(text, value):
    assert ev(text) == value


@pytest.mark.parametrize("text, value", [
    ("contains('Hello world', 'llo')", True), ("contains(github.event.pull_request.labels.*.name, 'benchmark')", True),
    ("contains(fromJSON('[\"push\", \"pull_request\"]'), github.event_name)", True),
    ("startsWith('Hello world', 'he')", True), ("endsWith('Hello world', 'LD')", True),
    ("format('Hello {0} {1} {2}', 'Mona', 'the', 'Octocat')", "Hello Mona the Octocat"),
    ("format('{{Hello {0} {1} {2}!}}', 'Mona', 'the', 'Octocat')", "{Hello Mona the Octocat!}"),
    ("join(github.event.pull_request.labels.*.name, ', ')", "bug, Benchmark"), ("join('abc')", "abc"),
    ("toJSON(fromJSON('[\"a\", 1]'))", '[\n  "a",\n  1\n]'), ("fromJSON('{\"a\": {\"b\": 2}}').a.b", 2.0),
])
def test_functions(text, value):
    assert ev(text) == value


def test_templates_keep_one_expression_typed_and_join_several_as_text():
    e = Evaluator({"github": GITHUB})
    assert e.template("${{ github.event.pull_request.number }}") == 7.0
    assert e.template("pr-${{ github.event.pull_request.number }}-${{ github.nope }}-${{ 1 == 1 }}") == "pr-7--true"
    assert e.template("${{ '}}' }}") == "}}"  # '}}' inside a string does not end the expression
    assert e.template("plain") == "plain"


def test_conditions_get_success_unless_they_call_a_status_function():
    passed, failed, cancelled = Status(["success"]), Status(["failure"]), Status(["failure"], cancelled=True)
    assert Evaluator({}, passed).condition("true") and not Evaluator({}, failed).condition("true")
    assert Evaluator({}, failed).condition("${{ !cancelled() }}")
    assert not Evaluator({}, cancelled).condition("${{ !cancelled() }}")
    assert Evaluator({}, cancelled).condition("always()")
    assert Evaluator({}, failed).condition("failure()")


def test_coercions():
    assert number(None) == 0 and number(True) == 1 and number(" 12 ") == 12 and math.isnan(number("a"))
    assert math.isnan(number([])) and not equal(math.nan, math.nan)
    assert [truthy(v) for v in (None, False, 0.0, -0.0, "", math.nan)] == [False] * 6
    assert all(truthy(v) for v in ("0", "false", [], {}, 1.0))


@pytest.mark.parametrize("text", ["a ==", "(a", "a.", "f(a b)", "a = b", "'open", "a.1"])
def test_unreadable_expressions_are_refused(text):
    with pytest.raises(ExpressionError):
        parse(text)
