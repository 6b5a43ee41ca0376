"""Bounded smoke run of the seeded HL7 mutation fuzzer (benchmarks/hl7_fuzz.py has the long run and its figures
are in docs/HL7_FHIR.md): every mutated file is a bundle or a dead letter, never a crash, a hang or an
invalid-fhir dead letter."""

from __future__ import annotations

from benchmarks.hl7_fuzz import Mutator, fuzz


def test_mutator_is_seeded_and_covers_every_operation():
    first, second = Mutator(7), Mutator(7)
    assert [first.input() for _ in range(50)] == [second.input() for _ in range(50)]
    mutator = Mutator(3)
    ops = {op for _ in range(400) for op in mutator.input()[0].split("+")}
    assert len(ops) == len(mutator.ops)


def test_fuzz_smoke_run_accounts_for_every_input():
    figures = fuzz(seed=20240307, count=1000, timeout_s=20)
    assert figures.inputs == 1000
    assert (figures.crashes, figures.hangs, figures.unaccounted, figures.invalid_fhir) == (0, 0, 0, 0), figures.failures
    assert figures.bundles > 0 and figures.dead_letters > 0  # both paths were exercised
    assert "malformed" in figures.reasons  # escape bombs and broken structures reached the checks
