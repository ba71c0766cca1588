#!/usr/bin/env bash
# Quick start: install what is missing, build (release), run the server on its embedded defaults
# (127.0.0.1:8080, data in ./parley-data) with the demo on (`--demo`: the demo shop at /demo and
# agent-console sign-in links printed at start). Extra arguments go to `parley serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build -c release --product parley
exec .build/release/parley serve --demo "$@"
