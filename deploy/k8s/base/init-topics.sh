#!/bin/sh
# Create radlabel's topics with their partitions and retention (idempotent). Runs in the apache/kafka image as
# the compose `topics` job and the Kubernetes Job deploy/k8s/base/topics-job.yaml. Sizes: docs/OPERATIONS.md.
# Every value comes from the environment so that the job and the radlabel settings name the same topics.
set -eu

KT=/opt/kafka/bin/kafka-topics.sh
BOOTSTRAP="${BOOTSTRAP_SERVERS:?BOOTSTRAP_SERVERS is not set}"
RF="${REPLICATION_FACTOR:-3}"
# Client security for a SASL/TLS cluster: a kafka client properties file (mounted from a Secret), else none.
CONFIG_ARGS=""
if [ -n "${KAFKA_CLIENT_CONFIG:-}" ]; then CONFIG_ARGS="--command-config ${KAFKA_CLIENT_CONFIG}"; fi

create() {  # name partitions retention.ms [max.message.bytes]
    extra=""
    if [ -n "${4:-}" ]; then extra="--config max.message.bytes=$4"; fi
    # shellcheck disable=SC2086  # CONFIG_ARGS and extra are deliberately split into words
    "$KT" --bootstrap-server "$BOOTSTRAP" $CONFIG_ARGS --create --if-not-exists --topic "$1" \
        --partitions "$2" --replication-factor "$RF" --config "retention.ms=$3" $extra
    echo "topic $1: partitions=$2 retention.ms=$3 ${4:+max.message.bytes=$4}"
}

create "${INPUT_TOPIC:?}" "${INPUT_PARTITIONS:?}" "${INPUT_RETENTION_MS:?}"
create "${OUTPUT_TOPIC:?}" "${OUTPUT_PARTITIONS:?}" "${OUTPUT_RETENTION_MS:?}"
create "${DEAD_LETTER_TOPIC:?}" "${DEAD_LETTER_PARTITIONS:?}" "${DEAD_LETTER_RETENTION_MS:?}" "${DEAD_LETTER_MAX_MESSAGE_BYTES:-}"
# The FHIR sink's dead letters (bundles the FHIR server refused), apart from the connector's raw HL7 ones.
create "${SINK_DEAD_LETTER_TOPIC:?}" "${SINK_DEAD_LETTER_PARTITIONS:?}" "${SINK_DEAD_LETTER_RETENTION_MS:?}" \
    "${SINK_DEAD_LETTER_MAX_MESSAGE_BYTES:-}"
# shellcheck disable=SC2086
"$KT" --bootstrap-server "$BOOTSTRAP" $CONFIG_ARGS --describe --topic "$INPUT_TOPIC"
