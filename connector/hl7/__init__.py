"""HL7 v2 ORU^R01 in: framing (bytes -> messages), parsing (message -> reports) and the report model."""
