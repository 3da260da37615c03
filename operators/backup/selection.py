"""Which items a Backup takes and a Restore applies: Velero's filtering rules as pure functions.

Mirrors Velero 1.17's pkg/util/collections/includes_excludes.go (glob include/exclude lists, the
tri-state `includeClusterResources`), pkg/backup/item_collector.go (which Namespace objects a backup
holds) and the validation in pkg/controller/backup_controller.go and restore_controller.go.

Resource names are compared as Kubernetes' GroupResource strings: `pods` for the core group,
`deployments.apps` otherwise. What users write (`deploy`, `deployment`, `Deployment`,
`deployments.apps`) is first resolved against the discovered resource types, as Velero resolves
it through its discovery helper; names that do not resolve, and patterns, are kept as written.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from operators.backup.naming import GROUP, validate_ttl
from operators.core.selectors import label_selector_matches

EXCLUDE_LABEL = f"{GROUP}/exclude-from-backup"

# Velero refuses to restore these (restore_controller.go's nonRestorableResources, with our own
# Backup and Restore kinds in place of velero.io's). Backups are synced in from object storage;
# restores only mean something in the cluster that ran them; nodes and CSI attachments belong to
# the cluster's machines; events are history.
NON_RESTORABLE: tuple[str, ...] = (
    "nodes",
    "events",
    "events.events.k8s.io",
    f"backups.{GROUP}",
    f"restores.{GROUP}",
    "csinodes.storage.k8s.io",
    "volumeattachments.storage.k8s.io",
)
# Unlike Velero (which backs them up and then refuses them), we do not store what no restore can
# apply: it only costs time and space.
NEVER_BACKED_UP: tuple[str, ...] = NON_RESTORABLE

NAMESPACES = "namespaces"
CRDS = "customresourcedefinitions.apiextensions.k8s.io"

_GLOB_CHARS = frozenset("\\*?[{")  # what makes a glob more than its literal text
_NAMESPACE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


# --- GroupResource strings ---------------------------------------------------------------------


def group_resource(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def parse_group_resource(value: str) -> tuple[str, str]:
    """(resource, group): `deployments.apps` -> (deployments, apps); `pods` -> (pods, "")."""
    resource, _, group = value.partition(".")
    return resource, group


class Discovered(Protocol):
    """What the rules need to know about a served resource type (discovery.ApiResource fits)."""

    @property
    def group(self) -> str: ...
    @property
    def kind(self) -> str: ...
    @property
    def namespaced(self) -> bool: ...
    @property
    def short_names(self) -> tuple[str, ...]: ...
    @property
    def group_resource(self) -> str: ...


@dataclass(frozen=True)
class ResourceType:
    """One served resource type, as discovery describes it."""

    resource: str  # plural, lower case
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()

    @property
    def group_resource(self) -> str:
        return group_resource(self.resource, self.group)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def is_pattern(value: str) -> bool:
    return any(c in _GLOB_CHARS for c in value)


def _plural(resource_type: Discovered) -> str:
    return parse_group_resource(resource_type.group_resource)[0]


def resolve_resource(name: str, types: Sequence[Discovered]) -> str:
    """The GroupResource string a user-written resource name stands for.

    Accepts the plural, the singular or lower-case kind, and short names, each optionally with
    `.group`. The core group wins an ambiguous bare name (`events` is the core one), then
    discovery order. Patterns and names nothing matches come back unchanged.
    """
    if is_pattern(name) or not types:
        return name
    resource, group = parse_group_resource(name.lower())

    def candidates(match: Any) -> list[Discovered]:
        found = [t for t in types if match(t) and (not group or t.group == group)]
        return sorted(found, key=lambda t: t.group != "")  # stable: core first, then discovery order

    for match in (
        lambda t: _plural(t) == resource,
        lambda t: resource in (getattr(t, "singular", ""), t.kind.lower()),
        lambda t: resource in t.short_names,
    ):
        found = candidates(match)
        if found:
            return found[0].group_resource
    return name


# --- globs -------------------------------------------------------------------------------------


def _translate(pattern: str, i: int, in_braces: bool) -> tuple[str, int]:
    """gobwas/glob without separators: `*`, `?`, `[abc]`, `[!a-z]`, `{a,b}`, `\\` escapes."""
    out: list[str] = []
    while i < len(pattern):
        c = pattern[i]
        if in_braces and c in ",}":
            return "".join(out), i
        if c == "\\":
            if i + 1 >= len(pattern):
                raise ValueError("trailing backslash")
            out.append(re.escape(pattern[i + 1]))
            i += 2
        elif c == "*":
            out.append(".*")
            while i < len(pattern) and pattern[i] == "*":
                i += 1
        elif c == "?":
            out.append(".")
            i += 1
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                raise ValueError("unclosed '['")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            if not body:
                raise ValueError("empty character class")
            parts: list[str] = []
            k = 0
            while k < len(body):
                if k + 2 < len(body) and body[k + 1] == "-":
                    if body[k] > body[k + 2]:
                        raise ValueError(f"bad range {body[k : k + 3]!r}")
                    parts.append(f"{re.escape(body[k])}-{re.escape(body[k + 2])}")
                    k += 3
                else:
                    parts.append(re.escape(body[k]))
                    k += 1
            out.append(("[^" if negate else "[") + "".join(parts) + "]")
            i = end + 1
        elif c == "{":
            alternatives: list[str] = []
            i += 1
            while True:
                sub, i = _translate(pattern, i, True)
                alternatives.append(sub)
                if i >= len(pattern):
                    raise ValueError("unclosed '{'")
                i += 1
                if pattern[i - 1] == "}":
                    break
            out.append("(?:" + "|".join(alternatives) + ")")
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out), i


@functools.lru_cache(maxsize=4096)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        regex, _ = _translate(pattern, 0, False)
    except ValueError:
        return None
    return re.compile(regex, re.DOTALL)


def pattern_error(pattern: str) -> str | None:
    try:
        _translate(pattern, 0, False)
    except ValueError as e:
        return str(e)
    return None


def glob_match(pattern: str, value: str) -> bool:
    """Whether `value` matches `pattern`; an invalid pattern matches nothing."""
    compiled = _compile(pattern)
    return compiled is not None and compiled.fullmatch(value) is not None


@dataclass(frozen=True)
class IncludesExcludes:
    """Everything included except what is excluded; no includes (or `*`) includes everything."""

    includes: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @classmethod
    def of(cls, includes: Iterable[str] | None = None, excludes: Iterable[str] | None = None) -> IncludesExcludes:
        return cls(tuple(dict.fromkeys(includes or ())), tuple(dict.fromkeys(excludes or ())))

    @functools.cached_property
    def _split(self) -> tuple[frozenset[str], tuple[str, ...], frozenset[str], tuple[str, ...], bool]:
        """(literal includes, glob includes, literal excludes, glob excludes, includes everything). A
        pattern that is not a glob (`is_pattern`) matches only itself: a set lookup, not a regex (a
        Backup naming 256 namespaces had matched each item's namespace against 256 regexes)."""
        def split(patterns: tuple[str, ...]) -> tuple[frozenset[str], tuple[str, ...]]:
            return frozenset(p for p in patterns if not is_pattern(p)), tuple(p for p in patterns if is_pattern(p))

        includes, include_globs = split(self.includes)
        excludes, exclude_globs = split(self.excludes)
        return includes, include_globs, excludes, exclude_globs, not self.includes or "*" in self.includes

    def should_include(self, value: str) -> bool:
        includes, include_globs, excludes, exclude_globs, everything = self._split
        if value in excludes or any(glob_match(p, value) for p in exclude_globs):
            return False
        return everything or value in includes or any(glob_match(p, value) for p in include_globs)

    def include_everything(self) -> bool:
        return not self.excludes and set(self.includes) <= {"*"}


# --- selection ---------------------------------------------------------------------------------


def labels_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


@dataclass(frozen=True)
class Selection:
    """The filters of a Backup or Restore spec, resolved against the discovered resource types."""

    namespaces: IncludesExcludes = field(default_factory=IncludesExcludes)
    resources: IncludesExcludes = field(default_factory=IncludesExcludes)
    include_cluster_resources: bool | None = None
    label_selector: Mapping[str, Any] | None = None
    or_label_selectors: tuple[Mapping[str, Any], ...] = ()
    never: frozenset[str] = frozenset()

    @classmethod
    def from_spec(
        cls,
        spec: Mapping[str, Any],
        types: Sequence[Discovered] = (),
        *,
        never: Iterable[str] = NEVER_BACKED_UP,
        extra_excluded_namespaces: Iterable[str] = (),
    ) -> Selection:
        """`extra_excluded_namespaces`: namespaces labelled with the exclude label (Velero adds
        those to the backup's excluded namespaces)."""
        includes = [r if r == "*" else resolve_resource(r, types) for r in spec.get("includedResources") or ()]
        # `*` means nothing in an exclude list (validation reports it); Velero drops it here.
        excludes = [resolve_resource(r, types) for r in spec.get("excludedResources") or () if r != "*"]
        return cls(
            namespaces=IncludesExcludes.of(
                spec.get("includedNamespaces"),
                [*(spec.get("excludedNamespaces") or ()), *extra_excluded_namespaces],
            ),
            resources=IncludesExcludes.of(includes, excludes),
            include_cluster_resources=spec.get("includeClusterResources"),
            label_selector=spec.get("labelSelector"),
            or_label_selectors=tuple(spec.get("orLabelSelectors") or ()),
            never=frozenset(resolve_resource(r, types) for r in never),
        )

    @classmethod
    def for_restore(cls, spec: Mapping[str, Any], types: Sequence[Discovered] = ()) -> Selection:
        return cls.from_spec(spec, types, never=NON_RESTORABLE)

    # cluster scope

    def cluster_scoped_allowed(self) -> bool:
        """Tri-state includeClusterResources: true always, false never, unset only when every
        namespace is included (a whole-cluster backup)."""
        if self.include_cluster_resources is None:
            return self.namespaces.include_everything()
        return bool(self.include_cluster_resources)

    # resources

    def resource_included(self, group_resource_name: str, *, namespaced: bool) -> bool:
        """Whether items of this type are taken at all (before namespaces and labels).

        Namespace objects are not cut by the cluster-scope rule: with specific namespaces they are
        chosen by `select_namespaces` instead.
        """
        if group_resource_name in self.never:
            return False
        if not namespaced and group_resource_name != NAMESPACES and not self.cluster_scoped_allowed():
            return False
        if not namespaced and self.include_cluster_resources is False:
            return False
        return self.resources.should_include(group_resource_name)

    def type_included(self, resource_type: Discovered) -> bool:
        return self.resource_included(resource_type.group_resource, namespaced=resource_type.namespaced)

    # labels and items

    def labels_match(self, labels: Mapping[str, str] | None) -> bool:
        if self.label_selector is not None:
            return label_selector_matches(self.label_selector, labels)
        if self.or_label_selectors:
            return any(label_selector_matches(s, labels) for s in self.or_label_selectors)
        return True

    def has_label_selector(self) -> bool:
        return self.label_selector is not None or bool(self.or_label_selectors)

    def item_included(self, obj: Mapping[str, Any], *, check_exclude_label: bool = True) -> bool:
        """Whether one listed (or backed-up) item of an included type is taken: its namespace,
        its labels, and the exclude-from-backup label. Namespace objects follow their own rules:
        `select_namespaces` for a backup, restore_plan.namespaces_to_restore for a restore."""
        labels = labels_of(obj)
        if check_exclude_label and labels.get(EXCLUDE_LABEL) == "true":
            return False
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        if namespace and not self.namespaces.should_include(namespace):
            return False
        if not namespace and not self.cluster_scoped_allowed():
            return False
        return self.labels_match(labels)

    def namespaces_to_list(self) -> list[str] | None:
        """Namespaces to list namespaced types in, or None to list across all namespaces (then
        filter): the includes are `*`, empty, or patterns."""
        includes = self.namespaces.includes
        if not includes or "*" in includes or any(is_pattern(n) for n in includes):
            return None
        return [n for n in includes if self.namespaces.should_include(n)]

    def select_namespaces(
        self, namespace_objects: Iterable[Mapping[str, Any]], item_namespaces: Iterable[str] = ()
    ) -> set[str]:
        """Which Namespace objects a backup holds (Velero's nsTracker).

        Tracked: every namespace an item was taken from; every active namespace matched by the
        label selector(s); and every active namespace the namespace filter includes, except when
        that filter is the default (all namespaces) and a label selector is set, since then the
        selector alone decides.
        """
        tracked = {ns for ns in item_namespaces if ns}
        for namespace in namespace_objects:
            metadata = namespace.get("metadata") or {}
            name = metadata.get("name") or ""
            phase = (namespace.get("status") or {}).get("phase")
            if phase not in (None, "Active"):
                continue
            labels = metadata.get("labels") or {}
            if labels.get(EXCLUDE_LABEL) == "true":
                continue
            if self.has_label_selector() and self.labels_match(labels):
                tracked.add(name)
                continue
            if self.namespaces.include_everything() and self.has_label_selector():
                continue
            if self.namespaces.should_include(name):
                tracked.add(name)
        return tracked


def excluded_by_label(namespace_objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Names of namespaces labelled `backup.kubeplane.dev/exclude-from-backup=true`."""
    return sorted(
        (ns.get("metadata") or {}).get("name", "")
        for ns in namespace_objects
        if labels_of(ns).get(EXCLUDE_LABEL) == "true"
    )


def crds_for(types: Iterable[Discovered], crds: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The CustomResourceDefinitions serving these types (a backup includes the CRD of every
    custom resource it holds)."""
    wanted = {(t.group, _plural(t)) for t in types}
    found = []
    for crd in crds:
        spec = crd.get("spec") or {}
        if (spec.get("group"), (spec.get("names") or {}).get("plural")) in wanted:
            found.append(crd)
    return found


# --- validation --------------------------------------------------------------------------------


def _validate_includes_excludes(includes: Sequence[str], excludes: Sequence[str]) -> list[str]:
    problems: list[str] = []
    if len(set(includes)) > 1 and "*" in includes:
        problems.append("the include list must be either '*' alone or a list of names")
    if "*" in excludes:
        problems.append("the exclude list cannot contain '*'")
    for item in dict.fromkeys(excludes):
        if item in includes:
            problems.append(f"{item!r} is both included and excluded")
    for item in dict.fromkeys([*includes, *excludes]):
        error = pattern_error(item)
        if error:
            problems.append(f"{item!r} is not a valid pattern: {error}")
    return problems


def _validate_namespace_name(name: str) -> str | None:
    if not name:
        return None
    candidate = name.replace("*", "x")
    if len(candidate) > 63 or not _NAMESPACE_NAME.match(candidate):
        return (f"invalid namespace {name!r}: a namespace name is at most 63 lower-case letters, digits or '-', "
                "starting and ending with a letter or digit ('*' allowed as a wildcard)")
    return None


def _validate_selector(selector: Any, where: str) -> list[str]:
    if not isinstance(selector, Mapping):
        return [f"{where} must be a label selector object"]
    problems: list[str] = []
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping):
        problems.append(f"{where}.matchLabels must be a map of strings")
    for requirement in selector.get("matchExpressions") or []:
        operator = requirement.get("operator") if isinstance(requirement, Mapping) else None
        key = requirement.get("key") if isinstance(requirement, Mapping) else None
        values = (requirement.get("values") or []) if isinstance(requirement, Mapping) else []
        if not key:
            problems.append(f"{where}.matchExpressions: every expression needs a key")
        if operator in ("In", "NotIn"):
            if not values:
                problems.append(f"{where}.matchExpressions[{key}]: operator {operator} needs at least one value")
        elif operator in ("Exists", "DoesNotExist"):
            if values:
                problems.append(f"{where}.matchExpressions[{key}]: operator {operator} takes no values")
        else:
            problems.append(f"{where}.matchExpressions[{key}]: unknown operator {operator!r} "
                            "(In, NotIn, Exists, DoesNotExist)")
    return problems


def _validate_filters(spec: Mapping[str, Any], kind: str) -> list[str]:
    problems: list[str] = []
    resources_in = list(spec.get("includedResources") or [])
    resources_out = list(spec.get("excludedResources") or [])
    problems += [f"invalid included/excluded resources: {p}" for p in
                 _validate_includes_excludes(resources_in, resources_out)]
    namespaces_in = list(spec.get("includedNamespaces") or [])
    namespaces_out = list(spec.get("excludedNamespaces") or [])
    problems += [f"invalid included/excluded namespaces: {p}" for p in
                 _validate_includes_excludes(namespaces_in, namespaces_out)]
    for name in dict.fromkeys([*namespaces_in, *namespaces_out]):
        if name != "*":
            error = _validate_namespace_name(name)
            if error:
                problems.append(f"invalid included/excluded namespaces: {error}")
    icr = spec.get("includeClusterResources")
    if icr is not None and not isinstance(icr, bool):
        problems.append("includeClusterResources must be true, false or unset")
    if spec.get("labelSelector") is not None and spec.get("orLabelSelectors") is not None:
        problems.append(f"labelSelector and orLabelSelectors cannot both be set in a {kind}: use one")
    if spec.get("labelSelector") is not None:
        problems += _validate_selector(spec["labelSelector"], "labelSelector")
    for i, selector in enumerate(spec.get("orLabelSelectors") or []):
        problems += _validate_selector(selector, f"orLabelSelectors[{i}]")
    return problems


def _refused(includes: Iterable[str], refused: Iterable[str], types: Sequence[Discovered]) -> list[str]:
    refused_set = set(refused)
    return [name for name in includes if name != "*" and resolve_resource(name, types) in refused_set]


def validate_backup_spec(spec: Mapping[str, Any], types: Sequence[Discovered] = ()) -> list[str]:
    """Human-readable problems with a Backup spec (empty when valid): status.validationErrors."""
    problems = _validate_filters(spec, "backup")
    for name in _refused(spec.get("includedResources") or [], NEVER_BACKED_UP, types):
        problems.append(f"{name} are never backed up: no restore could apply them")
    problems += validate_ttl(spec.get("ttl"))
    return problems


def validate_restore_spec(spec: Mapping[str, Any], types: Sequence[Discovered] = ()) -> list[str]:
    """Human-readable problems with a Restore spec (empty when valid)."""
    problems: list[str] = []
    if bool(spec.get("backupName")) == bool(spec.get("scheduleName")):
        problems.append("exactly one of backupName and scheduleName must be set")
    problems += _validate_filters(spec, "restore")
    for name in _refused(spec.get("includedResources") or [], NON_RESTORABLE, types):
        problems.append(f"{name} cannot be restored")
    policy = spec.get("existingResourcePolicy")
    if policy not in (None, "", "none", "update"):
        problems.append(f"existingResourcePolicy must be 'none' or 'update', not {policy!r}")
    mapping = spec.get("namespaceMapping") or {}
    if not isinstance(mapping, Mapping):
        problems.append("namespaceMapping must map namespace names to namespace names")
        mapping = {}
    for source, target in mapping.items():
        for name in (source, target):
            error = _validate_namespace_name(str(name)) if name != "" else f"invalid namespace {name!r}: empty"
            if error or "*" in str(name):
                problems.append(f"namespaceMapping {source!r}: {target!r}: " + (
                    error or f"invalid namespace {name!r}: no wildcards in a mapping"))
                break
    restore_status = spec.get("restoreStatus")
    if restore_status is not None:
        problems += [f"invalid restoreStatus resources: {p}" for p in _validate_includes_excludes(
            list(restore_status.get("includedResources") or []), list(restore_status.get("excludedResources") or []))]
    return problems
