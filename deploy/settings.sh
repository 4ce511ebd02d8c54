# Sourced by deploy/slot and deploy/server.sh (set HERE first): this
# server's root and settings, deploy/defaults.env overridden by
# $DEPLOY_ROOT/shared/host.env.
# shellcheck shell=bash

ROOT=${DEPLOY_ROOT:-/opt/minitwit}
SHARED=$ROOT/shared
# shellcheck disable=SC2034  # for the scripts that source this
APPS=(web api)

set -a
# shellcheck source=deploy/defaults.env
. "$HERE/defaults.env"
if [[ -f $SHARED/host.env ]]; then
  # shellcheck source=/dev/null  # written by deploy/provision.sh
  . "$SHARED/host.env"
fi
set +a

port() {
  # The port of app $1 (web or api) in slot $2, e.g. GREEN_API_PORT.
  local name="${2^^}_${1^^}_PORT"
  echo "${!name}"
}
