#!/bin/sh
# Debian's nginx-light, only to check docs/nginx-facesearch.conf with `nginx -t`
# (tests/test_docs_nginx.py); nginx is never started by the tests. Installed with apt-get only
# when nginx is missing and apt-get is available (as root); otherwise that test skips.
set -eu

if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" -ne 0 ]; then
    echo "nginx: not installed (as root: apt-get install nginx-light); its config check skips" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# The package's post-install starts nginx on port 80: keep it from starting (policy-rc.d), and
# stop it if it started anyway.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
apt-get install -y -q --no-install-recommends --no-upgrade nginx-light >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends --no-upgrade nginx-light >/dev/null 2>&1; } ||
    echo "nginx: apt-get install nginx-light failed; its config check skips" >&2
rm -f /usr/sbin/policy-rc.d
if command -v nginx >/dev/null 2>&1 && pgrep -x nginx >/dev/null 2>&1; then
    nginx -s stop 2>/dev/null || true
fi
exit 0
