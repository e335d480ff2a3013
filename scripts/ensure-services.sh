#!/usr/bin/env bash
# Install and start what the test suite needs beyond Python packages. Idempotent:
# on a machine that already has everything it does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# PostgreSQL server binaries (tests start throwaway clusters with initdb/pg_ctl).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    echo "installing PostgreSQL" >&2
    apt_install postgresql
fi

# A Docker engine (tests/docker, sam local invoke) and debootstrap for the
# offline stand-ins of the Lambda images, which the tests build on first use.
bash scripts/ensure-docker.sh --standin --arm64

# LocalStack runs on the host from its own virtual environment (tests/app
# start and stop it); building that environment once here keeps test timings honest.
bash scripts/localstack.sh venv
