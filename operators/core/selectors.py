"""Label and node selectors, one implementation for every operator (apimachinery's labels and
component-helpers' nodeaffinity).

`Selector` mirrors apimachinery's labels.Selector rather than the LabelSelector JSON, because the
scheduler builds selectors that have no JSON form (a label set merged with a LabelSelector's
requirements, for matchLabelKeys and default spreading) and relies on the difference between
"nothing" (a null LabelSelector: matches no object) and "everything" (an empty one: matches all,
and counts as `empty()`).

`parse` reads the string form (`labels.Parse`: `a=b,c!=d,e in (f,g),!h`) that scale subresources
put in `status.selector`; `str(selector)` writes it the way `Selector.String()` does.

Node selectors follow component-helpers' nodeaffinity: terms are ORed, a term's expressions
ANDed, an empty term matches nothing, a term that fails to parse never matches, and
`matchFields` understands `metadata.name` with In/NotIn and exactly one value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from operators.core.validation import is_qualified_name, is_valid_label_value

Obj = Mapping[str, Any]


class SelectorError(ValueError):
    """A selector the API machinery would refuse to parse."""


def _parse_int(value: str) -> int | None:
    """strconv.ParseInt(value, 10, 64): an optional sign and decimal digits, within int64."""
    body = value[1:] if value and value[0] in "+-" else value
    if not body or not all("0" <= c <= "9" for c in body):
        return None
    number = int(value)
    return number if -(2**63) <= number < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    """One label requirement; operators Equals, NotEquals, In, NotIn, Exists, DoesNotExist, Gt, Lt
    (selection.Operator; `==` is read as Equals)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "In" or op == "Equals":
            return self.key in labels and labels[self.key] in self.values
        if op == "NotIn" or op == "NotEquals":
            return self.key not in labels or labels[self.key] not in self.values
        if op == "Exists":
            return self.key in labels
        if op == "DoesNotExist":
            return self.key not in labels
        if op in ("Gt", "Lt"):
            if self.key not in labels or len(self.values) != 1:
                return False
            have, want = _parse_int(labels[self.key]), _parse_int(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == "Gt" else have < want
        return False

    def __str__(self) -> str:
        """Requirement.String(): `!k`, `k`, `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k>n`, `k<n`."""
        op = self.operator
        if op == "Exists":
            return self.key
        if op == "DoesNotExist":
            return f"!{self.key}"
        if op in ("In", "NotIn"):
            return f"{self.key} {op.lower()} ({','.join(sorted(self.values))})"
        symbol = {"Equals": "=", "NotEquals": "!=", "Gt": ">", "Lt": "<"}[op]
        return f"{self.key}{symbol}{self.values[0] if self.values else ''}"


def new_requirement(key: str, operator: str, values: Sequence[str] | None) -> Requirement:
    """labels.NewRequirement: a valid label key, values as the operator wants them, valid label
    values."""
    vals = tuple(values or ())
    if not is_qualified_name(key):
        raise SelectorError(f"key: Invalid value: {key!r}: must be a qualified name")
    if operator in ("Equals", "NotEquals"):
        if len(vals) != 1:
            raise SelectorError(f"{key}: exact-match compatibility requires one single value")
    elif operator in ("In", "NotIn"):
        if not vals:
            raise SelectorError(f"{key}: for 'in', 'notin' operators, values set can't be empty")
    elif operator in ("Exists", "DoesNotExist"):
        if vals:
            raise SelectorError(f"{key}: values set must be empty for exists and does not exist")
    elif operator in ("Gt", "Lt"):
        if len(vals) != 1:
            raise SelectorError(f"{key}: for 'Gt', 'Lt' operators, exactly one value is required")
        if _parse_int(vals[0]) is None:
            raise SelectorError(f"{key}: for 'Gt', 'Lt' operators, the value must be an integer")
    else:
        raise SelectorError(f"{key}: {operator!r} is not a valid selector operator")
    for value in vals:
        if not is_valid_label_value(value):
            raise SelectorError(f"values: Invalid value: {value!r}: must be a valid label value")
    return Requirement(key, operator, vals)


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        for requirement in self.requirements:  # a loop, not all(...): this runs per node per pod
            if not requirement.matches(labels):
                return False
        return True

    def empty(self) -> bool:
        """Selects everything (labels.Selector.Empty); "nothing" is not empty."""
        return not self.nothing and not self.requirements

    def add(self, *requirements: Requirement) -> Selector:
        if self.nothing:
            return self
        return Selector(self.requirements + tuple(requirements))

    def __str__(self) -> str:
        """Selector.String(): requirements sorted by key, comma-separated ("" for everything)."""
        return ",".join(str(r) for r in sorted(self.requirements, key=lambda r: r.key))


NOTHING = Selector(nothing=True)
EVERYTHING = Selector()


def from_label_selector(selector: Obj | None) -> Selector:
    """metav1.LabelSelectorAsSelector: null -> nothing, {} -> everything."""
    if selector is None:
        return NOTHING
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return EVERYTHING
    requirements = [new_requirement(k, "Equals", (v,)) for k, v in sorted(match_labels.items())]
    for expression in expressions:
        operator = expression.get("operator", "")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise SelectorError(f"{operator!r} is not a valid label selector operator")
        requirements.append(new_requirement(expression.get("key", ""), operator, expression.get("values")))
    return Selector(tuple(requirements))


def from_set(labels: Mapping[str, str]) -> Selector:
    """labels.SelectorFromSet: every key equals its value ({} selects everything)."""
    return Selector(tuple(Requirement(k, "Equals", (v,)) for k, v in sorted(labels.items())))


def merge_set_with_selector(labels: Mapping[str, str], selector: Selector) -> Selector:
    """PodTopologySpread's matchLabelKeys merge: the pod's own values for those keys AND the selector."""
    if selector.nothing:
        return selector
    return from_set(labels).add(*selector.requirements)


def label_selector_matches(selector: Obj | None, labels: Mapping[str, str] | None) -> bool:
    """Whether a metav1.LabelSelector (JSON) selects these labels; null selects nothing, {} everything.
    Raises SelectorError for a selector the API machinery would refuse."""
    return from_label_selector(selector).matches(labels)


def label_selector_string(selector: Obj | None) -> str:
    """The string form of a metav1.LabelSelector, as `status.selector` and kubectl show it."""
    return str(from_label_selector(selector))


_TWO_CHAR = ("==", "!=")
_OPERATOR_WORDS = {"in": "In", "notin": "NotIn"}


def parse(text: str) -> Selector:
    """labels.Parse: the string form back into a selector ("" selects everything).

    Grammar: requirements separated by commas; each is `key`, `!key`, `key=value`, `key==value`,
    `key!=value`, `key in (v1,v2)`, `key notin (v1,v2)`, `key>n` or `key<n`."""
    requirements: list[Requirement] = []
    position = 0
    length = len(text)

    def skip_spaces() -> None:
        nonlocal position
        while position < length and text[position].isspace():
            position += 1

    def word() -> str:
        nonlocal position
        skip_spaces()
        start = position
        while position < length and not text[position].isspace() and text[position] not in ",()=!<>":
            position += 1
        return text[start:position]

    while True:
        skip_spaces()
        if position >= length:
            if requirements:
                raise SelectorError(f"found '', expected: identifier after ',' in {text!r}")
            break
        negated = text[position] == "!"
        if negated:
            position += 1
        key = word()
        if not key:
            raise SelectorError(f"found {text[position:position + 1]!r}, expected: identifier in {text!r}")
        skip_spaces()
        if negated:
            requirements.append(new_requirement(key, "DoesNotExist", None))
        elif position >= length or text[position] == ",":
            requirements.append(new_requirement(key, "Exists", None))
        elif text[position:position + 2] in _TWO_CHAR:
            operator = "Equals" if text[position] == "=" else "NotEquals"
            position += 2
            requirements.append(new_requirement(key, operator, (word(),)))
        elif text[position] in "=<>":
            operator = {"=": "Equals", "<": "Lt", ">": "Gt"}[text[position]]
            position += 1
            requirements.append(new_requirement(key, operator, (word(),)))
        else:
            operator_word = word()
            if operator_word not in _OPERATOR_WORDS:
                raise SelectorError(f"found {operator_word!r}, expected: in, notin, =, ==, !=, gt, lt in {text!r}")
            skip_spaces()
            if position >= length or text[position] != "(":
                raise SelectorError(f"found {text[position:position + 1]!r}, expected: '(' in {text!r}")
            position += 1
            values: list[str] = []
            while True:
                values.append(word())
                skip_spaces()
                if position < length and text[position] == ",":
                    position += 1
                    continue
                if position < length and text[position] == ")":
                    position += 1
                    break
                raise SelectorError(f"found {text[position:position + 1]!r}, expected: ',' or ')' in {text!r}")
            requirements.append(new_requirement(key, _OPERATOR_WORDS[operator_word], values if values != [""] else []))
        skip_spaces()
        if position < length:
            if text[position] != ",":
                raise SelectorError(f"found {text[position]!r}, expected: ',' in {text!r}")
            position += 1
            if position >= length or not text[position:].strip():
                raise SelectorError(f"found '', expected: identifier after ',' in {text!r}")
            continue
        break
    return Selector(tuple(requirements))


# Node selectors (component-helpers/scheduling/corev1/nodeaffinity).

NAME_FIELD = "metadata.name"


@dataclass(frozen=True)
class NodeSelectorTerm:
    labels: Selector | None = None
    fields: tuple[tuple[str, str, str], ...] | None = None
    error: str | None = None

    def matches(self, node_labels: Mapping[str, str], node_fields: Mapping[str, str]) -> bool:
        if self.error is not None:
            return False
        if self.labels is not None and not self.labels.matches(node_labels):
            return False
        if self.fields is not None and node_fields:
            for key, operator, value in self.fields:
                actual = node_fields.get(key, "")
                if (operator == "In") != (actual == value):
                    return False
        return True


def _is_empty_term(term: Obj) -> bool:
    return not term.get("matchExpressions") and not term.get("matchFields")


def parse_node_selector_term(term: Obj) -> NodeSelectorTerm:
    errors: list[str] = []
    labels: Selector | None = None
    fields: list[tuple[str, str, str]] | None = None
    expressions = term.get("matchExpressions") or []
    if expressions:
        requirements: list[Requirement] = []
        for expression in expressions:
            try:
                requirements.append(
                    new_requirement(expression.get("key", ""), expression.get("operator", ""), expression.get("values"))
                )
            except SelectorError as exc:
                errors.append(str(exc))
        labels = Selector(tuple(requirements))
    match_fields = term.get("matchFields") or []
    if match_fields:
        fields = []
        for expression in match_fields:
            operator, values = expression.get("operator", ""), expression.get("values") or []
            if operator not in ("In", "NotIn"):
                errors.append(f"{operator!r} is not a supported field selector operator")
            elif len(values) != 1:
                errors.append("matchFields values must have one element")
            else:
                fields.append((expression.get("key", ""), operator, values[0]))
    if errors:
        return NodeSelectorTerm(error="; ".join(errors))
    return NodeSelectorTerm(labels, tuple(fields) if fields is not None else None)


def node_fields(node: Obj) -> dict[str, str]:
    name = (node.get("metadata") or {}).get("name") or ""
    return {NAME_FIELD: name} if name else {}


def node_labels(node: Obj) -> Mapping[str, str]:
    labels: Mapping[str, str] = (node.get("metadata") or {}).get("labels") or {}
    return labels


@dataclass(frozen=True)
class NodeSelector:
    """A required node selector: ORed terms; empty terms are dropped and match nothing."""

    terms: tuple[NodeSelectorTerm, ...]

    @classmethod
    def parse(cls, selector: Obj) -> NodeSelector:
        terms = selector.get("nodeSelectorTerms") or []
        return cls(tuple(parse_node_selector_term(t) for t in terms if not _is_empty_term(t)))

    def matches(self, node: Obj) -> bool:
        labels, fields = node_labels(node), node_fields(node)
        return any(term.matches(labels, fields) for term in self.terms)


@dataclass(frozen=True)
class PreferredTerms:
    """Preferred scheduling terms: a node scores the sum of the weights of the terms it matches.
    Terms with weight 0 or no requirements are dropped; any unparsable term is an error."""

    terms: tuple[tuple[NodeSelectorTerm, int], ...]

    @classmethod
    def parse(cls, terms: Iterable[Obj]) -> PreferredTerms:
        parsed: list[tuple[NodeSelectorTerm, int]] = []
        errors: list[str] = []
        for term in terms:
            preference = term.get("preference") or {}
            weight = int(term.get("weight") or 0)
            if weight == 0 or _is_empty_term(preference):
                continue
            selector_term = parse_node_selector_term(preference)
            if selector_term.error is not None:
                errors.append(selector_term.error)
            else:
                parsed.append((selector_term, weight))
        if errors:
            raise SelectorError("; ".join(errors))
        return cls(tuple(parsed))

    def score(self, node: Obj) -> int:
        labels, fields = node_labels(node), node_fields(node)
        return sum(weight for term, weight in self.terms if term.matches(labels, fields))


@dataclass(frozen=True)
class RequiredNodeAffinity:
    """A pod's nodeSelector AND its required node affinity (nodeaffinity.GetRequiredNodeAffinity)."""

    label_selector: Selector | None = None
    node_selector: NodeSelector | None = None

    @classmethod
    def of(cls, pod: Obj) -> RequiredNodeAffinity:
        spec = pod.get("spec") or {}
        node_selector_labels = spec.get("nodeSelector") or {}
        label_selector = from_set(node_selector_labels) if node_selector_labels else None
        required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        node_selector = NodeSelector.parse(required) if required is not None else None
        return cls(label_selector, node_selector)

    def matches(self, node: Obj) -> bool:
        if self.label_selector is not None and not self.label_selector.matches(node_labels(node)):
            return False
        if self.node_selector is not None:
            return self.node_selector.matches(node)
        return True

