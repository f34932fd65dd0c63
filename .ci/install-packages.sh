#!/bin/sh
# Install the system packages the test suites need, on a fresh Debian 12 machine:
# - PostgreSQL server binaries (throwaway clusters: test/support/postgres-cluster.ts), via
#   install-postgres.sh, which keeps the package's own cluster from running;
# - openssh-server and openssh-client (a real sshd on loopback: test/support/sshd.ts).
# Idempotent: installs only what is missing.
set -eu
here="$(dirname "$0")"
sh "$here/install-postgres.sh"

if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null 2>&1 || ! command -v ssh-keygen >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-packages: openssh-server is missing and this is not root; install it (apt-get install openssh-server)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created_policy=1
  fi
  apt-get update
  apt-get install -y --no-install-recommends openssh-server openssh-client
  if [ "$created_policy" -eq 1 ]; then rm -f "$policy"; fi
fi
echo "install-packages: sshd $(/usr/sbin/sshd -V 2>&1 | head -n 1 || true)"
