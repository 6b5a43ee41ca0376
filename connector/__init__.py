"""radlabel connector: HL7 v2 ORU^R01 in, labeled FHIR R4 Observations out."""

__version__ = "0.1.0"
