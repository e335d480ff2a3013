#!/usr/bin/env bash
# Make a Docker engine answer on this machine, idempotently. For development
# machines and CI runners without systemd (the daemon is started by hand).
#
#   scripts/ensure-docker.sh            engine only
#   scripts/ensure-docker.sh --arm64    also register qemu-user-static for linux/arm64 containers
#   scripts/ensure-docker.sh --standin  also install debootstrap (`lambdakit images build-standins`)
#
# Environment: DOCKERD_LOG (default /var/log/lambdakit-dockerd.log),
# DOCKERD_WAIT_S (default 60), DOCKERD_STORAGE_DRIVER (skip the overlay2 -> vfs probe).
set -euo pipefail

log=${DOCKERD_LOG:-/var/log/lambdakit-dockerd.log}
wait_s=${DOCKERD_WAIT_S:-60}
want_arm64=0
want_standin=0

for arg in "$@"; do
  case $arg in
    --arm64) want_arm64=1 ;;
    --standin) want_standin=1 ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ensure-docker: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

say() { echo "ensure-docker: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=0
apt_install() {
  if [ $apt_updated -eq 0 ]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

engine_up() { docker info >/dev/null 2>&1; }

# Starts dockerd with one storage driver and waits; returns non-zero if it died
# or never answered, leaving no daemon behind.
start_dockerd() {
  local driver=$1 pid deadline
  say "starting dockerd (storage driver $driver), log in $log"
  # --iptables=false: no netfilter in these sandboxes. Never --bridge=none:
  # `sam local invoke` puts its container on the default bridge.
  as_root sh -c "nohup dockerd --iptables=false --storage-driver=$driver >>'$log' 2>&1 & echo \$!" >/tmp/lambdakit-dockerd.pid
  pid=$(cat /tmp/lambdakit-dockerd.pid)
  deadline=$((SECONDS + wait_s))
  while [ $SECONDS -lt $deadline ]; do
    if engine_up; then
      say "engine ready (pid $pid, $driver)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      say "dockerd with $driver exited; last log lines:"
      tail -n 5 "$log" >&2 || true
      return 1
    fi
    sleep 0.5
  done
  say "dockerd did not answer within ${wait_s}s; stopping it"
  as_root kill "$pid" 2>/dev/null || true
  return 1
}

ensure_engine() {
  if engine_up; then
    return 0
  fi
  if ! command -v dockerd >/dev/null 2>&1; then
    say "installing docker.io"
    apt_install docker.io
  fi
  if pgrep -x dockerd >/dev/null 2>&1; then
    # A daemon is starting (or wedged): give it the same bounded wait.
    local deadline=$((SECONDS + wait_s))
    while [ $SECONDS -lt $deadline ]; do engine_up && return 0; sleep 0.5; done
    say "a dockerd process exists but does not answer; see its log, or stop it and rerun"
    return 1
  fi
  local driver
  for driver in ${DOCKERD_STORAGE_DRIVER:-overlay2 vfs}; do
    start_dockerd "$driver" && return 0
  done
  say "could not start dockerd; see $log"
  return 1
}

# `sam local invoke` runs its container on the default bridge. A second dockerd
# on the same host can delete docker0 under a running daemon, which then fails
# every container start on that network; say so rather than let SAM time out.
check_bridge() {
  if [ -z "${DOCKER_HOST:-}" ] && command -v ip >/dev/null 2>&1 && ! ip link show docker0 >/dev/null 2>&1; then
    say "warning: the default bridge docker0 is missing: containers on the default network cannot start."
    say "  restart dockerd, or: ip link add docker0 type bridge; ip addr add 172.17.0.1/16 dev docker0; ip link set docker0 up"
  fi
}

ensure_arm64() {
  if [ "$(uname -m)" = aarch64 ]; then
    return 0
  fi
  if ! command -v qemu-aarch64-static >/dev/null 2>&1 || ! command -v update-binfmts >/dev/null 2>&1; then
    say "installing qemu-user-static and binfmt-support"
    apt_install qemu-user-static binfmt-support
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    as_root mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    as_root update-binfmts --enable qemu-aarch64
  fi
  say "linux/arm64 emulation registered ($(head -n 1 /proc/sys/fs/binfmt_misc/qemu-aarch64))"
}

ensure_engine
check_bridge
if [ $want_arm64 -eq 1 ]; then ensure_arm64; fi
if [ $want_standin -eq 1 ] && ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  apt_install debootstrap
fi
