#!/usr/bin/env bash
# Set up a MiniTwit server (Debian 12: Python 3.11, MariaDB 10.11), as root:
# Vagrant runs it on every new machine. Running it again changes nothing
# that is right already, and never replaces the secrets it generated.
#
#   deploy/provision.sh              set up this machine
#   deploy/provision.sh --root DIR   write every file under DIR instead of
#                                     /, and only print the commands that
#                                     would change the system (apt, users,
#                                     MariaDB, ufw, systemctl): a dry run
#
# What it sets up: the user `minitwit` the apps run as; Python; MariaDB
# (utf8mb4, on 127.0.0.1 only) with a database and user `minitwit` whose
# generated password goes into $DEPLOY_ROOT/shared/minitwit.env; nginx in
# front of both apps, terminating TLS (certbot's certificate for DOMAIN, or
# a self-signed one); the systemd units; logrotate; ufw letting in only
# SSH, HTTP, HTTPS and the simulator API (plain and HTTPS). deploy.sh then
# brings the releases. Packages already installed are not asked for again:
# a second run makes no apt call. (The apps' servers get a C compiler and
# libmariadb's headers too: a release builds mysqlclient, the C MySQL
# driver, when the wheelhouse has no wheel of it.)
#
# Settings (environment):
#   DEPLOY_ROOT        where releases go (/opt/minitwit)
#   HTTP_LISTEN        nginx's listen for the web UI's redirect to HTTPS (80)
#   HTTPS_LISTEN       nginx's listen for the web UI (443)
#   API_LISTEN         nginx's listen for the simulator API, plain HTTP (5001)
#   API_HTTPS_LISTEN   nginx's listen for the simulator API over HTTPS (5443)
#   DOMAIN             the server's DNS name: certbot gets its certificate
#                      (HTTP-01 on port 80) and certbot.timer renews it;
#                      without one, a self-signed certificate is made once
#   CERTBOT_EMAIL      where Let's Encrypt writes about expiry (with DOMAIN)
#   TLS_DIR            the certificate nginx uses (/etc/minitwit/tls)
#   SIM_API_USERNAME   the simulator's credentials, written to the
#   SIM_API_PASSWORD   environment file the first time (simulator, super_safe!)
#   DEPLOY_PUBLIC_KEY  an SSH public key that may deploy (root's
#                      authorized_keys), e.g. CircleCI's
#
# Roles, for MiniTwit on several machines (docs/deploying.md, "A Galera
# cluster"):
#   ROLE               all (the default: apps and MariaDB on one server),
#                      app (the apps, nginx; no database) or db (a node of
#                      a MariaDB Galera cluster; no apps)
#   CLUSTER_ADDRESSES  the database nodes' addresses (app, db), space- or
#                      comma-separated: the app's DATABASE_URL names them
#                      all; a db node's wsrep_cluster_address
#   APP_ADDRESSES      the app servers' addresses (db): they may reach 3306
#   DB_PASSWORD        MariaDB's password of the user minitwit (app, db):
#                      the same on every machine of the cluster
#   NODE_ADDRESS       this db node's address among CLUSTER_ADDRESSES
#                      (default: the one this machine has)
#   SST_PASSWORD       the password of the state transfers' MariaDB user
#                      (db): the same on every node; generated when not
#                      given, and kept in a file readable by root and mysql
#   GALERA_BOOTSTRAP   1 on the first node only: start a new cluster
#                      (galera_new_cluster) if this node is in none
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
PREFIX=
if [[ ${1:-} == --root ]]; then
  [[ -n ${2:-} ]] || { echo "usage: provision.sh [--root DIR]" >&2; exit 2; }
  mkdir -p "$2"
  PREFIX=$(cd "$2" && pwd -P)
elif [[ -n ${1:-} ]]; then
  echo "usage: provision.sh [--root DIR]" >&2
  exit 2
elif [[ $(id -u) != 0 ]]; then
  echo "provision.sh: run it as root (or with --root DIR for a dry run)" >&2
  exit 1
fi

# Inside the files, paths are the ones the system sees: under DIR too.
ROOT=$PREFIX${DEPLOY_ROOT:-/opt/minitwit}
LOGS=$PREFIX/var/log/minitwit
HTTP_LISTEN=${HTTP_LISTEN:-80}
HTTPS_LISTEN=${HTTPS_LISTEN:-443}
API_LISTEN=${API_LISTEN:-5001}
API_HTTPS_LISTEN=${API_HTTPS_LISTEN:-5443}
DOMAIN=${DOMAIN:-}
CERTBOT_EMAIL=${CERTBOT_EMAIL:-}
TLS=$PREFIX${TLS_DIR:-/etc/minitwit/tls}
ACME=$PREFIX/var/www/minitwit-acme
ENV_FILE=$ROOT/shared/minitwit.env
ROLE=${ROLE:-all}
GALERA_CNF=$PREFIX/etc/mysql/mariadb.conf.d/61-minitwit-galera.cnf
SST_CNF=$PREFIX/etc/mysql/mariadb.conf.d/62-minitwit-sst.cnf

die() { echo "provision.sh: $*" >&2; exit 2; }

addresses() {
  # The words of $1 (spaces or commas), each checked as a host or address.
  local word
  for word in ${1//,/ }; do
    [[ $word =~ ^[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?$ ]] || die "'$word' is not a host or address"
    echo "$word"
  done
}

addresses "${CLUSTER_ADDRESSES:-} ${APP_ADDRESSES:-}" >/dev/null  # dies here on a bad one
mapfile -t CLUSTER < <(addresses "${CLUSTER_ADDRESSES:-}")
mapfile -t APP_HOSTS < <(addresses "${APP_ADDRESSES:-}")
# The apps' servers also build mysqlclient, the C driver of
# pyproject.toml's dependency group mysql, when their wheelhouse has no wheel of it.
APP_PACKAGES=(python3 python3-venv python3-dev gcc libmariadb-dev pkg-config nginx ufw curl
              logrotate iproute2 openssl)
case $ROLE in
  all)
    PACKAGES=("${APP_PACKAGES[@]}" mariadb-server) ;;
  app)
    ((${#CLUSTER[@]})) || die "ROLE=app needs CLUSTER_ADDRESSES, the database nodes"
    [[ -n ${DB_PASSWORD:-} ]] || die "ROLE=app needs DB_PASSWORD, MariaDB's password of the user minitwit"
    PACKAGES=("${APP_PACKAGES[@]}") ;;
  db)
    ((${#CLUSTER[@]})) || die "ROLE=db needs CLUSTER_ADDRESSES, every node's address"
    [[ -n ${DB_PASSWORD:-} ]] || die "ROLE=db needs DB_PASSWORD, MariaDB's password of the user minitwit"
    PACKAGES=(python3 mariadb-server galera-4 mariadb-backup socat ufw iproute2) ;;
  *) die "ROLE is all, app or db, not '$ROLE'" ;;
esac
if [[ -n $DOMAIN && $ROLE != db ]]; then
  [[ $DOMAIN =~ ^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$ ]] ||
    { echo "provision.sh: DOMAIN '$DOMAIN' is not a DNS name" >&2; exit 2; }
  PACKAGES+=(certbot python3-certbot-nginx)
fi
for listen in "$HTTP_LISTEN" "$HTTPS_LISTEN" "$API_LISTEN" "$API_HTTPS_LISTEN"; do
  [[ $listen =~ ^([0-9.]+:)?[0-9]+$ ]] ||
    { echo "provision.sh: '$listen' is not a port or ADDRESS:PORT" >&2; exit 2; }
done

run() {
  # Run a command that changes the system (saying so), or only show it (--root).
  if [[ -n $PREFIX ]]; then echo "would run: $*"; else echo "running: $*"; "$@"; fi
}

put() {
  # Write stdin to file $1 (mode $2) when it differs; CHANGED says if it did.
  local file=$1 mode=$2 content
  content=$(cat)
  CHANGED=
  if [[ -f $file && $(<"$file") == "$content" ]]; then
    echo "unchanged ${file#"$PREFIX"}"
    return
  fi
  mkdir -p "$(dirname "$file")"
  (umask 077 && printf '%s\n' "$content" >"$file.new")
  chmod "$mode" "$file.new"
  mv -f "$file.new" "$file"
  echo "wrote ${file#"$PREFIX"}"
  CHANGED=1
}

secret() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }

env_value() {
  # The value of $1 in the environment file, if it is there.
  if [[ -f $ENV_FILE ]]; then sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1; fi
}

missing_packages() {
  # Those of PACKAGES not installed (under DIR for a dry run: a fresh
  # root has none).
  local admin=$PREFIX/var/lib/dpkg package
  for package in "${PACKAGES[@]}"; do
    if [[ ! -f $admin/status ]] ||
       [[ $(dpkg-query --admindir="$admin" -W -f='${db:Status-Status}' "$package" 2>/dev/null) != installed ]]; then
      echo "$package"
    fi
  done
}

packages() {
  local missing
  mapfile -t missing < <(missing_packages)
  if ((${#missing[@]})); then
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    echo "installed already: ${PACKAGES[*]}"
  fi
  [[ $ROLE != db ]] || return 0
  if ! id minitwit >/dev/null 2>&1; then
    run useradd --system --home-dir "$ROOT" --no-create-home --shell /usr/sbin/nologin minitwit
  fi
  mkdir -p "$ROOT/releases" "$ROOT/slots" "$ROOT/shared/wheels" "$LOGS"
}

database_url() {
  # Where the apps' data is: MariaDB here (a generated password) through
  # its Unix socket, which costs a request less than loopback TCP
  # (docs/benchmarks.md), or every node of the cluster (ROLE=app).
  if [[ $ROLE == app ]]; then
    local nodes password
    nodes=$(IFS=,; echo "${CLUSTER[*]}")
    password=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$DB_PASSWORD")
    echo "mysql://minitwit:$password@$nodes:3306/minitwit"
  else
    echo "mysql://minitwit:$(secret)@localhost/minitwit?unix_socket=/run/mysqld/mysqld.sock"
  fi
}

environment_file() {
  # Generated once: a re-run keeps the passwords and whatever was edited.
  if [[ -f $ENV_FILE ]]; then
    echo "kept ${ENV_FILE#"$PREFIX"}"
  else
    put "$ENV_FILE" 0640 <<EOF
# MiniTwit's settings on this server, written by deploy/provision.sh.
DATABASE_URL=$(database_url)
MINITWIT_SECRET_KEY=$(secret)
MINITWIT_ENV=production
SIM_API_USERNAME=${SIM_API_USERNAME:-simulator}
SIM_API_PASSWORD=${SIM_API_PASSWORD:-super_safe!}
EOF
  fi
  run chown root:minitwit "$ENV_FILE"
  DB_PASSWORD=$(env_value DATABASE_URL | sed -n 's|^mysql://minitwit:\([^@]*\)@.*|\1|p')
  if [[ -f $ROOT/shared/host.env ]]; then
    echo "kept ${ROOT#"$PREFIX"}/shared/host.env"
    return
  fi
  put "$ROOT/shared/host.env" 0644 <<EOF
# This server's settings for deploy/slot and deploy/server.sh: any line of
# deploy/defaults.env may be set here. Written once by deploy/provision.sh.
PUBLIC_API_URL=http://127.0.0.1:${API_LISTEN##*:}
EOF
}

database() {
  put "$PREFIX/etc/mysql/mariadb.conf.d/60-minitwit.cnf" 0644 <<'EOF'
# MiniTwit: MariaDB for the apps on this machine only, in full UTF-8.
[mysqld]
bind-address = 127.0.0.1
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
# One server: a commit is on disk before it is acknowledged (the log is
# flushed at every commit), so nothing acknowledged is lost to a power cut.
innodb_flush_log_at_trx_commit = 1
EOF
  run systemctl enable --now mariadb
  if [[ -n $CHANGED ]]; then run systemctl restart mariadb; fi
  if [[ -z $DB_PASSWORD ]]; then
    echo "DATABASE_URL does not name the local user minitwit: MariaDB's users left alone"
    return
  elif [[ -n $PREFIX ]]; then
    echo "would run: mariadb (create database minitwit, user minitwit with the generated password)"
    return
  fi
  # The password goes through stdin, never a command line.
  mariadb --user=root <<EOF
CREATE DATABASE IF NOT EXISTS minitwit CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'minitwit'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER 'minitwit'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS 'minitwit'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER 'minitwit'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON minitwit.* TO 'minitwit'@'localhost', 'minitwit'@'127.0.0.1';
EOF
}

self_signed() {
  # A self-signed certificate for this machine's name and addresses, made
  # once: a re-run keeps it (and so whatever was told to trust it).
  local cert=$TLS/selfsigned-cert.pem key=$TLS/selfsigned-key.pem name names address
  if [[ -f $cert && -f $key ]]; then
    echo "kept ${cert#"$PREFIX"}"
    return
  fi
  name=$(hostname)
  names="DNS:$name,DNS:localhost,IP:127.0.0.1"
  for address in $(hostname -I 2>/dev/null); do
    [[ $address == 127.0.0.1 ]] || names+=",IP:$address"
  done
  mkdir -p "$TLS" && chmod 755 "$TLS"
  (umask 077 && openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 3650 \
    -subj "/CN=$name" -addext "subjectAltName=$names" \
    -keyout "$key.new" -out "$cert.new" 2>/dev/null)
  chmod 644 "$cert.new"
  mv -f "$key.new" "$key" && mv -f "$cert.new" "$cert"
  echo "wrote ${cert#"$PREFIX"} (self-signed for $names)"
}

use_certificate() {
  # Point cert.pem and key.pem, what nginx reads, at certificate $1 and
  # key $2; CHANGED says if they moved.
  CHANGED=
  if [[ $(readlink "$TLS/cert.pem" 2>/dev/null) != "$1" || $(readlink "$TLS/key.pem" 2>/dev/null) != "$2" ]]; then
    mkdir -p "$TLS"
    ln -sfn "$1" "$TLS/cert.pem" && ln -sfn "$2" "$TLS/key.pem"
    echo "linked ${TLS#"$PREFIX"}/cert.pem to ${1#"$PREFIX"}"
    CHANGED=1
  fi
}

tls() {
  # nginx needs a certificate before it can start, certbot needs nginx to
  # answer its challenge: the self-signed one serves until certbot's exists.
  # (A dry run takes certbot's as made: it would be by the end.)
  local live=$PREFIX/etc/letsencrypt/live/$DOMAIN
  if [[ -n $DOMAIN && ( -f $live/fullchain.pem || -n $PREFIX ) ]]; then
    use_certificate "$live/fullchain.pem" "$live/privkey.pem"
  else
    self_signed
    use_certificate "$TLS/selfsigned-cert.pem" "$TLS/selfsigned-key.pem"
  fi
  mkdir -p "$ACME/.well-known/acme-challenge"
}

port_of() { echo "${1##*:}"; }

nginx_site() {
  # shellcheck disable=SC2016  # nginx's $host, not the shell's
  local site=$PREFIX/etc/nginx/sites-available/minitwit redirect='https://$host'
  # The redirect names the HTTPS port unless it is the default one.
  [[ $(port_of "$HTTPS_LISTEN") == 443 ]] || redirect+=":$(port_of "$HTTPS_LISTEN")"
  sed -e "s|/opt/minitwit|$ROOT|g" -e "s|/var/log/minitwit|$LOGS|g" \
      -e "s|/etc/minitwit/tls|$TLS|g" -e "s|/var/www/minitwit-acme|$ACME|g" \
      -e "s|listen 80 |listen $HTTP_LISTEN |" -e "s|listen 443 ssl |listen $HTTPS_LISTEN ssl |" \
      -e "s|listen 5001 |listen $API_LISTEN |" -e "s|listen 5443 ssl |listen $API_HTTPS_LISTEN ssl |" \
      -e "s|return 301 https://\$host\$request_uri|return 301 $redirect\$request_uri|" \
      "$REPO/deploy/nginx/minitwit.conf" | put "$site" 0644
  ln -sfn "$site" "$PREFIX/etc/nginx/sites-enabled/minitwit"
  # Debian's default site also wants port 80.
  rm -f "$PREFIX/etc/nginx/sites-enabled/default"
  # The first upstreams (slot blue); afterwards deploys own the file.
  if [[ ! -f $ROOT/shared/nginx-upstreams.conf ]]; then
    DEPLOY_ROOT=$ROOT "$REPO/deploy/server.sh" upstreams blue
    echo "wrote ${ROOT#"$PREFIX"}/shared/nginx-upstreams.conf"
  fi
  run systemctl enable --now nginx
  run nginx -t -q
  run systemctl reload nginx
}

certificate() {
  # With DOMAIN: certbot's certificate, obtained once through the ACME
  # path on port 80 (the webroot nginx serves), renewed by Debian's
  # certbot.timer, nginx reloaded after each renewal.
  [[ -n $DOMAIN ]] || return 0
  local live=/etc/letsencrypt/live/$DOMAIN email=(--register-unsafely-without-email)
  [[ -z $CERTBOT_EMAIL ]] || email=(--email "$CERTBOT_EMAIL")
  if [[ ! -f $PREFIX$live/fullchain.pem ]]; then
    run certbot certonly --webroot --webroot-path "${ACME#"$PREFIX"}" --domain "$DOMAIN" \
      "${email[@]}" --agree-tos --non-interactive --keep-until-expiring
  fi
  put "$PREFIX/etc/letsencrypt/renewal-hooks/deploy/minitwit-nginx" 0755 <<'EOF'
#!/bin/sh
# Written by MiniTwit's deploy/provision.sh: nginx picks up a certificate
# that certbot.timer renewed.
exec systemctl reload nginx
EOF
  run systemctl enable --now certbot.timer
  if [[ -n $PREFIX || -f $live/fullchain.pem ]]; then
    use_certificate "$PREFIX$live/fullchain.pem" "$PREFIX$live/privkey.pem"
    if [[ -n $CHANGED ]]; then
      run nginx -t -q
      run systemctl reload nginx
    fi
  else
    echo "provision.sh: certbot got no certificate for $DOMAIN: nginx keeps the self-signed one (run provision.sh again once $DOMAIN points here)" >&2
  fi
}

units() {
  local changed
  changed=$(DEPLOY_ROOT=$ROOT "$REPO/deploy/slot" install-units "$PREFIX/etc/systemd/system")
  if [[ -n $changed ]]; then
    echo "wrote the units ${changed//$'\n'/ }"
    run systemctl daemon-reload
  else
    echo "unchanged the units minitwit-web@.service minitwit-api@.service"
  fi
  sed "s|/var/log/minitwit|$LOGS|g" "$REPO/deploy/logrotate/minitwit" |
    put "$PREFIX/etc/logrotate.d/minitwit" 0644
  ln -sfn "$ROOT/current/scripts/ops/minitwitctl" "$PREFIX/usr/local/bin/minitwitctl"
}

firewall() {
  run ufw default deny incoming
  run ufw default allow outgoing
  local port
  for port in 22 "$(port_of "$HTTP_LISTEN")" "$(port_of "$HTTPS_LISTEN")" \
              "$(port_of "$API_LISTEN")" "$(port_of "$API_HTTPS_LISTEN")"; do
    run ufw allow "$port/tcp"
  done
  run ufw --force enable
  # ufw's own service applies the rules at boot: active from now on too.
  run systemctl enable --now ufw
}

node_address() {
  # This node's address among CLUSTER: NODE_ADDRESS, or the one it has.
  local address
  if [[ -n ${NODE_ADDRESS:-} ]]; then
    for address in "${CLUSTER[@]}"; do
      [[ $address != "$NODE_ADDRESS" ]] || { echo "$NODE_ADDRESS"; return; }
    done
    die "NODE_ADDRESS $NODE_ADDRESS is not one of CLUSTER_ADDRESSES (${CLUSTER[*]})"
  fi
  for address in $(hostname -I 2>/dev/null); do
    if printf '%s\n' "${CLUSTER[@]}" | grep -qxF "$address"; then echo "$address"; return; fi
  done
  die "none of CLUSTER_ADDRESSES (${CLUSTER[*]}) is this machine's: set NODE_ADDRESS"
}

in_cluster() {
  # Whether MariaDB runs here as a ready Galera node.
  [[ -z $PREFIX ]] || return 1
  [[ $(mariadb --user=root -N -e "SHOW STATUS LIKE 'wsrep_ready'" 2>/dev/null) == *ON ]]
}

galera() {
  # A node of the cluster: MariaDB with Galera (galera-4), full UTF-8, on
  # this node's address; state transfers by mariabackup, whose MariaDB
  # user's password is in a file only root and mysql read (MariaDB hands
  # it to the transfer script in its environment, not on a command line).
  local nodes sst_password changed=
  NODE=$(node_address)
  nodes=$(IFS=,; echo "${CLUSTER[*]}")
  put "$PREFIX/etc/mysql/mariadb.conf.d/60-minitwit.cnf" 0644 <<EOF
# MiniTwit: this Galera node's MariaDB, for the app servers (ufw lets in
# only them and the other nodes), in full UTF-8.
[mysqld]
bind-address = $NODE
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
EOF
  changed+=$CHANGED
  put "$GALERA_CNF" 0644 <<EOF
# MiniTwit: this node of the Galera cluster (deploy/provision.sh ROLE=db).
[galera]
wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = minitwit
wsrep_cluster_address = gcomm://$nodes
wsrep_node_address = $NODE
wsrep_node_name = $(hostname)
wsrep_sst_method = mariabackup
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
# schema.sql's triggers keep the row counts; with wsrep on, MariaDB refuses
# them to a user without SUPER (the apps' minitwit) unless this is set.
log_bin_trust_function_creators = 1
# As Galera advises for its nodes: a commit is in the other nodes before it
# is acknowledged, so the log is written at every commit and flushed once a
# second; a node that loses power takes what it lacks from the others.
innodb_flush_log_at_trx_commit = 2
EOF
  changed+=$CHANGED
  sst_password=${SST_PASSWORD:-}
  if [[ -z $sst_password && -f $SST_CNF ]]; then
    sst_password=$(sed -n 's/^wsrep_sst_auth = mariabackup://p' "$SST_CNF")
  fi
  if [[ -z $sst_password ]]; then
    sst_password=$(secret)
    echo "generated the state transfers' password: give the other nodes the same (SST_PASSWORD, from ${SST_CNF#"$PREFIX"})"
  fi
  put "$SST_CNF" 0640 <<EOF
# MiniTwit: the MariaDB user of Galera's state transfers (mariabackup),
# written by deploy/provision.sh. Secret: root and mysql only.
[galera]
wsrep_sst_auth = mariabackup:$sst_password
EOF
  changed+=$CHANGED
  run chown root:mysql "$SST_CNF"
  run systemctl enable mariadb
  if in_cluster; then
    if [[ -n $changed ]]; then run systemctl restart mariadb; fi
  else
    # Installing mariadb-server started it alone: stop it, then start a new
    # cluster here (the first node) or join one (the state arrives from a
    # node that has it).
    run systemctl stop mariadb
    if [[ ${GALERA_BOOTSTRAP:-} == 1 ]]; then
      run galera_new_cluster
    else
      run systemctl start mariadb
    fi
  fi
  if [[ -n $PREFIX ]]; then
    echo "would run: mariadb (create database minitwit, user minitwit for ${APP_HOSTS[*]:-no app server}, user mariabackup, with the passwords)"
    return
  fi
  # Users replicate: the same statements on every node change nothing more.
  # The passwords go through stdin, never a command line.
  {
    echo "CREATE DATABASE IF NOT EXISTS minitwit CHARACTER SET utf8mb4;"
    echo "CREATE USER IF NOT EXISTS 'mariabackup'@'localhost' IDENTIFIED BY '$sst_password';"
    echo "ALTER USER 'mariabackup'@'localhost' IDENTIFIED BY '$sst_password';"
    echo "GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR ON *.* TO 'mariabackup'@'localhost';"
    local app
    for app in "${APP_HOSTS[@]}"; do
      echo "CREATE USER IF NOT EXISTS 'minitwit'@'$app' IDENTIFIED BY '$DB_PASSWORD';"
      echo "ALTER USER 'minitwit'@'$app' IDENTIFIED BY '$DB_PASSWORD';"
      echo "GRANT ALL PRIVILEGES ON minitwit.* TO 'minitwit'@'$app';"
    done
  } | mariadb --user=root
}

firewall_db() {
  # SSH from anywhere; MariaDB (3306), state transfers (4444), group
  # communication (4567) and incremental transfers (4568) from the other
  # nodes only; 3306 from the app servers only.
  run ufw default deny incoming
  run ufw default allow outgoing
  run ufw allow 22/tcp
  local peer
  for peer in "${CLUSTER[@]}"; do
    [[ $peer == "$NODE" ]] || run ufw allow proto tcp from "$peer" to any port 3306,4444,4567,4568
  done
  for peer in "${APP_HOSTS[@]}"; do
    run ufw allow proto tcp from "$peer" to any port 3306
  done
  run ufw --force enable
  run systemctl enable --now ufw
}

deploy_key() {
  local keys=$PREFIX/root/.ssh/authorized_keys
  [[ -n ${DEPLOY_PUBLIC_KEY:-} ]] || return 0
  mkdir -p "$(dirname "$keys")" && chmod 700 "$(dirname "$keys")"
  if ! grep -qxF "$DEPLOY_PUBLIC_KEY" "$keys" 2>/dev/null; then
    printf '%s\n' "$DEPLOY_PUBLIC_KEY" >>"$keys"
    chmod 600 "$keys"
    echo "added the deploy key to /root/.ssh/authorized_keys"
  fi
}

mkdir -p "$PREFIX/usr/local/bin" "$PREFIX/etc/nginx/sites-enabled"
packages
case $ROLE in
  all | app)
    environment_file
    [[ $ROLE == app ]] || database
    tls
    nginx_site
    units
    firewall
    certificate
    ;;
  db)
    galera
    firewall_db
    ;;
esac
deploy_key
if [[ $ROLE == db ]]; then
  echo "provisioned: database node ${NODE:-} of the cluster ${CLUSTER[*]}"
else
  echo "provisioned: deploy with ./deploy.sh root@THIS-HOST"
fi
