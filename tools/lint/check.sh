#!/usr/bin/env bash
# make lint's contract checks, on the documents a client or a consumer reads:
# - the AsyncAPI document (libs/contracts/asyncapi.yaml, `make contracts`) by the AsyncAPI
#   project's own parser (validate-asyncapi.mjs);
# - the gateway's merged OpenAPI document, built in-process (merged_openapi.py), by Spectral with
#   the OWASP API Security ruleset and our own request-side rules (.spectral.yaml).
# Any error or warning of either fails. The npm tools are pinned in package-lock.json and
# installed with `npm ci` only when node_modules is missing or older than the lock file.
#   tools/lint/check.sh [--asyncapi FILE] [--openapi FILE]   (other documents: the tests' copies)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
asyncapi="$root/libs/contracts/asyncapi.yaml"
openapi=""
while [ $# -gt 0 ]; do
  case "$1" in
    --asyncapi) asyncapi="$(realpath "$2")"; shift 2 ;;
    --openapi) openapi="$(realpath "$2")"; shift 2 ;;
    *) echo "usage: $0 [--asyncapi FILE] [--openapi FILE]" >&2; exit 2 ;;
  esac
done

if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: install Node.js 18.18+ (Debian: apt-get install nodejs npm) for the contract lint" >&2
  exit 1
fi
cd "$here"
# node_modules/.package-lock.json is what npm last installed; a newer lock file → reinstall.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The AsyncAPI check runs while the OpenAPI document is built and linted (each is mostly
# start-up: Node's, and importing every service); reported one after the other.
node validate-asyncapi.mjs "$asyncapi" >"$work/asyncapi.out" 2>&1 &
asyncapi_pid=$!
status=0
if [ -z "$openapi" ]; then
  openapi="$work/openapi.json"
  "$root/.venv/bin/python" "$here/merged_openapi.py" >"$openapi" || status=1
fi
npx --no-install spectral lint --quiet --ruleset .spectral.yaml --fail-severity=warn \
  --format=text "$openapi" >"$work/openapi.out" 2>&1 || status=1
wait "$asyncapi_pid" || status=1
echo "AsyncAPI ($asyncapi):"
cat "$work/asyncapi.out"
echo "OpenAPI, Spectral OWASP ($openapi):"
if [ -s "$work/openapi.out" ]; then cat "$work/openapi.out"; else echo "no findings"; fi
exit "$status"
