"""The MLLP gateway (`radlabel mllp`) and the hand tools `radlabel publish` / `radlabel send` (docs/MLLP.md)."""
