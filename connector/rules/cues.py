"""Cue tables for the scope engine.

``CHEXPERT_CUES`` is a surface-phrase translation of the CheXpert labeler's dependency patterns
(data/chexpert/patterns/*.txt: pre_negation_uncertainty, negation, post_negation_uncertainty) and NegBio's
generic patterns (data/negbio/patterns); each group names the pattern it stands for. ``IMPROVED_CUES`` adds what
LABELING_GUIDELINES.md reads as hedges or negations that CheXpert's patterns miss.
"""

from __future__ import annotations

from dataclasses import replace

from connector.rules.scope import Cue, CueSet, Direction, Kind

FWD, BWD, BOTH = Direction.FORWARD, Direction.BACKWARD, Direction.BOTH

# Heart / mediastinum mention words that CheXpert's "stable silhouette" rule applies to.
_CARDIOMEDIASTINAL = r"cardiomediastin|pericardial|mediastin|contour|configuration|silhouette|size|heart|shadow"
# Prepositions and conjunctions that end the scope of an attributive adjective ("normal heart WITH edema").
_ADJ_STOP = r"\b(?:with|without|in|at|on|to|from|for|and\s+(?:a|an|the|mild|small|large|moderate))\b|,"

# Adjectives that may stand before a comma inside one noun phrase ("mild, XXXX opacity").
_ADJECTIVES = ("mild", "small", "minimal", "subtle", "faint", "patchy", "streaky", "large", "moderate", "stable")
_POST_ADJECTIVES = ("possible", "suspected", "questioned", "less likely", "obscured")
_IMPROVED_POST_ADJECTIVES = ("likely", "probable", "equivocal")
# ... unless they modify a following verb: in "opacities likely represent atelectasis" the opacities are stated.
_NOT_ADVERB = (
    r"(?!\s+(?:represents?|representing|reflects?|reflecting|indicates?|relates?|related|due|secondary|"
    r"caused|from))"
)

TERMINATORS = Cue(
    Kind.TERMINATE,
    BOTH,
    (
        "but",
        "however",
        "although",
        "though",
        "except",
        "aside from",
        "apart from",
        "other than",
        "which",
        "nevertheless",
        "yet",
        "there",
        "whereas",
        "while",
    ),
)

PSEUDO = Cue(
    Kind.PSEUDO,
    BOTH,
    (
        "no change",
        "no significant change",
        "no interval change",
        "no significant interval change",
        "no appreciable change",
        "without change",
        "without interval change",
        "not changed",
        "not significantly changed",
        "no increase",
        "no significant increase",
        "not only",
        "gram negative",
        "not necessarily",
        "not certain if",
        "not clear",
    ),
)

# -- pre_negation_uncertainty.txt -------------------------------------------------------------------------------
CHEXPERT_PRE_UNCERTAIN = (
    Cue(
        Kind.PRE_UNCERTAIN,
        FWD,
        (
            "cannot exclude",
            "can not exclude",
            "cannot rule out",
            "can not rule out",
            "cannot be ruled out",
            "no new",
            "no new area of",
            "no definite",
            "no obvious",
            "no evidence to rule out",
        ),
    ),
    Cue(
        Kind.PRE_UNCERTAIN,
        BWD,
        ("not excluded", "not be excluded", "cannot be excluded", "can not be excluded", "not been excluded"),
        copula="optional",
    ),
)

# -- negation.txt (+ NegBio neg_patterns.txt) -------------------------------------------------------------------
CHEXPERT_NEGATION = (
    Cue(
        Kind.NEGATION,
        FWD,
        (
            "no",
            "not",
            "without",
            "negative for",
            "free of",
            "clear of",
            "clearing of",
            "cleared",
            "rather than",
            "rule out",
            "ruled out",
            "exclude",
            "history of",
            "disappearance of",
            "resolution of",
            "resolved",
            "drainage of",
            "removal of",
            "no evidence of",
            "without evidence of",
            "no development of",
            "without development of",
            "no focus of",
            "no area of",
            "no longer",
            "absence of",
        ),
    ),
    # "normal heart size", "unremarkable mediastinum": the adjective governs the noun phrase after it.
    Cue(Kind.NEGATION, FWD, ("normal", "unremarkable", "normal appearance of"), window=5, stop=_ADJ_STOP),
    # "heart size normal" (no copula: only the words right before it).
    Cue(Kind.NEGATION, BWD, ("normal", "unremarkable"), window=3, stop=_ADJ_STOP),
    Cue(Kind.NEGATION, BWD, ("normal", "unremarkable", "clear", "negative"), copula="required"),
    Cue(
        Kind.NEGATION,
        BWD,
        (
            "within normal limits",
            "within the normal limits",
            "within normal range",
            "at the upper limits? of normal",
            "at upper limits? of normal",
            "upper limits? of normal",
            "not enlarged",
            "resolved",
            "cleared",
            "removed",
            "been removed",
            "absent",
            "no longer seen",
            "no longer visualized",
            "no longer present",
            "not seen",
            "not visualized",
            "not demonstrated",
            "not identified",
            "previously demonstrated",
        ),
        copula="optional",
    ),
)

# -- post_negation_uncertainty.txt (+ NegBio uncertainty_patterns.txt) ------------------------------------------
CHEXPERT_UNCERTAIN = (
    Cue(
        Kind.UNCERTAIN,
        FWD,
        (
            "possible",
            "possibly",
            "presumably",
            "probable",
            "questionable",
            "suspect",
            "suspected",
            "suspicious for",
            "suspicious of",
            "suspicion of",
            "suspicion for",
            "question of",
            "questioned",
            "suggestion of",
            "favor",
            "favors",
            "consider",
            "considered",
            "concern for",
            "concerning for",
            "worrisome for",
            "maybe",
            "secondary to",
            "may represent",
            "could represent",
            "might represent",
            "may reflect",
            "could reflect",
            "may indicate",
            "may include",
            "possibly reflecting",
            "may be due to",
            "could be due to",
            "may be related to",
            "could be related to",
            "may be compatible with",
            "may be consistent with",
            "differential diagnosis includes",
            "differential diagnosis would include",
            "correlation for symptoms of",
            "correlate clinically for",
            "clinical correlation for",
            "borderline",
            "less likely",
        ),
    ),
    # A modal hedges what it governs ("may reflect atelectasis"), not its subject ("airspace disease, may reflect
    # atelectasis" keeps the airspace disease positive, as CheXpert's own sample output shows).
    Cue(Kind.UNCERTAIN, FWD, ("may", "might", "would", "could")),
    # "no opacity to suggest pneumonia" is CheXpert's "no NN to suggest X" negation: "suggest" must not cut the
    # scope of the "no" before it.
    Cue(Kind.UNCERTAIN, FWD, ("suggest", "suggests", "suggesting"), interrupts=False),
    *(
        # "pneumonia is suspected" / "pneumonia suspected" hedge the noun before them, but in "opacity, possible
        # pneumonia" the adjective belongs to what follows: without a copula only the adjacent words count.
        Cue(Kind.UNCERTAIN, BWD, _POST_ADJECTIVES, copula="required"),
        Cue(Kind.UNCERTAIN, BWD, tuple(p + _NOT_ADVERB for p in _POST_ADJECTIVES), window=1, stop=r"[,;:]"),
    ),
    Cue(
        Kind.UNCERTAIN,
        BWD,
        (
            "poorly evaluated",
            "incompletely evaluated",
            "not well evaluated",
            "not well visualized",
            "not well seen",
            "not clearly seen",
            "not clearly visualized",
            "not appreciated",
            "could appear",
            "may be present",
            "could be present",
            "might be present",
            "may be seen",
            "may be noted",
            "may be developing",
            "may have this appearance",
        ),
        copula="optional",
    ),
    Cue(Kind.UNCERTAIN, BOTH, ("obscuring", "obscures")),
    # "X versus Y", "X or Y", "X and/or Y" (conj:or, conj:versus, cc:and/or): both alternatives are hedged.
    Cue(Kind.UNCERTAIN, BOTH, ("versus", "vs", "or", "and/or", "/"), window=3, interrupts=False),
    # "stable/unchanged heart size or silhouette", "similar to prior".
    Cue(
        Kind.UNCERTAIN,
        BOTH,
        ("stable", "unchanged", "not changed", "similar to prior", "similar to the prior", "stable appearance of"),
        window=3,
        copula="optional",
        mention_filter=_CARDIOMEDIASTINAL,
        weak=True,
        interrupts=False,
    ),
)

CHEXPERT_CUES = CueSet((TERMINATORS, PSEUDO, *CHEXPERT_PRE_UNCERTAIN, *CHEXPERT_NEGATION, *CHEXPERT_UNCERTAIN))

# -- improvements toward LABELING_GUIDELINES.md ----------------------------------------------------------------
IMPROVED_EXTRA = (
    # "age-indeterminate fracture" states a fracture whose age is unknown (guidelines: old or new, it is present);
    # the "indeterminate" inside it is no hedge.
    Cue(Kind.PSEUDO, BOTH, ("age[- ]indetermin[a-z]*", "indeterminate age", "of indeterminate age")),
    # Guidelines' hedge list: likely, may/might/could represent, suggestive of, consistent with? (no: that is a
    # positive reading), equivocal, question of.
    Cue(
        Kind.UNCERTAIN,
        FWD,
        (
            "likely",
            "most likely",
            "probably",
            "suggestive of",
            "equivocal",
            "indeterminate",
            "question",
            "represents",
            "representing",
        ),
    ),
    # Redacted hedges. "Opacities, XXXX atelectasis": the word removed after a comma, right before a finding, is a
    # hedge ("likely", "probably") in these reports, as the guidelines read "XXXX represents" (annotated IU set:
    # 5 dev reports, all -1) -- unless the comma separates two adjectives ("mild, XXXX opacity").
    # "XXXX reflecting" reads like "XXXX representing".
    Cue(Kind.UNCERTAIN, FWD, (r"xxxx(?<=,\sxxxx)" + "".join(rf"(?<!{a},\sxxxx)" for a in _ADJECTIVES),), window=2),
    Cue(Kind.UNCERTAIN, FWD, ("xxxx reflect(?:s|ing)?",)),
    Cue(Kind.UNCERTAIN, BWD, _IMPROVED_POST_ADJECTIVES, copula="required"),
    Cue(Kind.UNCERTAIN, BWD, tuple(p + _NOT_ADVERB for p in _IMPROVED_POST_ADJECTIVES), window=1, stop=r"[,;:]"),
    Cue(Kind.UNCERTAIN, BWD, ("can't be excluded",), copula="optional"),
    # ConText's hypothetical context: conditionals and disclaimers state nothing about the patient.
    Cue(
        Kind.HYPOTHETICAL,
        FWD,
        ("if", "if there is", "should there be", "in the event of", "in case of"),
        interruptible=False,
    ),
    Cue(
        Kind.HYPOTHETICAL,
        BWD,
        ("may not be (?:demonstrated|seen|visible|evident|detected|visualized)", "can be occult"),
        copula="optional",
    ),
    Cue(
        Kind.NEGATION,
        FWD,
        (
            "free",
            "resolving",
            "interval resolution of",
            "no radiographic evidence of",
            "no findings of",
            "no sign of",
            "no signs of",
        ),
    ),
    Cue(
        Kind.NEGATION,
        BWD,
        (
            "not present",
            "not evident",
            "not noted",
            "no longer evident",
            "not detected",
            "not widened",
            "not (?:engorged|congested|distended|dilated)",
            "within (?:the )?limits of normal",
            "not (?:significantly|substantially|markedly|particularly|definitely) enlarged",
            # "heart and mediastinum of normal size", "normal in size and contour"
            "of normal (?:size|caliber|contour|appearance|configuration|limits)",
            "normal in (?:size|caliber|contour|appearance|configuration)",
        ),
        copula="optional",
    ),
    # Pre-negation kind: these phrases contain "normal"/"exclude", which must not turn them into negations.
    Cue(Kind.PRE_UNCERTAIN, FWD, ("can't exclude", "difficult to exclude", "can not be ruled out")),
    # Clarification (annotated IU set): a finding named only as something a follow-up should exclude ("followup
    # to ensure that there is no underlying mass") is not excluded: -1, as "cannot exclude".
    Cue(Kind.PRE_UNCERTAIN, FWD, ("ensure (?:that )?(?:there is )?no",)),
    Cue(
        Kind.PRE_UNCERTAIN,
        BOTH,
        (
            "upper limits? (?:of )?normal",
            "top limits? of normal",
            "top[- ]normal(?: limits?)?",
            "high[- ]normal(?: limits?)?",
            "upper[- ]normal",
        ),
        window=3,
        copula="optional",
        # a borderline heart/mediastinal size: "heart size upper limits of normal, pulmonary vascularity within
        # normal limits" leaves the vessels normal
        mention_filter=_CARDIOMEDIASTINAL,
    ),
    Cue(Kind.UNCERTAIN, BWD, ("borderline", "borderline (?:enlarged|in size)"), copula="optional"),
    Cue(Kind.UNCERTAIN, BWD, ("in the differential(?: diagnosis)?",), copula="optional"),
    # A differential lists alternatives, however long the sentence runs.
    Cue(
        Kind.UNCERTAIN,
        FWD,
        (
            "differential diagnos[ie]s",
            "differential considerations?",
            "differential includes",
            "considerations include",
        ),
        clause=False,
    ),
)

# CheXpert cues that contradict the guidelines: "history of X" is a present (old) finding, not a negation.
# "Upper limits of normal" heart size is the borderline case the guidelines call uncertain.
IMPROVED_DROPPED: frozenset[str] = frozenset(
    {
        "history of",
        "at the upper limits? of normal",
        "at upper limits? of normal",
        "upper limits? of normal",
        # A hedged negative is still a negative: "no definite effusion" reports no effusion.
        "no definite",
        "no obvious",
        # Clarification (annotated IU set): a finding the report names but could not fully see ("fracture of the
        # humerus, incompletely evaluated") is present: a limit of the exam, not a hedge.
        "poorly evaluated",
        "incompletely evaluated",
        "not well evaluated",
    }
)


def _without(cues: tuple[Cue, ...], dropped: frozenset[str]) -> tuple[Cue, ...]:
    return tuple(replace(c, phrases=tuple(p for p in c.phrases if p not in dropped)) for c in cues)


IMPROVED_CUES = CueSet(
    (
        TERMINATORS,
        PSEUDO,
        *_without((*CHEXPERT_PRE_UNCERTAIN, *CHEXPERT_NEGATION, *CHEXPERT_UNCERTAIN), IMPROVED_DROPPED),
        *IMPROVED_EXTRA,
    )
)
