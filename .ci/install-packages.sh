#!/bin/sh
# Install the system packages the test suites need on a fresh Debian 12 machine, only what is
# missing (idempotent):
# - PostgreSQL server binaries: the tests start throwaway clusters (test/support/postgres-cluster.ts),
#   so the package's own cluster must not run;
# - openssh-server and openssh-client: a real sshd on loopback (test/support/sshd.ts);
# - pgbouncer: the gateway benchmark's same-run baseline (bench/pg-gateway.ts);
# - chromium and poppler-utils: the evidence report is printed to PDF by Chromium and its pages
#   rendered to PNG by pdftoppm (test/evidence-report.test.ts).
set -eu

have_initdb() {
  for f in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$f" ] && return 0
  done
  return 1
}
have_ssh() {
  [ -x /usr/sbin/sshd ] && command -v ssh >/dev/null 2>&1 && command -v ssh-keygen >/dev/null 2>&1
}

missing=""
have_initdb || missing="$missing postgresql"
# pgbouncer: the same-run baseline of the gateway benchmark (npm run bench); pgbench and psql come with postgresql.
command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] || missing="$missing pgbouncer"
have_ssh || missing="$missing openssh-server openssh-client"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium fonts-dejavu-core"
command -v pdftoppm >/dev/null 2>&1 || missing="$missing poppler-utils"

if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-packages: missing:$missing — run as root, or apt-get install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # Keep maintainer scripts from starting services: policy-rc.d exit 101 forbids service starts
  # during this install only.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  cleanup() {
    if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
  }
  trap cleanup EXIT
  apt-get update
  # shellcheck disable=SC2086
  apt-get install -y --no-install-recommends $missing
  # Without systemd or with policy-rc.d ignored, a cluster may still have been started: stop it.
  if command -v pg_lsclusters >/dev/null 2>&1; then
    pg_lsclusters --no-header 2>/dev/null | while read -r version name _port status _rest; do
      case "$status" in
        online*) pg_ctlcluster "$version" "$name" stop -m fast || true ;;
      esac
    done
  fi
  # The same for the package's own pgbouncer: the benchmark starts its own.
  pkill -x pgbouncer 2>/dev/null || true
fi

have_initdb || { echo "install-packages: postgresql installed but no initdb under /usr/lib/postgresql/*/bin" >&2; exit 1; }
have_ssh || { echo "install-packages: openssh installed but sshd/ssh/ssh-keygen are missing" >&2; exit 1; }
echo "install-packages: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1), $(/usr/sbin/sshd -V 2>&1 | head -n 1 || true)"
