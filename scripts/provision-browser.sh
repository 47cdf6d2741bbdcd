#!/usr/bin/env bash
# Chromium and its WebDriver from Debian packages, for the console's browser test
# (tests/integration/test_console_browser.py drives them with selenium; it installs nothing at
# run time). Idempotent: a machine that has both binaries is done in no time. Needs root or
# sudo for apt-get; prints the two paths on its last stdout line.
source "$(dirname "$0")/lib.sh"

lock browser
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  need apt-get "install chromium and chromium-driver with your system's package manager"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  install_browser() {
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver
  }
  timed "chromium + chromium-driver from Debian" install_browser
fi
log "browser: $(chromium --version 2>/dev/null), $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2)"
echo "$(command -v chromium) $(command -v chromedriver)"
