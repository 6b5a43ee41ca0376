"""A PHI-free one-line summary of a server's OperationOutcome, for the dead letter's header (pure).

Servers echo offending values in `diagnostics` and `details.text` (a name, an identifier), so the summary keeps
only the coded parts: severity, issue type code, the detail codings' codes and FHIRPath locations. The whole
body stays in the dead-letter record, which is PHI-bearing like the bundle it carries.
"""

from __future__ import annotations

import re

import orjson

_MAX = 480
_SAFE_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9_.\[\]()]*$")  # Bundle.entry[3].resource.subject; no values


def summary(status: int, body: bytes) -> str:
    try:
        outcome = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"HTTP {status}; body is not JSON"
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return f"HTTP {status}; no OperationOutcome"
    parts = []
    for issue in outcome.get("issue") or ():
        text = f"{issue.get('severity', '?')}/{issue.get('code', '?')}"
        codes = [c.get("code") for c in ((issue.get("details") or {}).get("coding") or ()) if c.get("code")]
        if codes:
            text += " " + ",".join(str(c) for c in codes)
        paths = [p for p in (issue.get("expression") or issue.get("location") or ()) if _SAFE_PATH.match(str(p))]
        if paths:
            text += " at " + ",".join(paths[:3])
        parts.append(text)
    out = f"HTTP {status}; " + ("; ".join(parts) if parts else "no issues")
    return out[:_MAX]
