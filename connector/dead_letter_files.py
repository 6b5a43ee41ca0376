"""Dead letters written to a folder (`radlabel convert --out DIR`, `radlabel replay --to-files DIR`):
DIR/dead-letter/<n>.json with the reason, a PHI-free detail, where it came from, and the raw bytes (base64), so
nothing is lost and the message can be sent again once the cause is fixed. Numbering continues after the highest
file already there, so a second run into the same folder never overwrites one."""

from __future__ import annotations

import base64
import json
from collections import Counter
from pathlib import Path


class DeadLetterFolder:
    def __init__(self, out: Path) -> None:
        self.folder = out / "dead-letter"
        self.next = 1 + max((int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit()), default=0)
        self.reasons: Counter[str] = Counter()

    def write(self, reason: str, detail: str, source: Path | str, raw: bytes) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {
            "reason": reason,
            "detail": detail,
            "source": str(source),
            "raw_base64": base64.b64encode(raw).decode("ascii"),
        }
        path = self.folder / f"{self.next}.json"
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        self.next += 1
        self.reasons[reason] += 1
        return path
