"""Validate every resource of a bundle with fhir.resources (R4B models: R4's resources used here are unchanged
in R4B). An invalid resource is a bug in bundle.py, never the sender's fault, so it raises."""

from __future__ import annotations

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import BundleEntry
from pydantic import ValidationError


class InvalidResource(Exception):
    """A resource failed FHIR validation (a mapping bug). The message names the resource type and paths only."""


def validate_bundle(bundle: dict) -> None:
    get_fhir_model_class("Bundle").model_validate({k: v for k, v in bundle.items() if k != "entry"})
    for index, entry in enumerate(bundle.get("entry", [])):
        resource = entry.get("resource")
        request = entry.get("request", {})
        if request.get("method") not in ("PUT", "POST", "DELETE", "GET"):
            raise InvalidResource(f"entry {index}: bad request method")
        BundleEntry.model_validate({k: v for k, v in entry.items() if k != "resource"})
        if resource is None:
            if request["method"] != "DELETE":
                raise InvalidResource(f"entry {index}: {request['method']} without a resource")
            continue
        try:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        except ValidationError as exc:
            paths = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
            raise InvalidResource(f"{resource['resourceType']} invalid at {paths}") from None
