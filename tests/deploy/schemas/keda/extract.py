"""Regenerate the vendored KEDA schema subset from KEDA's CRD files (Apache-2.0, see LICENSE here).

    python tests/deploy/schemas/keda/extract.py keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml

Input: config/crd/bases/keda.sh_*.yaml of a KEDA release (v2.20.2 for the files committed here). Output, next to
this script: <kind>-keda-<version>.json, the CRD's openAPIV3Schema with descriptions removed (size) and, where a
schema lists its properties, additionalProperties: false unless it says x-kubernetes-preserve-unknown-fields. The
API server prunes unknown fields of a custom resource silently, so a misspelt ScaledObject field would be dropped
without an error on apply; the strict form makes the test catch it, as kubeconform -strict does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def strict(node: Any) -> Any:
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items() if key != "description"}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def main(paths: list[str]) -> None:
    here = Path(__file__).resolve().parent
    for path in paths:
        crd = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        kind = crd["spec"]["names"]["kind"].lower()
        for version in crd["spec"]["versions"]:
            schema = strict(version["schema"]["openAPIV3Schema"])
            # metadata is the ordinary ObjectMeta, checked by the built-in schemas' rules elsewhere.
            schema["properties"]["metadata"] = {"type": "object"}
            target = here / f"{kind}-keda-{version['name']}.json"
            target.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n", encoding="utf-8")
            print(target)


if __name__ == "__main__":
    main(sys.argv[1:])
