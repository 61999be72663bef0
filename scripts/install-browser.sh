#!/bin/sh
# Debian's Chromium for the web page tests (tests/web, driven by Playwright with
# executable_path=/usr/bin/chromium). Installed with apt-get only when /usr/bin/chromium is
# missing and apt-get is available (as root). A browser is never downloaded any other way:
# no `playwright install`. Without Chromium the browser tests skip with a message.
set -eu

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
    echo "browser: $CHROMIUM is installed"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "browser: $CHROMIUM is missing and apt-get is not available;" \
        "install Debian's chromium package yourself (the browser tests skip until then)" >&2
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "browser: $CHROMIUM is missing; as root run: apt-get install chromium" \
        "(the browser tests skip until then)" >&2
    exit 0
fi

echo "browser: installing Debian's chromium with apt-get (--no-install-recommends)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# Only chromium and what it needs: no recommended packages, and no upgrade of packages that are
# already installed unless chromium's own dependencies require a newer version.
apt-get install -y -q --no-install-recommends --no-upgrade chromium
test -x "$CHROMIUM"
echo "browser: $CHROMIUM installed: $("$CHROMIUM" --version 2>/dev/null || true)"
