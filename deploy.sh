#!/usr/bin/env bash
# Deploy MiniTwit to servers over SSH, one at a time, without dropping a
# request (deploy/server.sh does the switch on each server).
#
#   ./deploy.sh [user@]host...              deploy TARBALL to each host
#   ./deploy.sh --rollback [user@]host...   back to each host's previous release
#   ./deploy.sh --revision [user@]host      print the commit live on host
#
# A host may also be written ssh://[user@]host[:port][/path], to give it its
# own SSH port and folder. The rest comes from the environment:
#   TARBALL          the `make dist` tarball (the newest dist/minitwit-*.tar.gz)
#   SSH_PORT         22
#   SSH_KEY          a private key file (default: ssh's own keys and agent)
#   SSH_KNOWN_HOSTS  a known_hosts file (default: ~/.ssh/known_hosts; a host
#                    not in it yet is added on first use)
#   DEPLOY_ROOT      the folder on the servers (/opt/minitwit)
#   KEEP             how many releases each server keeps (5)
#   DEPLOYED_BY      who deploys, for revisions.log (user@this-machine)
#
# It stops at the first host that fails, leaving the rest untouched, and
# exits non-zero then.
set -euo pipefail

SSH_PORT=${SSH_PORT:-22}
DEPLOY_ROOT=${DEPLOY_ROOT:-/opt/minitwit}
KEEP=${KEEP:-5}
DEPLOYED_BY=${DEPLOYED_BY:-$(id -un)@$(hostname)}
SSH_OPTS=(-o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=15
          -o StrictHostKeyChecking=accept-new)
if [[ -n ${SSH_KEY:-} ]]; then SSH_OPTS+=(-i "$SSH_KEY" -o IdentitiesOnly=yes); fi
if [[ -n ${SSH_KNOWN_HOSTS:-} ]]; then SSH_OPTS+=(-o "UserKnownHostsFile=$SSH_KNOWN_HOSTS"); fi

die() { echo "deploy.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

parse_host() {
  # Set DEST, PORT and ROOT from a host argument.
  local rest=$1
  DEST=$1 PORT=$SSH_PORT ROOT=$DEPLOY_ROOT
  if [[ $rest == ssh://* ]]; then
    rest=${rest#ssh://}
    if [[ $rest == */* ]]; then ROOT=/${rest#*/} rest=${rest%%/*}; fi
    if [[ $rest =~ ^(.+):([0-9]+)$ ]]; then rest=${BASH_REMATCH[1]} PORT=${BASH_REMATCH[2]}; fi
    DEST=$rest
  fi
  [[ $DEST =~ ^[A-Za-z0-9_][A-Za-z0-9._@-]*$ ]] || die "'$1' is not a host"
  [[ $ROOT =~ ^/[A-Za-z0-9._/-]*[A-Za-z0-9._-]$ ]] || die "'$ROOT' is not a folder for DEPLOY_ROOT"
}

on_host() {
  # Run shell command $1 on the current host.
  ssh "${SSH_OPTS[@]}" -p "$PORT" "$DEST" "$1"
}

deploy_host() {
  local name tarball
  tarball=$(basename "$TARBALL")
  name="$VERSION-$(date -u +%Y%m%d%H%M%S)"
  echo "==> $1: deploying $name to $ROOT"
  on_host "mkdir -p $ROOT/incoming" &&
    scp "${SSH_OPTS[@]}" -q -P "$PORT" "$TARBALL" "$DEST:$ROOT/incoming/$tarball" &&
    on_host "set -e; cd $ROOT; mkdir -p releases; mkdir releases/$name
      tar -xzf incoming/$tarball -C releases/$name --strip-components=1
      rm -f incoming/$tarball
      KEEP=$KEEP DEPLOY_ROOT=$ROOT DEPLOYED_BY=$(printf %q "$DEPLOYED_BY") \
        releases/$name/deploy/server.sh install $name"
}

rollback_host() {
  echo "==> $1: rolling back under $ROOT"
  on_host "test -x $ROOT/current/deploy/server.sh || { echo 'nothing is deployed under $ROOT' >&2; exit 1; }
    DEPLOY_ROOT=$ROOT DEPLOYED_BY=$(printf %q "$DEPLOYED_BY") $ROOT/current/deploy/server.sh rollback"
}

newest_tarball() {
  local file newest=
  for file in "$(dirname "$0")"/dist/minitwit-*.tar.gz; do
    if [[ -f $file && ( -z $newest || $file -nt $newest ) ]]; then newest=$file; fi
  done
  [[ -n $newest ]] || die "no dist/minitwit-*.tar.gz: run 'make dist' first, or set TARBALL"
  echo "$newest"
}

action=deploy
case ${1:-} in
  --rollback) action=rollback; shift ;;
  --revision) action=revision; shift; [[ $# == 1 ]] || usage ;;
  -h | --help | '') usage ;;
  -*) usage ;;
esac
(($#)) || usage
[[ $KEEP =~ ^[1-9][0-9]*$ ]] || die "KEEP must be a number of releases, 1 or more, not '$KEEP'"

if [[ $action == revision ]]; then
  parse_host "$1"
  on_host "cat $ROOT/current/REVISION"
  exit
fi
if [[ $action == deploy ]]; then
  TARBALL=${TARBALL:-$(newest_tarball)}
  [[ -f $TARBALL ]] || die "no tarball $TARBALL"
  [[ $(basename "$TARBALL") =~ ^minitwit-([A-Za-z0-9._+-]+)\.tar\.gz$ ]] ||
    die "$TARBALL is not named minitwit-VERSION.tar.gz (make dist)"
  VERSION=${BASH_REMATCH[1]}
fi

hosts=("$@")
for i in "${!hosts[@]}"; do
  parse_host "${hosts[i]}"
  if ! "${action}_host" "${hosts[i]}"; then
    echo "==> ${hosts[i]}: $action FAILED" >&2
    if ((i + 1 < ${#hosts[@]})); then
      echo "==> not attempted: ${hosts[*]:i+1}" >&2
    fi
    exit 1
  fi
  echo "==> ${hosts[i]}: done"
done
