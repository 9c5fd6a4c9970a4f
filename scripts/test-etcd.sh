#!/usr/bin/env bash
# The etcd leg of CI: a representative subset of the API and controller tests with every test server on etcd
# (one throwaway etcd for the session, tests/etcd_cluster.py), from the venv scripts/setup.sh made.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${NANOKUBE_VENV:-$PWD/.venv}"
NANOKUBE_TEST_DATASTORE=etcd exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/apiserver --deselect tests/apiserver/test_durability.py \
  tests/controllers/test_controllers_e2e.py tests/controllers/test_restart_e2e.py \
  --deselect tests/controllers/test_controllers_e2e.py::test_endpointslices_follow_readiness_named_port_and_250_pods \
  tests/loopback/test_services.py tests/workloads/test_crds.py "$@"
