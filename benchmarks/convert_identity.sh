#!/usr/bin/env bash
# Byte-identity check for hot-path changes: `radlabel convert` over the same inputs with two source trees (same
# venv), both output profiles, then `diff -r` of everything written (bundles, index.jsonl, dead letters).
#
#   benchmarks/convert_identity.sh OTHER_TREE [INPUT_DIR...]   # run from the tree under test; default input:
#       $RADLABEL_SHARED/data/hl7v2 (scout logs via tools/scout_to_mllp.py), connector/samples, test fixtures,
#       200 distinct copies of the benchmark message
# OTHER_TREE: e.g. `git archive main | tar -x -C /tmp/main-tree`. FUZZ=N adds N seeded mutations of the samples
# and fixtures (benchmarks/hl7_fuzz.py, one file each; mutants of one message share bundle ids, so their bundles
# overwrite each other: the diff sees the last one, every dead letter and every index line). Exit 0 only when every
# output is identical.
set -euo pipefail
other=$(cd "$1" && pwd); shift
here=$(pwd)
py=${PYTHON:-python}
inputs=("$@")
out=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
if [ ${#inputs[@]} -eq 0 ]; then
  shared=${RADLABEL_SHARED:-/work/shared}
  # The scout logs hold HL7 inside log lines: the shared tool turns them into MLLP files (as the corpus test does).
  PYTHONPATH="$here" "$py" -c "
import sys
from pathlib import Path
from benchmarks.scope_accuracy import scout_to_mllp
scout_to_mllp(Path(sys.argv[1]), Path(sys.argv[2]))
# Plus the benchmark message in 200 distinct copies (benchmarks/hl7_path.py): chest radiographs, 9 findings each.
from benchmarks.hl7_path import distinct_messages
Path(sys.argv[3]).mkdir()
for i, raw in enumerate(distinct_messages(200)):
    (Path(sys.argv[3]) / f'{i:03d}.hl7').write_bytes(raw)" "$shared" "$out/scout" "$out/bench"
  inputs=("$out/scout" "$shared/data/hl7v2/microsoft-fhir-converter" "$here/connector/samples"
          "$here/tests/hl7_fhir/fixtures" "$out/bench")
fi
if [ "${FUZZ:-0}" -gt 0 ]; then
  mkdir "$out/fuzz"
  PYTHONPATH="$here" "$py" -c "
import sys
from benchmarks.hl7_fuzz import Mutator
m = Mutator(20261202)
for i in range(int(sys.argv[1])):
    open(f'$out/fuzz/{i:05d}.hl7', 'wb').write(m.input()[1])" "$FUZZ"
  inputs+=("$out/fuzz")
fi
mapfile -t files < <(find "${inputs[@]}" -type f ! -name LICENSE ! -name '*.py' | sort)
status=0
for profile in standalone enrich; do
  for side in other here; do
    tree=$other; [ "$side" = here ] && tree=$here
    (cd "$tree" && PYTHONPATH="$tree" "$py" -m connector.cli convert "${files[@]}" --out "$out/$side-$profile" \
      --profile "$profile" | sed 's/, "out": "[^"]*"//' > "$out/$side-$profile.summary")
  done
  written=$(find "$out/here-$profile" -name '*.json' -not -path '*/dead-letter/*' | wc -l)
  indexed=$(wc -l < "$out/here-$profile/index.jsonl")
  dead=$(find "$out/here-$profile/dead-letter" -type f 2>/dev/null | wc -l)
  if diff -r "$out/other-$profile" "$out/here-$profile" > "$out/diff-$profile" \
     && diff "$out/other-$profile.summary" "$out/here-$profile.summary" >> "$out/diff-$profile"; then
    echo "$profile: identical (${#files[@]} files, $indexed bundles written, $written distinct, $dead dead letters)"
  else
    echo "$profile: DIFFERENT"; head -20 "$out/diff-$profile"; status=1
  fi
done
exit $status
