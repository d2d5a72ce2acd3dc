#!/usr/bin/env bash
# Runs every suite; called by `make test` with the test settings (RECAUDO_* for a
# separate database, vhost, ports and var/test) after the infrastructure is ready.
#  1. tests/unit and tests/integration, under eventlet (nameko containers in-process,
#     real RabbitMQ in throwaway vhosts, real PostgreSQL);
#  2. the integration modules that exercise the broker's paths (RPC, events through the
#     outbox, redelivery, timers on two instances) again with RECAUDO_QUEUE_TYPE=quorum
#     (every RPC and event queue the services declare a quorum queue, as on a RabbitMQ
#     cluster) and RECAUDO_TEST_INSTANCES=2 (two containers of every service a test starts);
#  3. tests/e2e, without eventlet: the whole stack started by the runner, driven over
#     HTTP and in headless Chromium;
#  4. tests/faults, without eventlet: the stack against a private RabbitMQ node and
#     PostgreSQL cluster of its own, under load, through kill -9s and outages (issue 20).
# Extra arguments go to both pytest runs (e.g. make test ARGS="-k health").
set -uo pipefail
cd "$(dirname "$0")/.."
reports=var/test/reports
rm -rf "$reports"; mkdir -p "$reports"
py=.venv/bin/python
common=(-p no:cacheprovider --timeout=300 -q)

$py -m pytest "${common[@]}" -p tests.eventlet_patch --junitxml="$reports/services.xml" \
    tests/unit tests/integration "$@"
first=$?
RECAUDO_QUEUE_TYPE=quorum RECAUDO_TEST_INSTANCES=2 $py -m pytest "${common[@]}" -p tests.eventlet_patch \
    --junitxml="$reports/quorum.xml" -o junit_suite_name=quorum \
    tests/integration/test_outbox.py tests/integration/test_activities.py \
    tests/integration/test_identity_rpc.py "$@"
quorum=$?
$py -m pytest "${common[@]}" --junitxml="$reports/e2e.xml" tests/e2e "$@"
second=$?
$py -m pytest "${common[@]}" -s --junitxml="$reports/faults.xml" tests/faults "$@"
third=$?
$py deploy/junit_summary.py "$reports"/*.xml
summary=$?
# pytest's 5 means "no tests collected" (a -k filter that matched only one phase)
for rc in $first $quorum $second $third; do [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || exit "$rc"; done
exit $summary
