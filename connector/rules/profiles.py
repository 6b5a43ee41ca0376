"""The two rule profiles: ``chexpert`` (faithful to the CheXpert labeler) and ``improved`` (toward
LABELING_GUIDELINES.md). Every improvement is a named, tested edit on top of the faithful tables, so the
difference between the two is readable in one place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from connector.rules import cues
from connector.rules.mentions import (
    LiteralIndex,
    CARDIOMEGALY,
    ENLARGED_CARDIOMEDIASTINUM,
    OTHER,
    MentionRule,
    chexpert_phrase_regex,
    compile_rules,
    load_chexpert_phrases,
    positional_unmentions,
)
from connector.rules.scope import CueSet
from connector.rules.text import SKIPPED_SECTIONS
from mappings.vocabulary import Certainty

PROFILES = ("chexpert", "improved")

# CheXpert's post-negation uncertainty rule for these Edema phrases: uncertain unless negated.
_CHEXPERT_SOFT_EDEMA = ("vascular congestion", "pulmonary congestion", "indistinctness", "vascular prominence")
_W = r"(?<![a-z])"  # word start
_E = r"(?![a-z])"  # word end


@dataclass(frozen=True)
class Profile:
    name: str
    rules: tuple[MentionRule, ...]
    cues: CueSet
    # CheXpert aggregation exception: a positive/uncertain "chf"/"heart failure" mention adds Cardiomegaly uncertain.
    chf_implies_cardiomegaly: bool
    # Guidelines: an explicit negative beats a hedge that rests only on "stable silhouette".
    negative_beats_weak_uncertain: bool
    skip_sections: frozenset[str] = SKIPPED_SECTIONS
    literals: LiteralIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "literals", LiteralIndex(self.rules))


def _chexpert_tables() -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, list[str]]]:
    raw = load_chexpert_phrases("mention")
    mentions = {obs: [chexpert_phrase_regex(p) for p in phrases] for obs, phrases in raw.items()}
    unmentions = {
        obs: [chexpert_phrase_regex(p) for p in phrases] for obs, phrases in load_chexpert_phrases("unmention").items()
    }
    unmentions.setdefault(CARDIOMEGALY, []).extend(
        chexpert_phrase_regex(p) for p in positional_unmentions(raw[CARDIOMEGALY], strip_the=True)
    )
    unmentions.setdefault(ENLARGED_CARDIOMEDIASTINUM, []).extend(
        chexpert_phrase_regex(p) for p in positional_unmentions(raw[ENLARGED_CARDIOMEDIASTINUM], strip_the=False)
    )
    soft_edema = [chexpert_phrase_regex(p) for p in _CHEXPERT_SOFT_EDEMA]
    mentions["Edema"] = [p for p in mentions["Edema"] if p not in soft_edema]
    return mentions, unmentions, {"Edema": soft_edema}


def _edit(
    table: dict[str, list[str]],
    replace: Mapping[str, Mapping[str, str | None]] = {},
    add: Mapping[str, list[str]] = {},
) -> dict[str, list[str]]:
    out = {obs: list(v) for obs, v in table.items()}
    for obs, changes in replace.items():
        for old, new in changes.items():
            old_regex = chexpert_phrase_regex(old)
            if old_regex not in out[obs]:
                raise KeyError(f"{obs}: no CheXpert phrase {old!r} to replace")
            out[obs].remove(old_regex)
            if new is not None:
                out[obs].append(new)
    for obs, extra in add.items():
        out.setdefault(obs, []).extend(extra)
    return out


# -- improved: mention edits (each has a test in tests/rules_eval/test_rules_improved.py) -----------------------
IMPROVED_REPLACE: dict[str, dict[str, str | None]] = {
    "Support Devices": {
        "tube": rf"{_W}tubes?{_E}|{_W}tubing",  # not "tuberculosis", "tuberosity"
        "plate": rf"{_W}plates?(?![a-z]|-like|\s+like)",  # not "platelike atelectasis"
        "icd": rf"{_W}a?icds?{_E}",
        "support": r"support(?=\s+(?:devices?|lines?|tubes?|apparatus|hardware|equipment))",
        "marker": None,  # skin/nipple markers are not support devices (guidelines' list)
        "lines": rf"{_W}lines{_E}",
        "coil": rf"{_W}coils?{_E}",
    },
    "Edema": {"chf": rf"{_W}chf{_E}"},
    # Guidelines: Pleural Other is pleural thickening/plaque/scarring, fibrothorax; pulmonary (or cystic)
    # "fibrosis" is a lung finding (it blocks No Finding, see OTHER below).
    "Pleural Other": {"fibrosis": None},
    "Lung Lesion": {
        "lump": rf"{_W}lumps?{_E}",  # not "lumpectomy"
        # Guidelines: a lesion is a nodule, mass, tumour...; a "nodular opacity/density" is an opacity (Lung
        # Opacity), not a nodule (annotated IU set: 6 of 7 dev reports leave Lung Lesion empty for it).
        "nodular density": None,
        "nodular densities": None,
        "nodular opacity": None,
        "nodular opacities": None,
        "nodular opacification": None,
    },
}
IMPROVED_ADD: dict[str, list[str]] = {
    "Support Devices": [
        rf"{_W}clips?{_E}",
        r"sternotomy",
        rf"{_W}wires?{_E}",
        r"cerclage",
        rf"{_W}stents?{_E}",
        rf"{_W}ports?{_E}",
        r"port-a-cath",
        r"(?<!breast\s)prosthe(?:sis|ses|tic)",
        # a "tip" on a chest film is a line's or tube's ("right chest XXXX tip in the SVC")
        rf"{_W}tips?{_E}",
        r"tracheostomy",
        rf"{_W}generator",
        r"bone\s+anchor",
        rf"{_W}staples?{_E}",
        r"(?:pacer|pacemaker|pacing|ekg|ecg|monitor|monitoring|telemetry)\s+leads?",
        r"endotracheal",
        r"nasogastric",
        r"fixation",
        rf"{_W}sutures?{_E}",
        # "Right XXXX-A-XXXX is in XXXX": a Port-A-Cath with both words redacted; septal occluders
        r"xxxx-a-xxxx",
        r"occluder",
        # implanted nerve stimulators; orthopedic rods and (suture) anchors are hardware
        r"stimulator",
        rf"{_W}rods?{_E}",
        rf"{_W}anchors?{_E}",
    ],
    "Lung Opacity": [
        r"haziness",
        rf"{_W}hazy",
        r"air\s*-?\s*space\s+(?:process|opacit)",
        r"interstitial\s+(?:prominence|changes?|disease|thickening|opacit)",
        r"reticulo-?\s*nodular",
    ],
    "Lung Lesion": [
        r"(?:pulmonary|lung|parenchymal|spiculated)\s+lesions?",
        # guidelines: "cavitary lesion", "metastases to the lung" (bone metastases are unmentioned below)
        rf"{_W}cavit(?:y|ies|ation)",
        r"metasta(?:sis|ses|tic)",
    ],
    "Pneumonia": [r"pneumonitis"],
    "Edema": [
        r"vascular\s+congestion",
        r"pulmonary\s+congestion",
        # engorgement is congestion (guidelines: vascular congestion -> Edema); "the pulmonary XXXX are engorged":
        # the redacted noun is clear from the rest (vessels), unlike "pulmonary XXXX are normal" (left empty)
        r"(?:vascular|venous)\s+engorgement",
        r"pulmonary\s+xxxx\s+(?:are|is|appear|appears|remain|remains)\s+"
        r"(?:(?:mildly|moderately|markedly|slightly|again|still|now)\s+)?engorged",
    ],
    "Pleural Other": [
        r"pleural\s+(?:plaques?|calcifications?|scarring|reaction)",
        r"apical\s+(?:pleural\s+)?(?:cap|capping|thickening)",
        # "pleural-parenchymal", "pleuroparenchymal", "pleural-peripheral" scarring/irregularity/opacities
        r"pleur(?:al|o)[- ]?(?:parenchymal|peripheral)",
        # the costophrenic angle is a pleural recess. (Fissural thickening is not Pleural Other: clarification of
        # the annotated IU set, it goes with edema.)
        r"scar[a-z]*\s+(?:at|of|in|involving)\s+the\s+(?:left\s+|right\s+)?costophrenic",
    ],
    "Fracture": [
        r"compression\s+deformit",
        # vertebral wedging / wedge (compression) deformity; a "wedge-shaped opacity" is no bone
        rf"{_W}wedg(?:e|ed|ing)(?![- ]?shaped|[a-z])",
        r"height\s+loss",
        r"loss\s+of\s+(?:[a-z]+\s+){0,3}height",
        r"(?:osseous|bony|bone)\s+injur",
        # a healed fracture: "callus", "healed/healing rib deformity"; a bone change called (possibly)
        # post-traumatic (clarification: a deformity hedged as possibly from old trauma is -1, so the trauma word
        # makes it a fracture mention)
        rf"{_W}callus",
        r"(?:healed|healing)\s+(?:[a-z]+\s+){0,3}deformit",
        r"post-?\s*traumatic(?!\s+(?:osteo)?arthri|\s+(?:pneumothora|hemothora|hematoma|stress))",
        rf"{_W}fx{_E}",
    ],
    OTHER: [
        r"low\s+lung\s+volumes?",
        r"hypoinflat",
        r"hypoventilat",
        r"tortu",
        r"ectasia",
        r"ectatic",
        r"unfold",
        r"spondylo",
        r"osteophyt",
        r"bronchiectasis",
        r"hyperexpan",
        r"flatten",
        r"adenopathy",
        r"air\s+trapping",
        r"pectus",
        r"aneurysm",
        r"arthriti",
        r"demineraliz",
        rf"{_W}elevated",
        r"deformit",
        r"curvature",
        r"fibrosis",
        # a retained foreign body / bullet is an abnormality, not a support device
        r"foreign\s+bod",
        rf"{_W}bullets?{_E}",
        r"metasta",  # bone metastases are no Lung Lesion, but an abnormality
    ],
}
# "defib"/"tracheostomy" are devices; guidelines: devices do not block No Finding.
IMPROVED_OTHER_DROPPED = ("defib", "tracheostomy")
# CheXpert unmentions that misfire: "calcified nodul" also matches inside "uncalcified nodule".
IMPROVED_UNMENTION_REPLACE: dict[str, dict[str, str | None]] = {
    "Lung Lesion": {"calcified nodul": rf"{_W}calcified\s+nodul"},
}
IMPROVED_UNMENTION_ADD: dict[str, list[str]] = {
    "Lung Lesion": [
        # "calcified right lower lobe pulmonary nodule"; a "dense" nodule is a calcified one
        rf"{_W}(?:calcified|dense)\s+(?:[a-z]+\s+){{0,4}}nodul",
        # "nodule ... is unchanged and appears calcified", "nodules, which are densely calcified" (not "nodules,
        # most of which appear calcified": some are not)
        r"nodul[a-z]*(?:,?\s+(?:which|that)|[^.;,]{0,80}(?<![a-z])(?:is|are|and))\s+"
        r"(?:appears?\s+|seems?\s+|is\s+|are\s+)?(?:densely\s+)?calcified",
        r"nodul[a-z]*(?:\s+(?:opacit|densit)[a-z]*)?[^.;]{0,60}granulom",
        r"granulom[a-z]*[^.;]{0,30}nodul",
        r"(?:pleural|thoracic|chest|abdominal|peritoneal|oral|nasal|body|joint)\s+cavit",
        r"(?:osseous|bone|bony|skeletal|osteoblastic|osteolytic|lytic|blastic|sclerotic)\s+metasta",
        r"metasta[a-z]*(?:\s+disease)?\s+(?:to|in|of|involving)\s+(?:the\s+)?"
        r"(?:bones?|osseous|skeleton|spine|ribs?|liver|brain)",
    ],
    "Atelectasis": [
        r"(?:vertebra[a-z]*|body|bodies|compression|spine|spinal|[tl]\d{1,2})\s+(?:[a-z]+\s+)?collapse",
    ],
    # Locations, not the heart's size: "opacity overlying the cardiac silhouette", "obscured right heart border".
    "Cardiomegaly": [
        r"heart\s+borders?",
        r"(?:left|right)\s+heart\s+(?:borders?|margins?|xxxx)",
        r"(?<![a-z])(?:overl[a-z]+|over|projecting\s+over|projects\s+over|behind|through|obscur[a-z]*)\s+(?:the\s+)?"
        r"(?:(?:left|right|middle|lower|upper|superior|inferior)\s+)*(?:heart|cardiac\s+(?:silhouette|shadow))",
    ],
    "Enlarged Cardiomediastinum": [
        r"diaphragm[a-z]*\s+contours?",
        r"(?:bony|osseous|skeletal)\s+contours?",
        # "normal in size and contour" describes the structure named before it; "cardiac contour" is the heart.
        r"(?:size|shape|configuration)\s+(?:and|or)\s+contours?",
        r"in\s+contour",
        r"(?:cardiac|heart)\s+contours?",
        # locations: "clips in the mediastinum", "calcification over the anterior mediastinum"
        r"(?<![a-z])(?:in|over|overlying|into|projecting\s+over)\s+the\s+"
        r"(?:(?:anterior|posterior|middle|superior|inferior|left|right|upper|lower)\s+)*mediastinum",
    ],
    "Edema": [r"soft\s+tissue\s+edema", r"(?:subcutaneous|chest\s+wall)\s+edema"],
    # Old granulomatous disease is not pneumonia (guidelines: "no evidence of tuberculosis" -> Pneumonia empty).
    "Pneumonia": [
        r"granulomatous\s+infection",
        r"post-?\s*infectious",
        r"(?:prior|previous|old|remote)\s+(?:granulomatous\s+)?infection",
    ],
    # "pleural line" is the sign of a pneumothorax, not a catheter
    "Support Devices": [
        r"septal\s+lines",
        r"kerley\s+(?:b\s+)?lines",
        # anatomic and artefact lines: "pleural line" is the sign of a pneumothorax, "apical line ... skin fold"
        r"(?:pleural|apical|fissural|skin|azygo-?esophageal|paraspinal|paratracheal|junction|mach)\s+lines?",
    ],
    "Pleural Effusion": [r"(?:joint|knee|elbow|shoulder|hip)\s+effusions?"],
    # guidelines: a bone fracture; a broken sternotomy wire or pacer lead is a device finding
    "Fracture": [
        r"fractur[a-z]*\s+(?:of\s+)?(?:the\s+|an?\s+)?(?:[a-z]+\s+){0,2}(?:sternotomy|sternal|cerclage|pacer|pacemaker)"
        r"\s+(?:wires?|xxxx|sutures?|leads?)",
        r"(?:wires?|leads?|hardware|screws?|plates?|rods?)\s+(?:(?:is|are|appears?)\s+)?fractur",
    ],
}
# Structure mentions (see MentionRule.abnormal): which phrases name a structure rather than a finding, and the
# words that make a plain (unhedged, unnegated) mention of it positive.
_HEART_ABNORMAL = (
    r"enlarg|(?<![a-z])large|prominen|increas|widen|cardiomegaly|abnormal|globular|dilat|(?<![a-z])shift|"
    r"(?<![a-z])(?:mild|mildly|moderate|moderately|severe|severely|marked|markedly)(?![a-z])"
)
_VASCULAR_ABNORMAL = r"engorg|congest|prominen|increas|indistinct|cephaliz|redistribut|enlarg|dilat|fullness|plethor"
IMPROVED_STRUCTURES: dict[str, tuple[tuple[str, ...], str, bool]] = {
    # observation: (CheXpert phrases that are structures, abnormal-words regex, soft)
    "Cardiomegaly": (
        ("the heart", "heart size", "cardiac size", "cardiac shadow", "cardiac contour", "cardiac silhouette"),
        _HEART_ABNORMAL,
        False,
    ),
    "Enlarged Cardiomediastinum": (
        (
            "_mediastinum",
            "cardiomediastinum",
            "contour",
            "mediastinal configuration",
            "mediastinal silhouette",
            "pericardial silhouette",
            "cardiac silhouette and vascularity",
        ),
        _HEART_ABNORMAL,
        False,
    ),
}
# "cardio mediastinal" is a common spelling of "cardiomediastinal"; "cardiac and mediastinal XXXX" names both
# structures with the noun (contours/silhouette) redacted.
_CARDIOMEDIASTINAL_STRUCTURE = (
    r"cardio-?\s*mediastin[a-z]*(?:\s+(?:silhouettes?|contours?|size|shadows?|structures?|outlines?))?"
)
_CARDIAC_AND_MEDIASTINAL_REDACTED = r"cardiac\s+and\s+mediastinal\s+xxxx"
IMPROVED_STRUCTURE_ADD: dict[str, list[str]] = {
    "Cardiomegaly": [
        rf"{_W}heart(?!\s+(?:failure|size)){_E}",
        _CARDIOMEDIASTINAL_STRUCTURE,
        r"cardiac(?:\s+and\s+mediastinal)?\s+(?:silhouettes?|contours?|size|shadows?|outlines?)",
        _CARDIAC_AND_MEDIASTINAL_REDACTED,
    ],
    "Enlarged Cardiomediastinum": [
        rf"{_W}mediastinum",
        _CARDIOMEDIASTINAL_STRUCTURE,
        r"mediastinal\s+(?:width|widening|shift|structures|silhouettes?|contours?|outlines?)",
        _CARDIAC_AND_MEDIASTINAL_REDACTED,
    ],
}
# Guidelines: "normal pulmonary vascularity" -> Edema 0; abnormal vasculature is a hedge (CheXpert's
# "vascular prominence" rule); anything else about the vessels ("calcified vasculature") is no Edema mention.
IMPROVED_VASCULAR = (
    r"pulmonary\s+(?:vascularity|vasculature|vascular\s+markings)",
    r"vascular\s+markings",
    rf"{_W}vascularity",
    rf"{_W}vasculature",
)
IMPROVED_SOFT_DROPPED = ("vascular congestion", "pulmonary congestion")  # guidelines: congestion is Edema
# Guidelines: "lungs are clear" -> Lung Opacity 0 (and nothing else).
IMPROVED_FIXED: tuple[tuple[str, str, Certainty], ...] = (
    (
        "Lung Opacity",
        r"\blungs?(?:\s+(?:fields?|xxxx))?\s+(?:(?:are|is|remain|remains|appear|appears)\s+)?"
        r"(?:(?:otherwise|now|grossly|essentially|again|both|normally|well|fully|[a-z-]+\s+(?:and|but))\s+)*"
        r"clear(?![a-z])",
        Certainty.NEGATIVE,
    ),
    ("Lung Opacity", r"(?<![a-z])clear\s+lungs?(?![a-z])", Certainty.NEGATIVE),
    # same reading for the pleural spaces: no effusion
    (
        "Pleural Effusion",
        r"\bpleural\s+spaces?\s+(?:(?:are|is|remain|remains|appear|appears)\s+)?(?:otherwise\s+)?clear(?![a-z])",
        Certainty.NEGATIVE,
    ),
)


@cache
def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ValueError(f"unknown rule profile {name!r}; choose one of {', '.join(PROFILES)}")
    mentions, unmentions, soft = _chexpert_tables()
    if name == "chexpert":
        return Profile(
            name,
            tuple(compile_rules(mentions, unmentions, soft)),
            cues.CHEXPERT_CUES,
            chf_implies_cardiomegaly=True,
            negative_beats_weak_uncertain=False,
        )
    mentions = _edit(mentions, IMPROVED_REPLACE, IMPROVED_ADD)
    mentions[OTHER] = [p for p in mentions[OTHER] if p not in IMPROVED_OTHER_DROPPED]
    unmentions = _edit(unmentions, IMPROVED_UNMENTION_REPLACE, IMPROVED_UNMENTION_ADD)
    dropped_soft = {chexpert_phrase_regex(p) for p in IMPROVED_SOFT_DROPPED}
    soft = {obs: [p for p in v if p not in dropped_soft] for obs, v in soft.items()}
    structures: list[tuple[str, list[str], str, bool]] = []
    for obs, (phrases, abnormal, is_soft) in IMPROVED_STRUCTURES.items():
        moved = [chexpert_phrase_regex(p) for p in phrases]
        mentions[obs] = [p for p in mentions[obs] if p not in moved]
        structures.append((obs, moved + IMPROVED_STRUCTURE_ADD.get(obs, []), abnormal, is_soft))
    structures.append(("Edema", list(IMPROVED_VASCULAR), _VASCULAR_ABNORMAL, True))
    return Profile(
        name,
        tuple(compile_rules(mentions, unmentions, soft, IMPROVED_FIXED, structures)),
        cues.IMPROVED_CUES,
        chf_implies_cardiomegaly=False,
        negative_beats_weak_uncertain=True,
    )
