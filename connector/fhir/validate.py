"""Validate bundles with fhir.resources (R4B models: the R4 resources used here are unchanged in R4B). An invalid
resource is a bug in bundle.py, never the sender's fault, so it raises.

Hot path (docs/HL7_FHIR.md): full pydantic validation of the 17 resources of a bundle costs ~1-2 ms, more than
parsing the message. Observations differ from report to report only in elements bundle.py generates from typed
values (UUIDv5 ids, references to them, datetime.isoformat() times); everything else comes from a small set
(14 findings x 3 classes x 4 statuses x labelers). So an Observation's generated elements are checked with the FHIR
regular expressions for their types, and the rest (its "shape") is validated by fhir.resources once per distinct
shape; a generated element not in its expected form sends the whole resource to full validation. The same holds for the Provenance (its targets and time are generated). Patient and DiagnosticReport carry
sender data and are validated in full every time.
``validate_bundle(bundle, full=True)`` validates every resource in full; tests check both paths agree.
"""

from __future__ import annotations

import json
import re

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import BundleEntry
from pydantic import ValidationError


class InvalidResource(Exception):
    """A resource failed FHIR validation (a mapping bug). The message names the resource type and paths only."""


_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_REFERENCE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")
# FHIR R4 primitive type regular expressions (datatypes.html).
_DATE_TIME = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?)?)?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)?)?)?"
)
_INSTANT = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]{1,9})?(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
)


def _is_ref(value: object) -> bool:
    return (
        isinstance(value, dict)
        and len(value) == 1
        and isinstance(value.get("reference"), str)
        and _REFERENCE.fullmatch(value["reference"]) is not None
    )


_GENERATED_CHECKS = {
    "id": lambda v: isinstance(v, str) and _ID.fullmatch(v) is not None,
    "subject": _is_ref,
    "derivedFrom": lambda v: isinstance(v, list) and len(v) > 0 and all(_is_ref(x) for x in v),
    "effectiveDateTime": lambda v: isinstance(v, str) and _DATE_TIME.fullmatch(v) is not None,
    "issued": lambda v: isinstance(v, str) and _INSTANT.fullmatch(v) is not None,
    "recorded": lambda v: isinstance(v, str) and _INSTANT.fullmatch(v) is not None,
    "target": lambda v: isinstance(v, list) and len(v) > 0 and all(_is_ref(x) for x in v),
    "entity": lambda v: isinstance(v, list)
    and all(isinstance(x, dict) and x.keys() == {"role", "what"} and x["role"] == "source" and _is_ref(x["what"]) for x in v),
}
_FULL_URL = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _generated_entry(entry: dict) -> bool:
    """An entry exactly as bundle.py writes it: {fullUrl: urn:uuid, resource, request: {method, url}}."""
    request = entry.get("request")
    return (
        entry.keys() <= {"fullUrl", "resource", "request"}
        and isinstance(request, dict)
        and request.keys() == {"method", "url"}
        and isinstance(request["url"], str)
        and _REFERENCE.fullmatch(request["url"]) is not None
        and ("fullUrl" not in entry or (isinstance(entry["fullUrl"], str) and _FULL_URL.fullmatch(entry["fullUrl"]) is not None))
    )


_SHAPE_CACHED_TYPES = frozenset({"Observation", "Provenance"})
_MAX_SHAPES = 4096


class BundleValidator:
    """Validates bundles; remembers Observation shapes already validated (bounded)."""

    def __init__(self) -> None:
        self._shapes: set[tuple] = set()

    def validate(self, bundle: dict, *, full: bool = False) -> None:
        _validate_model("Bundle", {k: v for k, v in bundle.items() if k != "entry"})
        for index, entry in enumerate(bundle.get("entry", [])):
            resource = entry.get("resource")
            request = entry.get("request") or {}
            if request.get("method") not in ("PUT", "POST", "DELETE", "GET"):
                raise InvalidResource(f"entry {index}: bad request method")
            if full or not _generated_entry(entry):
                try:
                    BundleEntry.model_validate({k: v for k, v in entry.items() if k != "resource"})
                except ValidationError as exc:
                    raise InvalidResource(f"entry {index}: invalid at {_paths(exc)}") from None
            if resource is None:
                if request["method"] != "DELETE":
                    raise InvalidResource(f"entry {index}: {request['method']} without a resource")
                continue
            self.validate_resource(resource, full=full)

    def validate_resource(self, resource: dict, *, full: bool = False) -> None:
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str):
            raise InvalidResource("resource without resourceType")
        if full or resource_type not in _SHAPE_CACHED_TYPES:
            _validate_model(resource_type, resource)
            return
        shape: dict = {}
        generated: list[str] = []
        for key, value in resource.items():
            check = _GENERATED_CHECKS.get(key)
            if check is None:
                shape[key] = value
            elif check(value):
                generated.append(key)
            else:
                # Not in the generated form: let fhir.resources decide on the whole resource.
                _validate_model(resource_type, resource)
                return
        # repr keeps insertion order: a different order is only a cache miss, never a wrong hit.
        key = (resource_type, tuple(generated), repr(shape))
        if key in self._shapes:
            return
        _validate_model(resource_type, resource)
        if len(self._shapes) >= _MAX_SHAPES:
            self._shapes.clear()
        self._shapes.add(key)


def _paths(exc: ValidationError) -> list[str]:
    return sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})


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
