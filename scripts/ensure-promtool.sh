#!/usr/bin/env bash
# Makes sure .tools/bin/promtool exists for the alert-rule tests (tests/unit/test_observability.py):
# Prometheus's own checker, taken from Debian's prometheus package without installing it (the
# package's postinst would start a server).
set -euo pipefail
if [ -x .tools/bin/promtool ]; then
  exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "Fetching promtool from Debian's prometheus package…" >&2
(cd "$work" && apt-get download -qq prometheus >&2 2>/dev/null || {
  apt-get update -qq >&2 && apt-get download -qq prometheus >&2
})
dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
mkdir -p .tools/bin
install -m 0755 "$work/root/usr/bin/promtool" .tools/bin/promtool
.tools/bin/promtool --version >/dev/null
