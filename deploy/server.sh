#!/usr/bin/env bash
# What deploy.sh runs on a server, from the release it concerns.
#
#   deploy/server.sh install NAME   finish releases/NAME (deploy.sh unpacked
#                                   it): its virtualenv, the link to the
#                                   shared environment file, the schema
#                                   changes; then switch the traffic to it
#   deploy/server.sh rollback       switch back to the release that was live
#                                   before the current one
#   deploy/server.sh upstreams SLOT write nginx's upstreams file for SLOT
#                                   (the first one, when provisioning)
#
# A switch starts the release in the idle slot, checks /healthz of both
# apps, points nginx at it with a graceful reload, waits for nginx's old
# workers and the old slot's last requests, then stops the old slot. When
# the new release fails its health check the old one keeps serving, the new
# one is removed (its logs stay in journald) and this exits non-zero.
#
# Under DEPLOY_ROOT (/opt/minitwit):
#   releases/NAME            one per deploy: VERSION-TIMESTAMP, with its .venv
#   slots/blue, slots/green  links to the releases the two slots run
#   current                  link to the slot that gets the traffic
#   shared/                  minitwit.env (the apps' settings and secrets),
#                            host.env (this server's), nginx-upstreams.conf,
#                            wheels/ (pip's wheelhouse: repeated builds are
#                            offline)
#   revisions.log            a line per deploy, failed deploy and rollback
#   .deploy.lock             held while a deploy or rollback runs
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=deploy/settings.sh
. "$HERE/settings.sh"
SLOT=$HERE/slot
KEEP=${KEEP:-5}
read -ra nginx_command <<<"$NGINX_COMMAND"

die() { echo "deploy: $*" >&2; exit 1; }

relink() {
  # Point link $1 at $2 in one step: readers see the old or the new target.
  ln -sfn "$2" "$1.new" && mv -Tf "$1.new" "$1"
}

other() { if [[ $1 == blue ]]; then echo green; else echo blue; fi; }
active_slot() { basename "$(readlink "$ROOT/current" 2>/dev/null || echo none)"; }
slot_release() { basename "$(readlink "$ROOT/slots/$1" 2>/dev/null || echo none)"; }

record() {
  # revisions.log: time, event (deploy, rollback, failed), release, details.
  printf '%s %s %s slot=%s previous=%s by=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$1" "$2" "$3" "$4" "${DEPLOYED_BY:-$(id -un)}" >>"$ROOT/revisions.log"
}

answers() {
  # Whether URL $1 answers, without an error, from release $2 (the Server
  # header: waitress --ident).
  curl -fsS -m 5 -o /dev/null -D - "$1" 2>/dev/null | tr -d '\r' |
    grep -qix "server: minitwit/$2"
}

healthy() {
  # Wait until both apps of slot $1 answer /healthz from release $2; on
  # failure PROBLEM says what was wrong last.
  local slot=$1 name=$2 app url status deadline=$((SECONDS + HEALTH_TIMEOUT))
  while ((SECONDS < deadline)); do
    if ! status=$("$SLOT" status "$slot"); then
      PROBLEM=$(grep stopped <<<"$status" | paste -sd ',' -)
      return 1
    fi
    PROBLEM=
    for app in "${APPS[@]}"; do
      url="http://127.0.0.1:$(port "$app" "$slot")/healthz"
      answers "$url" "$name" || PROBLEM="$app: no 200 from $name on $url"
    done
    [[ -z $PROBLEM ]] && return 0
    sleep 0.5
  done
  PROBLEM="$PROBLEM within ${HEALTH_TIMEOUT}s"
  return 1
}

upstreams() {
  local slot=$1 file=$SHARED/nginx-upstreams.conf
  mkdir -p "$SHARED"
  printf '%s\n' "# Written by deploy/server.sh: the traffic goes to slot $slot." \
    "upstream minitwit_web { server 127.0.0.1:$(port web "$slot"); }" \
    "upstream minitwit_api { server 127.0.0.1:$(port api "$slot"); }" >"$file.new"
  mv -f "$file.new" "$file"
}

point_nginx() {
  # Send the traffic to slot $1, unless nginx refuses its configuration
  # then (the upstreams file is put back as it was).
  local file=$SHARED/nginx-upstreams.conf
  cp -p "$file" "$file.before"
  upstreams "$1"
  if ! "${nginx_command[@]}" -t -q; then
    mv -f "$file.before" "$file"
    return 1
  fi
  rm -f "$file.before"
  "${nginx_command[@]}" -s reload
}

serves_publicly() {
  # Whether nginx answers from release $1 within 10 s of the reload.
  local _
  for _ in $(seq 50); do
    answers "$PUBLIC_API_URL/healthz" "$1" && return
    sleep 0.2
  done
  return 1
}

nginx_workers() {
  # The pids of nginx's worker processes now (none if it has no pid file).
  local master
  master=$(cat "$NGINX_PID" 2>/dev/null) || return 0
  pgrep -P "$master" || true
}

drain() {
  # Wait until the nginx workers $2... (from before the reload) have exited:
  # they finish their requests first, and until then they may still send
  # new ones to the old slot. Then wait until nobody is connected to slot
  # $1's ports.
  local slot=$1 pid web api busy deadline=$((SECONDS + DRAIN_TIMEOUT))
  shift
  for pid in "$@"; do
    while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.1; done
  done
  [[ $slot != none ]] || return 0
  web=$(port web "$slot") api=$(port api "$slot")
  while ((SECONDS < deadline)); do
    busy=$(ss -Htn state established "( sport = :$web or sport = :$api )" | wc -l)
    ((busy == 0)) && return
    sleep 0.2
  done
  echo "slot $slot still has requests after ${DRAIN_TIMEOUT}s: stopping it anyway"
}

fail() {
  # Release $1 did not get the traffic (slot $2; $3 still has it) because of
  # $4: record that and stop. A release this deploy brought goes away.
  record failed "$1" "$2" "$3"
  if [[ $1 == "${NEW_RELEASE:-}" ]]; then rm -rf "${ROOT:?}/releases/$1"; fi
  if [[ $3 == none ]]; then
    die "release $1 failed: $4. Nothing was live before it"
  fi
  die "release $1 failed: $4. Rolled back: still serving $3"
}

activate() {
  # Switch the traffic to release $1; $2 is the event for revisions.log.
  local name=$1 event=$2 old new idle_before previous changed workers
  old=$(active_slot)
  new=$(other "$old")
  previous=$(slot_release "$old")
  idle_before=$(readlink "$ROOT/slots/$new" 2>/dev/null || true)
  changed=$("$SLOT" install-units "$SYSTEMD_UNIT_DIR")
  [[ -z $changed ]] || systemctl daemon-reload

  "$SLOT" stop "$new"
  mkdir -p "$ROOT/slots"
  relink "$ROOT/slots/$new" "../releases/$name"
  echo "starting $name in slot $new"
  "$SLOT" start "$new"
  if ! healthy "$new" "$name"; then
    echo "the last log lines of slot $new:" >&2
    "$SLOT" logs "$new" >&2 || true
    "$SLOT" stop "$new"
    if [[ -n $idle_before ]]; then relink "$ROOT/slots/$new" "$idle_before"; else rm -f "$ROOT/slots/$new"; fi
    fail "$name" "$new" "$previous" "its health check failed ($PROBLEM)"
  fi

  workers=$(nginx_workers)
  if ! point_nginx "$new" || ! serves_publicly "$name"; then
    if [[ $old != none ]]; then point_nginx "$old" || true; fi
    "$SLOT" stop "$new"
    fail "$name" "$new" "$previous" "nginx did not switch to it (see '$NGINX_COMMAND -t')"
  fi
  relink "$ROOT/current" "slots/$new"
  record "$event" "$name" "$new" "$previous"
  echo "$name is live in slot $new"

  # shellcheck disable=SC2086  # one pid a word
  drain "$old" $workers
  if [[ $old != none ]]; then
    "$SLOT" stop "$old"
    echo "stopped slot $old ($previous)"
  fi
}

build() {
  # The release's virtualenv, from the server's wheelhouse: offline, with
  # the wheelhouse's own pip run from its wheel (a virtualenv without pip is
  # made in a fraction of the time). The first build on a server, and one
  # with a new pin, fill the wheelhouse from the package index first. Then
  # the C MySQL driver (the dependency group mysql) the same way; where it
  # cannot be built the apps run on PyMySQL, and say so when they start.
  # The pins are pyproject.toml's dependency groups, which deploy/pins.py
  # prints: Debian's pip is older than pip install --group.
  local release=$1 wheels=$SHARED/wheels pip_wheel
  local install=(install --quiet --disable-pip-version-check --no-index
                 --find-links "$wheels")
  pins() { "$PYTHON" "$release/deploy/pins.py" --pyproject "$release/pyproject.toml" "$1"; }
  pip_wheel=$(find -L "$wheels" -name 'pip-*.whl' 2>/dev/null | sort -V | tail -n 1)
  if [[ -n $pip_wheel ]] &&
     "$PYTHON" -m venv --without-pip "$release/.venv" &&
     "$release/.venv/bin/python" "$pip_wheel/pip" "${install[@]}" -r <(pins app) 2>/dev/null; then
    :
  else
    rm -rf "$release/.venv"
    "$PYTHON" -m venv "$release/.venv" &&
      "$release/.venv/bin/pip" wheel --quiet --disable-pip-version-check \
        --wheel-dir "$wheels" pip -r <(pins app) &&
      "$release/.venv/bin/pip" "${install[@]}" -r <(pins app) || return 1
    pip_wheel=$(find -L "$wheels" -name 'pip-*.whl' | sort -V | tail -n 1)
  fi
  "$release/.venv/bin/python" "$pip_wheel/pip" "${install[@]}" -r <(pins mysql) 2>/dev/null ||
    { "$release/.venv/bin/python" "$pip_wheel/pip" wheel --quiet --disable-pip-version-check \
        --wheel-dir "$wheels" -r <(pins mysql) >/dev/null 2>&1 &&
      "$release/.venv/bin/python" "$pip_wheel/pip" "${install[@]}" -r <(pins mysql); } ||
    echo "mysqlclient could not be built here (libmariadb-dev, pkg-config, gcc?): the apps use PyMySQL"
}

releases_newest_first() {
  # Release names sort by the timestamp that ends them.
  find "$ROOT/releases" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' |
    awk -F- '{ print $NF, $0 }' | sort -rn | cut -d' ' -f2-
}

prune() {
  # Keep the KEEP newest releases, and whatever a slot still points at.
  local name n=0
  for name in $(releases_newest_first); do
    n=$((n + 1))
    if ((n <= KEEP)) || [[ $name == "$(slot_release blue)" || $name == "$(slot_release green)" ]]; then
      continue
    fi
    rm -rf "${ROOT:?}/releases/$name"
    echo "removed old release $name"
  done
}

install() {
  local name=$1 release=$ROOT/releases/$1 previous
  previous=$(slot_release "$(active_slot)")
  NEW_RELEASE=$name
  [[ -d $release ]] || die "there is no release $release"
  if [[ ! -f $SHARED/minitwit.env ]]; then
    rm -rf "$release"
    die "$SHARED/minitwit.env is missing: provision this server first (deploy/provision.sh)"
  fi
  ln -sfn ../../shared/minitwit.env "$release/minitwit.env"
  echo "building the virtualenv of $name"
  build "$release" || fail "$name" none "$previous" "its virtualenv could not be built"
  echo "applying schema changes"
  (
    set -a
    # shellcheck source=/dev/null  # the shared environment file
    . "$release/minitwit.env"
    set +a
    cd "$release" && .venv/bin/python -m scripts.ops.initdb
  ) || fail "$name" none "$previous" "the schema changes (python -m scripts.ops.initdb) failed"
  activate "$name" deploy
  prune
}

rollback() {
  # Back to the newest release older than the current one that was live
  # once: repeated rollbacks go further back.
  local current name
  current=$(slot_release "$(active_slot)")
  [[ $current != none ]] || die "nothing is deployed under $ROOT"
  for name in $(releases_newest_first); do
    if [[ ${name##*-} < ${current##*-} ]] && grep -q " deploy $name " "$ROOT/revisions.log"; then
      echo "rolling back from $current to $name"
      activate "$name" rollback
      return
    fi
  done
  die "there is no release before $current to go back to"
}

locked() {
  # Run this script again, holding the server's deploy lock (flock -o: the
  # apps it starts do not inherit the lock).
  local status=0
  touch "$ROOT/.deploy.lock"
  MINITWIT_DEPLOY_LOCKED=1 flock -n -o -E 75 "$ROOT/.deploy.lock" "$0" "$@" || status=$?
  if ((status == 75)); then
    # A release deploy.sh unpacked for this run never went live.
    if [[ $1 == install ]]; then rm -rf "${ROOT:?}/releases/$2"; fi
    die "another deploy or rollback is running on this server (it holds $ROOT/.deploy.lock)"
  fi
  exit "$status"
}

[[ $KEEP =~ ^[1-9][0-9]*$ ]] || die "KEEP must be a number of releases, 1 or more, not '$KEEP'"
case ${1:-} in
  install | rollback)
    [[ ${MINITWIT_DEPLOY_LOCKED:-} == 1 ]] || locked "$@"
    if [[ $1 == install ]]; then
      [[ $# == 2 && $2 =~ ^[A-Za-z0-9._+-]+$ ]] || die "usage: server.sh install NAME"
      install "$2"
    else
      rollback
    fi
    ;;
  upstreams) [[ ${2:-} == blue || ${2:-} == green ]] || die "usage: server.sh upstreams blue|green"; upstreams "$2" ;;
  *) die "usage: server.sh install NAME | rollback | upstreams SLOT" ;;
esac
