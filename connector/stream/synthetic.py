"""Synthetic ORU^R01 chest X-ray messages for load tests, crash tests and benchmarks.

Every name, MRN and accession here is invented; report sentences are written for this project. Each message
gets a distinct accession and control id so that outputs can be matched to inputs one to one.
"""

from __future__ import annotations

SENTENCES = (
    "The heart is enlarged, consistent with cardiomegaly.",
    "No pleural effusion or pneumothorax.",
    "Small left pleural effusion.",
    "Possible right lower lobe pneumonia.",
    "Lungs are clear. No acute cardiopulmonary abnormality.",
    "Endotracheal tube terminates 4 cm above the carina.",
    "Mild pulmonary edema is present.",
    "Bibasilar atelectasis.",
    "No focal consolidation.",
    "Healed fracture of the right sixth rib.",
)

PATIENTS = (("ZZTESTPERSON", "ALPHONSINE", "MRN90001"), ("QQFAKESURNAME", "BARNABY", "MRN90002"),
            ("XXNOTAREALNAME", "CLEMENTINE", "MRN90003"))


def accession(i: int) -> str:
    return f"SYN{i:08d}"


def oru_message(i: int, *, padding_lines: int = 12, mllp: bool = False, status: str = "F",
                control_id: str | None = None) -> bytes:
    """One ORU^R01 (HL7 v2.5.1) with a multi-line TX report; about 2 KB at the default padding. ``status`` is
    the report status (P/F/C); a new version of the same report shares ``i`` and takes its own ``control_id``."""
    family, given, mrn = PATIENTS[i % len(PATIENTS)]
    acc = accession(i)
    findings = [SENTENCES[(i + k) % len(SENTENCES)] for k in range(3)]
    lines = ["EXAMINATION: XR CHEST 2 VIEWS", "INDICATION: Cough.", "FINDINGS:", *findings]
    lines += [f"Technique line {k}: PA and lateral views of the chest were obtained." for k in range(padding_lines)]
    lines += ["IMPRESSION:", findings[0]]
    segments = [
        f"MSH|^~\\&|RIS|SYNHOSP|RADLABEL|SYNHOSP|20250101{i % 24:02d}0000||ORU^R01^ORU_R01|{control_id or f'CTL{i:010d}'}|P|2.5.1",
        f"PID|1||{mrn}^^^SYNHOSP^MR||{family}^{given}||19700101|F",
        f"OBR|1|ORD{i:08d}|{acc}|71046^XR CHEST 2 VIEWS^CPT|||20250101{i % 24:02d}0000|||||||||||||||"
        f"20250101{i % 24:02d}3000||CR|{status}",
    ]
    segments += [f"OBX|{k + 1}|TX|71046^XR CHEST 2 VIEWS^CPT|1|{line}||||||{status}"
                 for k, line in enumerate(lines)]
    body = ("\r".join(segments) + "\r").encode()
    return b"\x0b" + body + b"\x1c\r" if mllp else body
