#!/usr/bin/env bash
# The Debian packages of tests/system-packages.txt (`make deps` runs this).
#
#   tests/system-packages.sh missing   list the ones not installed
#   tests/system-packages.sh install   install those, as root (apt-get)
set -euo pipefail

LIST=$(dirname "$0")/system-packages.txt

wanted() { sed 's/#.*//' "$LIST" | awk 'NF { print $1 }'; }

missing() {
  local package
  for package in $(wanted); do
    dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$' ||
      echo "$package"
  done
}

if ! command -v dpkg-query >/dev/null; then
  echo "deps: not a Debian system; install the equivalents of these yourself: $(wanted | paste -sd ' ')" >&2
  exit 1
fi
case ${1:-} in
  missing) missing ;;
  install)
    packages=$(missing)
    if [[ -z $packages ]]; then
      echo "deps: all $(wanted | wc -l) packages of $LIST are installed"
      exit 0
    fi
    if [[ $(id -u) != 0 ]]; then
      echo "deps: missing: $(paste -sd ' ' <<<"$packages")" >&2
      echo "deps: run it as root: sudo make deps" >&2
      exit 1
    fi
    echo "deps: installing $(paste -sd ' ' <<<"$packages")"
    apt-get update -q
    # shellcheck disable=SC2086  # one package a word
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $packages
    ;;
  *) echo "usage: $0 missing|install" >&2; exit 2 ;;
esac
