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
#   SSH_KNOWN_HOSTS  the known_hosts file with the hosts' keys (default:
#                    ~/.ssh/known_hosts). A host whose key is not in it, or
#                    differs from it, is refused: nothing is trusted on
#                    first use...
#   TRUST_NEW_HOST   ...unless this is 1: then a host not in the file yet
#                    is added to it (a first deploy by hand); a changed key
#                    is refused all the same
#   DEPLOY_ROOT      the folder on the servers (/opt/minitwit)
#   KEEP             how many releases each server keeps (5)
#   DEPLOYED_BY      who deploys, for revisions.log (user@this-machine)
#
# It stops at the first host that fails, leaving the rest untouched, and
# exits non-zero then. With several hosts (behind a load balancer) it never
# takes the last healthy one out: before it touches a host, one of the
# other hosts named must answer its health check (its own nginx's
# PUBLIC_API_URL/healthz, asked over SSH), unless the host is not serving
# anyway; and after each host, that host must answer before it goes on.
# Name a single host to deploy to it whatever the others do.
set -euo pipefail

SSH_PORT=${SSH_PORT:-22}
DEPLOY_ROOT=${DEPLOY_ROOT:-/opt/minitwit}
KEEP=${KEEP:-5}
DEPLOYED_BY=${DEPLOYED_BY:-$(id -un)@$(hostname)}
KNOWN_HOSTS=${SSH_KNOWN_HOSTS:-$HOME/.ssh/known_hosts}
CHECKING=yes
if [[ ${TRUST_NEW_HOST:-} == 1 ]]; then CHECKING=accept-new; fi
SSH_OPTS=(-o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=15
          -o "StrictHostKeyChecking=$CHECKING" -o "UserKnownHostsFile=$KNOWN_HOSTS")
if [[ -n ${SSH_KEY:-} ]]; then SSH_OPTS+=(-i "$SSH_KEY" -o IdentitiesOnly=yes); fi

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

check_host_key() {
  # Log in once before anything else: a host whose key is unknown or has
  # changed is refused with what to do about it, not just ssh's words.
  local err target=${DEST#*@}
  [[ $PORT == 22 ]] || target="[$target]:$PORT"
  if err=$(ssh "${SSH_OPTS[@]}" -p "$PORT" "$DEST" true 2>&1 >/dev/null); then
    [[ -z $err ]] || printf '%s\n' "$err" >&2  # e.g. "Permanently added ..."
    return 0
  fi
  printf '%s\n' "$err" >&2
  if [[ $err == *"REMOTE HOST IDENTIFICATION HAS CHANGED"* ]]; then
    echo "deploy.sh: the SSH host key of $target has CHANGED since $KNOWN_HOSTS recorded it: refusing to deploy (someone may be in between; or the server was rebuilt). If it was rebuilt, check its new key on the server (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then: ssh-keygen -R '$target' -f $KNOWN_HOSTS and add the new key as for a new host (TRUST_NEW_HOST does not override a changed key)" >&2
  elif [[ $err == *"Host key verification failed"* ]]; then
    echo "deploy.sh: the SSH host key of $target is unknown: it is not in $KNOWN_HOSTS (SSH_KNOWN_HOSTS), and deploy.sh never trusts a key on first use. Check it (on the server: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), then add it: ssh-keyscan -p $PORT -t ed25519 ${DEST#*@} >> $KNOWN_HOSTS (CircleCI: the DEPLOY_KNOWN_HOSTS variable); or, for a first deploy by hand, run with TRUST_NEW_HOST=1" >&2
  else
    echo "deploy.sh: cannot log in to $DEST on port $PORT (ssh's words above)" >&2
  fi
  return 1
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

serving() {
  # Whether host $1 answers its health check: nginx there, with that host's
  # settings (deploy/settings.sh: PUBLIC_API_URL), passes /healthz on to
  # its live API, which answers 200 (the database is reached). A host with
  # nothing deployed, or that SSH does not reach, is not serving.
  (
    parse_host "$1"
    on_host "test -f $ROOT/current/deploy/settings.sh &&
      DEPLOY_ROOT=$ROOT HERE=$ROOT/current/deploy bash -c '. \"\$HERE/settings.sh\" &&
        curl -fsS -m 5 -o /dev/null \"\$PUBLIC_API_URL/healthz\"'" >/dev/null 2>&1
  ) </dev/null
}

others_serving() {
  # Whether any named host but number $1 answers its health check (the
  # first that does is enough).
  local j
  for j in "${!hosts[@]}"; do
    ((j != $1)) || continue
    if serving "${hosts[j]}"; then
      echo "==> ${hosts[$1]}: ${hosts[j]} is healthy and keeps serving meanwhile"
      return 0
    fi
  done
  return 1
}

may_take_out() {
  # Whether host number $1 may be deployed to or rolled back now: it is the
  # only host named, another one named is healthy, or it serves nothing
  # anyway. Says why not.
  local doing="deploying to"
  [[ $action == deploy ]] || doing="rolling back"
  ((${#hosts[@]} > 1)) || return 0
  others_serving "$1" && return 0
  if serving "${hosts[$1]}"; then
    echo "deploy.sh: not $doing ${hosts[$1]}: no other host is healthy, and ${hosts[$1]} is serving (if this one fails too, nobody answers; name it alone to $action it anyway)" >&2
    return 1
  fi
  echo "==> ${hosts[$1]}: no other host is healthy, but ${hosts[$1]} is not serving either"
}

back_in_service() {
  # Whether host number $1, just deployed to or rolled back, answers its
  # health check, when more hosts follow it (they rely on it meanwhile).
  (($1 + 1 < ${#hosts[@]})) || return 0
  serving "${hosts[$1]}" && return 0
  echo "deploy.sh: ${hosts[$1]} does not answer its health check after the $action: stopping here" >&2
  return 1
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
  check_host_key
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
for host in "${hosts[@]}"; do parse_host "$host"; done  # dies on a bad one
for i in "${!hosts[@]}"; do
  parse_host "${hosts[i]}"
  if ! check_host_key || ! may_take_out "$i" || ! "${action}_host" "${hosts[i]}" ||
     ! back_in_service "$i"; then
    echo "==> ${hosts[i]}: $action FAILED" >&2
    if ((i + 1 < ${#hosts[@]})); then
      echo "==> not attempted: ${hosts[*]:i+1}" >&2
    fi
    exit 1
  fi
  echo "==> ${hosts[i]}: done"
done
