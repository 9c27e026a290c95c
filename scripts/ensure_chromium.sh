#!/usr/bin/env bash
# `make test` runs this first: the report's browser test (tests/test_reproduce.py) opens report.html in headless
# Chromium. When no Chromium is installed and this machine can install Debian's package (root with apt-get, as on
# CI), it installs it; otherwise it says how, and that one test skips. It never fails the build.
set -uo pipefail
for name in chromium chromium-browser google-chrome; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the report's browser test (about a minute, once)..."
  export DEBIAN_FRONTEND=noninteractive
  if timeout 600 apt-get update -qq >/dev/null 2>&1 &&
     timeout 600 apt-get install -y -qq chromium >/dev/null 2>&1; then
    exit 0
  fi
  echo "notice: apt-get could not install chromium; the report's browser test will skip"
else
  echo "notice: no chromium here; the report's browser test will skip (install it: sudo apt install chromium)"
fi
exit 0
