#!/usr/bin/env bash
# The `make run` demo: preflight on the example config, then a few audit appends and a verify.
# Every step is a plain mmkit command, so this is also a template for cron jobs.
set -euo pipefail
export ARTIFACTS_DIR="${ARTIFACTS_DIR:-artifacts/demo}"
export MM_ENV="${MM_ENV:-dev}"
export MM_CONFIG_PATH="${MM_CONFIG_PATH:-config/example.yaml}"
mkdir -p "$ARTIFACTS_DIR"
AUDIT="$ARTIFACTS_DIR/audit.jsonl"

echo "== mmkit preflight (MM_ENV=$MM_ENV MM_CONFIG_PATH=$MM_CONFIG_PATH)"
mmkit preflight
echo "== mmkit config hash"
mmkit config hash --config "$MM_CONFIG_PATH"

echo "== mmkit audit append (3 entries to $AUDIT)"
cfg_hash=$(mmkit config hash --config "$MM_CONFIG_PATH")
mmkit audit append --audit "$AUDIT" --kind DEPLOY --payload "{\"cfg_hash\":\"$cfg_hash\",\"env\":\"$MM_ENV\"}"
mmkit audit append --audit "$AUDIT" --kind GUARD --payload '{"guard":"pos_skew","state":"ok"}'
echo '{"note":"payload from stdin"}' | mmkit audit append --audit "$AUDIT" --kind NOTE --payload -

echo "== mmkit audit verify"
mmkit audit verify --audit "$AUDIT"
echo "artifacts in $ARTIFACTS_DIR:"
ls -1 "$ARTIFACTS_DIR"
