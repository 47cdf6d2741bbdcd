#!/usr/bin/env bash
# `make test`'s pytest run: the real-node end-to-end tests (tests/e2e/) in one pytest session and
# everything else in another, at the same time; the exit status is the worse of the two.
#
# Why two sessions: the end-to-end tests spend most of their ~8 minutes waiting (a node, image
# pulls, pods turning Ready, a trainer fitting MovieLens, helm and skaffold rollouts), not
# computing, so running them beside the rest saves most of that time on a 2-core machine. The
# sessions share nothing: each starts its own components on free ports, each has its own session
# id for the survivor check (tests/conftest.py), and only the e2e session starts the real node.
# The spark engine's test (tests/integration/test_spark_engine.py: a JVM fitting on both cores for
# about a minute) runs in the waiting session too, so the busy one does not wait for it, and so
# do the outage tests of tests/faults (a broker or MinIO stopped for 15-30 s, a soak, SIGKILLed
# trainers: ~250 s that are mostly waiting), which kept the busy session ~7 minutes longer than
# the waiting one (917 s against 474 s in a warm CI run). When the real node's autoscaling step
# (metrics-server, ~95 s) made the end-to-end session the longer one (759 s against 638 s
# before it), tests/faults/test_ingest_delivery.py (~110 s) went back to the busy session.
# With arguments (e.g. PYTEST_ARGS="-k serving"), one plain pytest session runs instead: a
# selection is usually small, and two sessions would both report "no tests ran".
#
# Usage: scripts/test.sh PYTHON [PYTEST ARGS...]
set -uo pipefail
py=$1; shift
if (($#)); then
  exec "$py" -m pytest "$@"
fi
log=$(mktemp "${TMPDIR:-/tmp}/streamrec-e2e.XXXXXX.log")
# Job control on: without it bash starts a background command with SIGINT ignored, so a Ctrl-C
# could only end the e2e session by SIGTERM, skipping its teardown (the node would stay up). With
# it the session is in its own process group and takes the SIGINT forwarded below, which pytest
# answers by tearing its fixtures down.
set -m
waiting=(tests/integration/test_spark_engine.py tests/faults/test_s3_outage.py
         tests/faults/test_broker_restart.py tests/faults/test_soak.py
         tests/faults/test_trainer_crash.py)
"$py" -m pytest tests/e2e "${waiting[@]}" -p no:cacheprovider >"$log" 2>&1 &
e2e=$!
set +m
trap 'kill -INT "$e2e" 2>/dev/null; wait "$e2e"; echo "[test] interrupted; e2e log: $log"; exit 130' INT TERM
"$py" -m pytest --ignore=tests/e2e "${waiting[@]/#/--ignore=}"
rest=$?
echo "[test] waiting for the end-to-end session (tests/e2e and ${#waiting[@]} waiting files, log $log)..."
wait "$e2e"
e2e_rc=$?
echo "===================== the end-to-end session (tests/e2e) ====================="
cat "$log"
rm -f "$log"
echo "[test] rest of the suite: exit $rest; end-to-end: exit $e2e_rc"
((rest != 0)) && exit "$rest"
exit "$e2e_rc"
