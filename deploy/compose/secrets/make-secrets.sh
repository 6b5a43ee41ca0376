#!/bin/sh
# Write the compose stack's secret files (once). Nothing here is committed: see .gitignore beside this script.
#   model-api-key             bearer token the model server requires
#   radlabel-settings.yaml    radlabel's YAML settings file (RADLABEL_CONFIG) holding the same token as
#                             labeler.api_key; add kafka.sasl_plain_password here for a SASL cluster.
# The files are mounted into containers that run as uid 10001: they must be readable by it (mode 0644 here;
# on a shared host chown them to 10001 and use 0400 instead).
set -eu
cd "$(dirname "$0")"
umask 077
if [ -e model-api-key ]; then echo "secrets already exist; delete them to rotate"; exit 0; fi
token="$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
printf '%s' "$token" > model-api-key
printf 'labeler:\n  api_key: "%s"\n' "$token" > radlabel-settings.yaml
chmod 0644 model-api-key radlabel-settings.yaml
echo "wrote $(pwd)/model-api-key and radlabel-settings.yaml"
