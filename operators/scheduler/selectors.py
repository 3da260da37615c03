"""Label and node selectors as the scheduler evaluates them.

`Selector` mirrors apimachinery's labels.Selector rather than the LabelSelector JSON, because the
scheduler builds selectors that have no JSON form (a label set merged with a LabelSelector's
requirements, for matchLabelKeys and default spreading) and relies on the difference between
"nothing" (a null LabelSelector: matches no object) and "everything" (an empty one: matches all,
and counts as `empty()`).

Node selectors follow component-helpers' nodeaffinity: terms are ORed, a term's expressions
ANDed, an empty term matches nothing, a term that fails to parse never matches, and
`matchFields` understands `metadata.name` with In/NotIn and exactly one value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from operators.scheduler.validation import is_qualified_name, is_valid_label_value

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
    """One label requirement; operators In, NotIn, Exists, DoesNotExist, Gt, Lt (Equals is In)."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op == "In":
            return self.key in labels and labels[self.key] in self.values
        if op == "NotIn":
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


def new_requirement(key: str, operator: str, values: Sequence[str] | None) -> Requirement:
    """labels.NewRequirement: a valid label key, values as the operator wants them, valid label
    values."""
    vals = tuple(values or ())
    if not is_qualified_name(key):
        raise SelectorError(f"key: Invalid value: {key!r}: must be a qualified name")
    if operator in ("In", "NotIn"):
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
    requirements = [new_requirement(k, "In", (v,)) for k, v in sorted(match_labels.items())]
    for expression in expressions:
        operator = expression.get("operator", "")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise SelectorError(f"{operator!r} is not a valid label selector operator")
        requirements.append(new_requirement(expression.get("key", ""), operator, expression.get("values")))
    return Selector(tuple(requirements))


def from_set(labels: Mapping[str, str]) -> Selector:
    """labels.SelectorFromSet: every key equals its value ({} selects everything)."""
    return Selector(tuple(Requirement(k, "In", (v,)) for k, v in sorted(labels.items())))


def merge_set_with_selector(labels: Mapping[str, str], selector: Selector) -> Selector:
    """PodTopologySpread's matchLabelKeys merge: the pod's own values for those keys AND the selector."""
    if selector.nothing:
        return selector
    return from_set(labels).add(*selector.requirements)


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

