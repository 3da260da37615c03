"""Label selectors: matching, the string form and parsing, with apimachinery's own cases as facts
(labels/selector_test.go: TestSelectorParse, TestRequirementSelectorMatching, String())."""

from __future__ import annotations

import pytest

from operators.core.selectors import (
    SelectorError,
    from_label_selector,
    label_selector_matches,
    label_selector_string,
    parse,
)


@pytest.mark.parametrize(("selector", "labels", "expected"), [
    ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
    ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
    ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {"a": "1"}, False),
    ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
    ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ({}, {"x": "y"}, True),       # empty selects everything
    (None, {"x": "y"}, False),    # null selects nothing
])
def test_label_selector_matches(selector, labels, expected):
    assert label_selector_matches(selector, labels) is expected


def test_unknown_operator_is_an_error():
    with pytest.raises(SelectorError, match="Bogus"):
        label_selector_matches({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}, {})


def test_string_form_sorts_requirements_by_key_and_values():
    # LabelSelectorAsSelector adds every requirement to one selector sorted by key.
    selector = {"matchLabels": {"b": "2", "a": "1"},
                "matchExpressions": [{"key": "t", "operator": "In", "values": ["y", "x"]},
                                     {"key": "g", "operator": "DoesNotExist"},
                                     {"key": "h", "operator": "NotIn", "values": ["2", "1"]},
                                     {"key": "e", "operator": "Exists"}]}
    assert label_selector_string(selector) == "a=1,b=2,e,!g,h notin (1,2),t in (x,y)"
    assert label_selector_string({}) == ""


@pytest.mark.parametrize(("text", "normalised"), [
    ("", ""),
    ("x=a", "x=a"),
    ("x=a,y=b,z=c", "x=a,y=b,z=c"),
    ("z=c,x=a,y=b", "x=a,y=b,z=c"),
    ("x==a", "x=a"),
    ("x!=a,y=b", "x!=a,y=b"),
    ("x=,z= ", "x=,z="),
    ("x= ,z= ", "x=,z="),
    ("!x", "!x"),
    ("x", "x"),
    ("x>1", "x>1"),
    ("x>1,z<5", "x>1,z<5"),
    ("x in (a)", "x in (a)"),
    ("x in (b,a)", "x in (a,b)"),
    ("x notin ( a , b )", "x notin (a,b)"),
    (" x in (a,b) , y , !z , w=c ", "w=c,x in (a,b),y,!z"),
    ("example.com/tier=web,app.kubernetes.io/name in (db,cache)",
     "app.kubernetes.io/name in (cache,db),example.com/tier=web"),
])
def test_parse_valid(text, normalised):
    assert str(parse(text)) == normalised
    assert str(parse(str(parse(text)))) == normalised  # the string form parses back to itself


@pytest.mark.parametrize("text", [
    "x=a||y=b", "x==a==b", "!x=a", "x<a", "x>1.5", "x in (a", "x in ()", "x in a", "x,", ",x",
    "x notin", "x=a,", "x=a b", "-x=a",
])
def test_parse_invalid(text):
    with pytest.raises(SelectorError):
        parse(text)


@pytest.mark.parametrize(("text", "labels", "expected"), [
    ("x=a", {"x": "a"}, True),
    ("x=a", {"x": "b"}, False),
    ("x!=a", {}, True),
    ("x!=a", {"x": "a"}, False),
    ("x in (a,b)", {"x": "b"}, True),
    ("x notin (a,b)", {"x": "c"}, True),
    ("!x", {"y": "1"}, True),
    ("x", {"y": "1"}, False),
    ("x>1", {"x": "2"}, True),
    ("x>1", {"x": "1"}, False),
    ("x<1", {"x": "-1"}, True),
    ("", {"anything": "at all"}, True),
])
def test_parsed_selector_matches(text, labels, expected):
    assert parse(text).matches(labels) is expected


def test_parsed_and_structured_forms_agree():
    structured = {"matchLabels": {"app": "web"},
                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}
    assert parse(label_selector_string(structured)) == from_label_selector(structured)
