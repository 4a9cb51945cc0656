#!/usr/bin/env bash
# Builds the web front end into web/dist (served by the gateway at /), when it is out of date:
# `npm ci` from the committed package-lock.json, then `npm run build` (type check + Vite).
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: install Node.js 20+ (Debian: apt-get install nodejs npm) to build web/" >&2
  exit 1
fi

# node_modules/.package-lock.json is what npm last installed; newer lock file → reinstall.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

stale() {
  [ ! -f dist/index.html ] && return 0
  [ -n "$(find src public index.html package-lock.json tsconfig.json vite.config.ts -newer dist/index.html -print -quit 2>/dev/null)" ]
}
if stale; then
  npm run --silent build
else
  echo "web/dist is up to date"
fi
