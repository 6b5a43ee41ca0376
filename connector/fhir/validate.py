"""Validate bundles with fhir.resources (R4B models: the R4 resources used here are unchanged in R4B). An invalid
resource is a bug in bundle.py, never the sender's fault, so it raises.

Hot path (docs/HL7_FHIR.md): full pydantic validation of the resources of a bundle (up to 18) costs ~1-2 ms, more than
parsing the message. But fhir.resources' verdict on a resource is a conjunction: its structure (which elements,
how many, required and choice elements present: all presence checks) and each primitive value against its FHIR
type. No validator in these models compares one value with another. So each resource is split into a *skeleton*
(the resource with the values at the paths in _VARIABLE_PATHS replaced by a token naming their type) and those
values. A skeleton is validated by fhir.resources once, with the whole resource it came from; every value is checked
every time with fhir.resources' own primitive type for that path (the pydantic type its model field declares,
looked up from the model, not restated here). Patient, DiagnosticReport, Observation, Provenance, Device (all of
whose values are fixed per labeler, so it is one skeleton), the Bundle and its entries all go this way; any other
resource type is validated in full.
``validate_bundle(bundle, full=True)`` validates every resource in full; tests check both paths agree.
"""

from __future__ import annotations

import types
import typing

import orjson
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import BundleEntry
from fhir_core.types import FhirBase
from pydantic import TypeAdapter, ValidationError


class InvalidResource(Exception):
    """A resource failed FHIR validation (a mapping bug). The message names the resource type and paths only."""


# Where bundle.py puts values that differ from report to report (sender data, generated ids, references, times).
# Everything else in a resource comes from small fixed sets and is part of its skeleton. "*" = every list item.
_VARIABLE_PATHS: dict[str, tuple[str, ...]] = {
    "Bundle": ("id", "timestamp"),
    "BundleEntry": ("fullUrl", "request.url", "request.ifNoneExist"),
    "Patient": (
        "id",
        "identifier.*.value",
        "identifier.*.system",
        "identifier.*.assigner.display",
        "identifier.*.type.coding.*.code",
        "name.*.family",
        "name.*.given.*",
        "birthDate",
    ),
    "DiagnosticReport": (
        "id",
        "identifier.*.system",
        "identifier.*.value",
        "code.coding.*.system",
        "code.coding.*.code",
        "code.coding.*.display",
        "code.text",
        "subject.reference",
        "effectiveDateTime",
        "issued",
        "result.*.reference",
        "conclusion",
        "presentedForm.*.data",
    ),
    "Observation": (
        "id",
        "extension.*.extension.*.valueDateTime",  # the report-version facts
        "identifier.*.system",  # the accession's system is the site's (fhir.accession_identifier_systems)
        "identifier.*.value",
        "subject.reference",
        "effectiveDateTime",
        "issued",
        "derivedFrom.*.reference",
        "note.*.text",
    ),
    "Provenance": ("id", "extension.*.extension.*.valueDateTime", "target.*.reference", "recorded",
                   "entity.*.what.reference", "entity.*.what.identifier.system", "entity.*.what.identifier.value"),
    "Device": (),
}


_ADAPTERS: dict[str, TypeAdapter] = {}


class _Leaf:
    """One variable path's FHIR primitive type, as the fhir.resources model declares it."""

    __slots__ = ("check", "token")

    def __init__(self, annotation: object) -> None:
        self.token = "\x00" + repr(annotation)  # stands for "a valid value of this type" in a skeleton
        # The adapter's pydantic-core validator: the same schema the model field runs, without the Python wrapper.
        self.check = _ADAPTERS.setdefault(self.token, TypeAdapter(annotation)).validator.validate_python


def _field_type(model: type, name: str) -> object:
    fields = {field.alias or key: field for key, field in model.model_fields.items()}
    if name not in fields:
        raise KeyError(f"{model.__name__} has no element {name!r}")
    annotation = fields[name].annotation
    while True:  # unwrap "X | None" and "List[X]"
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                raise TypeError(f"{model.__name__}.{name} is a choice of types")
            annotation = args[0]
        elif origin is list:
            annotation = typing.get_args(annotation)[0]
        else:
            return annotation


def _compile(resource_type: str, paths: tuple[str, ...]) -> dict:
    """Paths -> nested spec {element: spec | _Leaf, "*": spec for list items}, types read from the models."""
    root: dict = {}
    for path in paths:
        model = BundleEntry if resource_type == "BundleEntry" else get_fhir_model_class(resource_type)
        names = path.split(".")
        node = root
        for i, name in enumerate(names):
            if name == "*":
                continue
            many = names[i + 1 : i + 2] == ["*"]
            final = all(n == "*" for n in names[i + 1 :])
            annotation = _field_type(model, name)
            is_complex = isinstance(annotation, type) and issubclass(annotation, FhirBase)
            if final:
                if is_complex:
                    raise TypeError(f"{resource_type}.{path} is not a primitive element")
                leaf = _Leaf(annotation)
                node[name] = {"*": leaf} if many else leaf
                break
            if not is_complex:
                raise TypeError(f"{resource_type}.{path}: {name} is a primitive element")
            model = annotation.get_model_klass()  # type: ignore[attr-defined]
            node = node.setdefault(name, {})
            if many:
                node = node.setdefault("*", {})
    return root


_SPECS: dict[str, dict] = {name: _compile(name, paths) for name, paths in _VARIABLE_PATHS.items()}
# The specs of the objects bundle.py shares between the resources of a bundle (see _skeleton). Only these are
# memoised: elsewhere the memo's own bookkeeping costs more than it saves (measured).
_SHARED_SPECS = frozenset(id(spec) for spec in (
    _SPECS["Observation"]["extension"], _SPECS["Observation"]["identifier"]["*"], _SPECS["Observation"]["subject"],
    _SPECS["Provenance"]["extension"],
))
_MAX_SHAPES = 4096
_DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
_METHODS = ("PUT", "POST", "DELETE", "GET")


class _NotJson(Exception):
    pass


def _skeleton(node: object, spec: dict, leaves: list[tuple[_Leaf, object]], memo: dict | None = None) -> object:
    """``node`` with the values at the spec's paths replaced by their type's token (collected into ``leaves``).

    ``memo`` (one per bundle): bundle.py puts one object into several resources of a bundle (the report-version
    extension, the accession identifier, the subject reference; _SHARED_SPECS). Each is walked once per bundle and
    its values are collected the first time only. That is enough: a bundle's resources are checked in order, each
    value either against its type (a known skeleton) or by validating the whole resource (a new one), and the
    first failure raises, so a later resource sharing the object adds nothing to check."""
    if memo is not None and id(spec) in _SHARED_SPECS:
        key = (id(node), id(spec))
        done = memo.get(key)
        if done is None:
            done = memo[key] = _walk(node, spec, leaves, memo)
        return done
    return _walk(node, spec, leaves, memo)


def _walk(node: object, spec: dict, leaves: list[tuple[_Leaf, object]], memo: dict | None) -> object:
    if type(node) is dict:
        # Only the variable elements are replaced; the rest is shared as it is (serialised with the skeleton).
        copy = None
        for key, sub in spec.items():
            if key in node:
                if copy is None:
                    copy = dict(node)
                if type(sub) is _Leaf:
                    leaves.append((sub, node[key]))
                    copy[key] = sub.token
                else:
                    copy[key] = _skeleton(node[key], sub, leaves, memo)
        return node if copy is None else copy
    if type(node) is list and "*" in spec:
        item = spec["*"]
        if type(item) is _Leaf:
            leaves.extend((item, value) for value in node)
            return [item.token] * len(node)
        return [_skeleton(value, item, leaves, memo) for value in node]
    return node  # not the expected container: kept as it is, so it is part of the skeleton (full validation judges)


def _dumps(skeleton: object) -> bytes:
    """The skeleton as a cache key. orjson writes None, NaN and infinities all as null: a key with a null is not
    trusted to stand for one skeleton (bundle.py never writes null), and a type orjson would not write as json does
    raises, so the caller validates the whole resource instead."""
    key = orjson.dumps(skeleton, option=_DUMPS_OPTIONS)
    if b"null" in key:  # one scan; a string containing "null" only costs a full validation
        raise _NotJson
    return key


def _shape_key(kind: str, node: dict, leaves: list[tuple[_Leaf, object]], memo: dict | None = None) -> bytes:
    try:
        return kind.encode() + b"\x00" + _dumps(_skeleton(node, _SPECS[kind], leaves, memo))
    except TypeError:
        raise _NotJson from None


class BundleValidator:
    """Validates bundles; remembers the skeletons already validated (bounded)."""

    def __init__(self) -> None:
        self._shapes: set[bytes] = set()

    def validate(self, bundle: dict, *, full: bool = False) -> None:
        envelope = {k: v for k, v in bundle.items() if k != "entry"}
        entries = bundle.get("entry", [])
        for index, entry in enumerate(entries):
            request = entry.get("request") or {}
            if request.get("method") not in _METHODS:
                raise InvalidResource(f"entry {index}: bad request method")
            if entry.get("resource") is None and request["method"] != "DELETE":
                raise InvalidResource(f"entry {index}: {request['method']} without a resource")
        if full:
            _validate_model("Bundle", envelope)
            for index, entry in enumerate(entries):
                _validate_entry(index, entry)
                if entry.get("resource") is not None:
                    self.validate_resource(entry["resource"], full=True)
            return
        # The same reference, time or id recurs in many resources of a bundle: each is checked once per bundle.
        checked: set[tuple[str, str]] = set()

        def whole_envelope() -> None:
            _validate_model("Bundle", envelope)
            for index, entry in enumerate(entries):
                _validate_entry(index, entry)

        # The envelope and all entry heads (fullUrl, request) form one skeleton: one lookup instead of one per entry.
        leaves: list[tuple[_Leaf, object]] = []
        try:
            skeleton = [
                _skeleton(envelope, _SPECS["Bundle"], leaves),
                [
                    _skeleton({k: v for k, v in e.items() if k != "resource"}, _SPECS["BundleEntry"], leaves)
                    for e in entries
                ],
            ]
            key = b"Envelope\x00" + _dumps(skeleton)
        except (TypeError, _NotJson):
            whole_envelope()
        else:
            self._check(key, _underived(leaves, entries), whole_envelope, checked)
        memo: dict = {}  # the objects this bundle's resources share: walked once (see _skeleton)
        for entry in entries:
            if entry.get("resource") is not None:
                self._validate_resource(entry["resource"], checked, memo)

    def validate_resource(self, resource: dict, *, full: bool = False) -> None:
        if full:
            resource_type = resource.get("resourceType")
            if not isinstance(resource_type, str):
                raise InvalidResource("resource without resourceType")
            _validate_model(resource_type, resource)
        else:
            self._validate_resource(resource, set())

    def _validate_resource(self, resource: dict, checked: set[tuple[str, str]], memo: dict | None = None) -> None:
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str):
            raise InvalidResource("resource without resourceType")
        if resource_type not in _SPECS or resource_type in ("Bundle", "BundleEntry"):
            _validate_model(resource_type, resource)
            return
        self._validate_fast(resource_type, resource, lambda: _validate_model(resource_type, resource), checked, memo)

    def _validate_fast(
        self, kind: str, node: dict, validate_whole: typing.Callable[[], None], checked: set[tuple[str, str]],
        memo: dict | None = None,
    ) -> None:
        leaves: list[tuple[_Leaf, object]] = []
        try:
            key = _shape_key(kind, node, leaves, memo)
        except _NotJson:
            validate_whole()
            return
        self._check(key, leaves, validate_whole, checked)

    def _check(
        self,
        key: bytes,
        leaves: list[tuple[_Leaf, object]],
        validate_whole: typing.Callable[[], None],
        checked: set[tuple[str, str]],
    ) -> None:
        if key not in self._shapes:
            validate_whole()  # raises if invalid; valid: this skeleton is known good from now on
            if len(self._shapes) >= _MAX_SHAPES:
                self._shapes.clear()
            self._shapes.add(key)
            return
        for leaf, value in leaves:
            if type(value) is not str:
                validate_whole()
                return
            if (leaf.token, value) in checked:
                continue
            try:
                leaf.check(value)
                checked.add((leaf.token, value))
            except ValidationError:
                validate_whole()  # names the resource type and path (and raises: the value is invalid there)
                return


def _underived(leaves: list[tuple[_Leaf, object]], entries: list) -> list[tuple[_Leaf, object]]:
    """The envelope's values less each entry's ``urn:uuid:<id>`` fullUrl and ``<Type>/<id>`` request url, which are
    valid whenever the resource's id is (a FHIR id has no whitespace; uri allows anything else), and every resource
    id is checked with its resource. Two thirds of the envelope's checks, for the same verdict."""
    derived: set[str] = set()
    for entry in entries:
        resource = entry.get("resource")
        if type(resource) is dict:
            rid, rtype = resource.get("id"), resource.get("resourceType")
            if type(rid) is str and type(rtype) is str:
                derived.add("urn:uuid:" + rid)
                derived.add(rtype + "/" + rid)
    return [(leaf, value) for leaf, value in leaves if value not in derived]


def _paths(exc: ValidationError) -> list[str]:
    return sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})


def _validate_entry(index: int, entry: dict) -> None:
    try:
        BundleEntry.model_validate({k: v for k, v in entry.items() if k != "resource"})
    except ValidationError as exc:
        raise InvalidResource(f"entry {index}: invalid at {_paths(exc)}") from None


def _validate_model(resource_type: str, data: dict) -> None:
    try:
        model = get_fhir_model_class(resource_type)
    except (KeyError, ValueError, ImportError):
        raise InvalidResource(f"unknown resourceType {resource_type[:40]!r}") from None
    try:
        model.model_validate(data)
    except ValidationError as exc:
        # Paths only: error messages would quote the offending values (PHI).
        raise InvalidResource(f"{resource_type} invalid at {_paths(exc)}") from None


_DEFAULT = BundleValidator()


def validate_bundle(bundle: dict, *, full: bool = False) -> None:
    """Raise :class:`InvalidResource` unless every resource of ``bundle`` is valid FHIR R4."""
    _DEFAULT.validate(bundle, full=full)
