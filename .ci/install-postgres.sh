#!/bin/sh
# Install the PostgreSQL server binaries the test suites run throwaway clusters from
# (test/support/postgres-cluster.ts). Idempotent: does nothing when /usr/lib/postgresql/*/bin/initdb
# exists. The tests start their own clusters, so the package's system cluster must not run.
set -eu

have_initdb() {
  for f in /usr/lib/postgresql/*/bin/initdb; do
    [ -x "$f" ] && return 0
  done
  return 1
}

if have_initdb; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-postgres: PostgreSQL server binaries are missing and this is not root; run as root or install the 'postgresql' package" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Keep maintainer scripts from starting the default cluster: policy-rc.d exit 101 forbids
# service starts during this install only.
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
apt-get install -y --no-install-recommends postgresql

# Without systemd or with policy-rc.d ignored, a cluster may still have been started: stop it.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters --no-header 2>/dev/null | while read -r version name _port status _rest; do
    case "$status" in
      online*) pg_ctlcluster "$version" "$name" stop -m fast || true ;;
    esac
  done
fi

have_initdb || { echo "install-postgres: postgresql installed but no initdb under /usr/lib/postgresql/*/bin" >&2; exit 1; }
echo "install-postgres: $(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
