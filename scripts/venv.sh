#!/usr/bin/env bash
# scripts/venv.sh PYTHON: install streamrec and its dev extras into the virtualenv of PYTHON
# (the Makefile's `venv` target). pip is upgraded first: old pip backtracks for ages.
#
# pip retries a refused connection itself (--retries) and resumes a wheel cut short
# (--resume-retries), but an index page cut short mid-read ("Connection broken: IncompleteRead")
# ends the install at once: that failed a fresh-clone CI run after 47 s. So each pip step is tried
# up to ATTEMPTS times, PAUSE_S seconds apart; a real error (a conflict, a missing package) fails
# every attempt and still ends the run with pip's own message.
set -euo pipefail
PY=$1
ATTEMPTS=3
PAUSE_S=${STREAMREC_PIP_PAUSE_S:-10}

pip_step() {
  local attempt
  for ((attempt = 1; attempt <= ATTEMPTS; attempt++)); do
    "$PY" -m pip "$@" && return 0
    if ((attempt < ATTEMPTS)); then
      printf '[venv] pip %s failed (attempt %d of %d); retrying in %d s\n' \
        "$1" "$attempt" "$ATTEMPTS" "$PAUSE_S" >&2
      sleep "$PAUSE_S"
    fi
  done
  printf '[venv] FAILED: pip %s failed %d times; see pip'"'"'s message above\n' "$*" "$ATTEMPTS" >&2
  return 1
}

pip_step install -q --upgrade pip
pip_step install -q -e '.[dev]'
"$PY" -m pip check
