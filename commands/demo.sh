#!/usr/bin/env bash
# The `make run` demo: preflight on the example config, a few audit appends, then the live
# engine (`mmkit run`) for 60 s on the bundled recording, and a verify of the audit chain.
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

# The live engine keeps its own artifacts (audit chain, alerts, snapshots, RUN_SUMMARY.json)
# in a sub-folder; MM_RUN_SECONDS and MM_RUN_PORT (0 = any free port) change the defaults.
RUN_DIR="$ARTIFACTS_DIR/run"
RUN_SECONDS="${MM_RUN_SECONDS:-60}"
echo "== mmkit run for ${RUN_SECONDS} s on the bundled recording (paper fills; Ctrl-C stops it cleanly)"
mmkit --artifacts-dir "$RUN_DIR" run --config "$MM_CONFIG_PATH" --duration "$RUN_SECONDS" --port "${MM_RUN_PORT:-8080}"
echo "== mmkit audit verify (the run's audit chain)"
ARTIFACTS_DIR="$RUN_DIR" mmkit audit verify --audit "$RUN_DIR/audit.jsonl"
echo "artifacts in $ARTIFACTS_DIR:"
ls -1 "$ARTIFACTS_DIR"
