#!/usr/bin/env bash
# Run LocalStack on this host without its Docker image: an isolated venv with a
# Python 3.13+ interpreter, idempotently.
#
#   scripts/localstack.sh venv                       create or refresh the venv only
#   scripts/localstack.sh start [--lambda-standins]  venv, start, wait for /_localstack/health
#   scripts/localstack.sh stop                       stop what start started, remove its data
#   scripts/localstack.sh status                     exit 0 when it answers, 1 otherwise
#
# --lambda-standins: for machines that can neither download LocalStack's Lambda
# runtime-init binary nor pull Lambda runtime images. lambdakit's STAND-INS take
# their place (`lambdakit localstack standins`): its own init, which speaks
# LocalStack's init contract, and its stand-in runtime images, served from a
# loopback registry (Debian's docker-registry, installed when missing). Lambda
# code then runs for real in containers on Docker's default bridge, and
# LocalStack listens on the bridge address too, so they can call back.
# Needs a Docker engine (scripts/ensure-docker.sh) and lambdakit (the venv's).
#
# Environment: LOCALSTACK_PORT (default 4566), LOCALSTACK_STATE_DIR (pid, logs and
# data; default .cache/localstack), LOCALSTACK_VENV (default $LAMBDAKIT_CACHE/localstack-venv,
# LAMBDAKIT_CACHE defaulting to ~/.cache/lambdakit: shared by clones, so CI builds it once),
# LOCALSTACK_PYTHON (an interpreter to use), LOCALSTACK_WAIT_S (default 120),
# LOCALSTACK_REGISTRY_PORT (default 5055), LAMBDAKIT (the lambdakit to run).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
port=${LOCALSTACK_PORT:-4566}
state=${LOCALSTACK_STATE_DIR:-$top/.cache/localstack}
venv=${LOCALSTACK_VENV:-${LAMBDAKIT_CACHE:-$HOME/.cache/lambdakit}/localstack-venv}
wait_s=${LOCALSTACK_WAIT_S:-120}
registry_port=${LOCALSTACK_REGISTRY_PORT:-5055}
lambdakit=${LAMBDAKIT:-$(command -v lambdakit || echo "$top/.venv/bin/lambdakit")}

# The release seen working offline with its server extra ([runtime]; the bare
# package is only the CLI), and the pins it needs there: newer cbor2, pyOpenSSL
# and cryptography break its start-up; service_identity is imported but not declared.
requirements=(
  "localstack-core[runtime]==2026.3.0"
  "cbor2<6"
  "pyopenssl<25"
  "cryptography<45"
  "service_identity"
)

# localstack-core 2026.3.0 declares Python >= 3.10 but imports warnings.deprecated,
# which exists from 3.13 on: on 3.12 its runtime components silently fail to load.
min_python=3.13

# What `lambdakit localstack standins` pushes (builder/app/localstack.py's REPOSITORY).
standin_repo=127.0.0.1:$registry_port/lambdakit/lambda-python

say() { echo "localstack: $*" >&2; }
health_url="http://127.0.0.1:$port/_localstack/health"
answers() { curl -fsS --max-time 2 "$health_url" >/dev/null 2>&1; }
registry_answers() { curl -fsS --max-time 2 "http://127.0.0.1:$registry_port/v2/" >/dev/null 2>&1; }
ours() { [ -f "$state/pid" ] && kill -0 "$(cat "$state/pid")" 2>/dev/null; }

# Prints an interpreter of Python >= $min_python: LOCALSTACK_PYTHON, pyenv's
# builds (oldest that qualifies first), then PATH.
find_python() {
  local candidates=() root dir name
  [ -n "${LOCALSTACK_PYTHON:-}" ] && candidates+=("$LOCALSTACK_PYTHON")
  root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for dir in $(printf '%s\n' "$root"/versions/3.* | sort -V); do
    candidates+=("$dir/bin/python3")
  done
  for name in python3.13 python3.14 python3; do
    command -v "$name" >/dev/null 2>&1 && candidates+=("$(command -v "$name")")
  done
  for name in "${candidates[@]}"; do
    if [ -x "$name" ] && "$name" -c "import sys, venv; sys.exit(sys.version_info < (${min_python/./, }))" 2>/dev/null; then
      echo "$name"
      return 0
    fi
  done
  return 1
}

venv_ready() { [ -x "$venv/bin/python" ] && [ "$(cat "$venv/.lambdakit-requirements" 2>/dev/null)" = "$1" ]; }

ensure_venv() {
  local wanted="python>=$min_python ${requirements[*]}" python
  if venv_ready "$wanted"; then
    return 0
  fi
  # The venv is shared by clones and test runs: one creates it, the others wait.
  mkdir -p "$(dirname "$venv")"
  exec {lock}>"$venv.lock"
  flock "$lock"
  if venv_ready "$wanted"; then
    return 0
  fi
  if ! python=$(find_python); then
    say "no Python $min_python or newer found (LocalStack's runtime does not load on older ones)."
    say "fix: pyenv install $min_python, or set LOCALSTACK_PYTHON to such an interpreter"
    return 2
  fi
  say "creating $venv with $python ($("$python" --version 2>&1)); takes about 2 minutes"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  mkdir -p "$state"
  if ! "$venv/bin/python" -m pip install --disable-pip-version-check "${requirements[@]}" >"$state/pip.log" 2>&1; then
    say "pip install failed; last lines of $state/pip.log:"
    grep -v '^WARNING: Location' "$state/pip.log" | tail -n 15 >&2
    return 1
  fi
  echo "$wanted" >"$venv/.lambdakit-requirements"
  say "venv ready"
}

start_registry() {
  if registry_answers; then
    return 0
  fi
  if ! command -v docker-registry >/dev/null 2>&1; then
    say "installing Debian's docker-registry"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-registry >&2
  fi
  mkdir -p "$state/registry"
  printf '%s\n' 'version: 0.1' 'storage:' '  filesystem:' \
    "    rootdirectory: $state/registry/data" 'http:' "  addr: 127.0.0.1:$registry_port" \
    >"$state/registry/config.yml"
  setsid docker-registry serve "$state/registry/config.yml" >"$state/registry/log" 2>&1 </dev/null &
  echo $! >"$state/registry.pid"
  local deadline=$((SECONDS + 20))
  until registry_answers; do
    if [ $SECONDS -ge $deadline ]; then
      say "the loopback registry did not answer on port $registry_port; see $state/registry/log"
      return 1
    fi
    sleep 0.3
  done
}

# LocalStack's settings for the stand-ins, one KEY=VALUE a line, into the file $2.
prepare_standins() {
  local data=$1 out=$2
  bash "$top/scripts/ensure-docker.sh"
  start_registry
  if ! "$lambdakit" localstack standins --filesystem-root "$data" --registry "127.0.0.1:$registry_port" >"$out"; then
    say "the Lambda stand-ins could not be prepared (see above)"
    return 1
  fi
}

start() {
  local standins=$1
  if answers; then
    if ours; then
      if [ "$standins" -eq 1 ] && [ ! -f "$state/standins.env" ]; then
        say "already running on port $port without the Lambda stand-ins; stop it first (scripts/localstack.sh stop)"
        return 2
      fi
      say "already running on port $port (pid $(cat "$state/pid"))"
      return 0
    fi
    say "something else already answers on port $port; stop it or set LOCALSTACK_PORT"
    return 2
  fi
  ensure_venv
  mkdir -p "$state"
  local data log=$state/localstack.log pid deadline extra=() listen="127.0.0.1:$port" bridge
  data=$(mktemp -d "$state/data.XXXXXX")
  echo "$data" >"$state/data"
  if [ "$standins" -eq 1 ]; then
    prepare_standins "$data" "$state/standins.env"
    mapfile -t extra <"$state/standins.env"
    # Lambda containers sit on the default bridge, where 127.0.0.1 is the container:
    # LocalStack listens on the host's bridge address too and tells them to use it.
    bridge=$("$lambdakit" bridge-address)
    listen="$listen,$bridge:$port"
    extra+=(HOSTNAME_FROM_LAMBDA="$bridge" LAMBDA_DOCKER_NETWORK=bridge)
  fi
  say "starting on 127.0.0.1:$port, log in $log"
  # Settings seen working on the host (shared/notes/offline-machine.md): no
  # Docker-in-Docker assumptions, no DNS server, no certificate download, SQS
  # queue URLs by path so that one port serves everything.
  env OVERRIDE_IN_DOCKER=0 GATEWAY_SERVER=hypercorn \
    GATEWAY_LISTEN="$listen" LOCALSTACK_HOST="127.0.0.1:$port" \
    SQS_ENDPOINT_STRATEGY=path DNS_ADDRESS=0 DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 \
    FILESYSTEM_ROOT="$data" "${extra[@]}" \
    setsid "$venv/bin/python" -m localstack.runtime.main >"$log" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$state/pid"
  deadline=$((SECONDS + wait_s))
  while [ $SECONDS -lt $deadline ]; do
    if answers; then
      say "ready (pid $pid) at http://127.0.0.1:$port"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "LocalStack exited during start-up; last log lines:"
      tail -n 15 "$log" >&2 || true
      rm -f "$state/pid"
      return 1
    fi
    sleep 0.5
  done
  say "no answer from $health_url within ${wait_s}s; stopping it (log: $log)"
  stop
  return 1
}

# Signals a process group that setsid started, waits for its leader, then kills.
stop_group() {
  local pid=$1 deadline=$((SECONDS + 20))
  kill -TERM -- "-$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  kill -KILL -- "-$pid" 2>/dev/null || true
}

# Lambda containers this LocalStack started and did not remove (it was killed):
# those whose runtime endpoint names its port.
remove_lambda_containers() {
  command -v docker >/dev/null 2>&1 || return 0
  local id env
  for id in $(docker ps -aq --filter name=localstack-main-lambda- 2>/dev/null); do
    # Read whole, not piped into grep -q: under pipefail an early exit of grep fails the pipe.
    env=$(docker inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$id" 2>/dev/null || true)
    if [[ $env =~ LOCALSTACK_RUNTIME_ENDPOINT=http://[^/]*:$port/ ]]; then
      docker rm -f "$id" >/dev/null 2>&1 || true
    fi
  done
}

stop() {
  if [ -f "$state/pid" ]; then
    stop_group "$(cat "$state/pid")"
    say "stopped (pid $(cat "$state/pid"))"
    rm -f "$state/pid"
  fi
  remove_lambda_containers
  if [ -f "$state/registry.pid" ]; then
    stop_group "$(cat "$state/registry.pid")"
    rm -rf "$state/registry.pid" "$state/registry" "$state/standins.env"
    # The tags pushed and pulled through this registry name its port: only untag them.
    docker images --format '{{.Repository}}:{{.Tag}}' 2>/dev/null | grep "^${standin_repo}:" |
      xargs -r docker rmi >/dev/null 2>&1 || true
  fi
  if [ -f "$state/data" ]; then
    rm -rf "$(cat "$state/data")" "$state/data"
  fi
}

command=${1:-}
[ $# -gt 0 ] && shift
standins=0
for arg in "$@"; do
  case $arg in
    --lambda-standins) standins=1 ;;
    *) say "unknown option $arg (try --help)"; exit 2 ;;
  esac
done

case $command in
  venv) ensure_venv ;;
  start) start "$standins" ;;
  stop) stop ;;
  status) answers ;;
  -h | --help | "") sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' ;;
  *) say "unknown command $command (try --help)"; exit 2 ;;
esac
