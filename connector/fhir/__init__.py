"""FHIR R4 output: one transaction Bundle per report (bundle.py), validated with fhir.resources (validate.py)."""
