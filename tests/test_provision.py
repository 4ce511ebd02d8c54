"""deploy/provision.sh in its dry-run mode: every file under a scratch root
(--root), the commands that would change the system (apt, users, MariaDB,
ufw, systemctl) only printed. Run twice, it changes nothing the second
time. (tests/test_deploy.py then deploys onto roots it laid out.)"""
import os
import re
import subprocess
from pathlib import Path

import pytest
from serving import ROOT

PROVISION = str(Path(ROOT) / 'deploy' / 'provision.sh')


def provision(root, *args, **env):
    return subprocess.run([PROVISION, '--root', str(root), *args],
                          env=dict(os.environ, **env), capture_output=True,
                          text=True, timeout=60)


def snapshot(root):
    """Every file and link under root: content (or target) and mode."""
    return {str(p.relative_to(root)):
            (os.readlink(p) if p.is_symlink() else p.read_bytes(),
             p.lstat().st_mode)
            for p in sorted(root.rglob('*')) if not p.is_dir()}


def settings(path):
    return dict(line.split('=', 1) for line in path.read_text().splitlines()
                if line and not line.startswith('#'))


@pytest.fixture
def scratch(tmp_path):
    return tmp_path / 'scratch'


def test_lays_out_a_server_and_changes_nothing_the_second_time(scratch):
    first = provision(scratch)
    assert first.returncode == 0, first.stderr
    for path in ('/opt/minitwit/shared/minitwit.env',
                 '/opt/minitwit/shared/host.env',
                 '/opt/minitwit/shared/nginx-upstreams.conf',
                 '/etc/mysql/mariadb.conf.d/60-minitwit.cnf',
                 '/etc/nginx/sites-available/minitwit',
                 '/etc/logrotate.d/minitwit'):
        assert 'wrote %s' % path in first.stdout
    assert 'wrote the units minitwit-web@.service minitwit-api@.service' \
        in first.stdout
    before = snapshot(scratch)

    second = provision(scratch)
    assert second.returncode == 0, second.stderr
    assert 'wrote' not in second.stdout
    assert 'kept /opt/minitwit/shared/minitwit.env' in second.stdout
    assert snapshot(scratch) == before
    # The commands that would change the system are the same both times
    # (they are idempotent), but for those only a changed file needs.
    would = [line for line in first.stdout.splitlines()
             if line.startswith('would run:')]
    assert [line for line in would if line not in (
        'would run: systemctl restart mariadb',
        'would run: systemctl daemon-reload')] == \
        [line for line in second.stdout.splitlines()
         if line.startswith('would run:')]
    assert 'would run: systemctl restart mariadb' in would


def test_the_environment_file_holds_generated_secrets(scratch):
    assert provision(scratch).returncode == 0
    env_file = scratch / 'opt/minitwit/shared/minitwit.env'
    assert env_file.stat().st_mode & 0o777 == 0o640
    env = settings(env_file)
    url = re.fullmatch(r'mysql://minitwit:([A-Za-z0-9_-]{32,})@localhost/'
                       r'minitwit\?unix_socket=/run/mysqld/mysqld\.sock',
                       env['DATABASE_URL'])
    assert url, env['DATABASE_URL']
    assert len(env['MINITWIT_SECRET_KEY']) >= 32
    assert env['MINITWIT_SECRET_KEY'] != url.group(1)
    assert env['MINITWIT_ENV'] == 'production'
    assert (env['SIM_API_USERNAME'], env['SIM_API_PASSWORD']) == \
        ('simulator', 'super_safe!')
    # Another server gets other secrets.
    other = scratch.with_name('other')
    assert provision(other).returncode == 0
    assert settings(other / 'opt/minitwit/shared/minitwit.env') \
        ['DATABASE_URL'] != env['DATABASE_URL']

    # What an operator changed stays; nothing is generated again.
    with env_file.open('a') as f:
        f.write('SIM_API_PASSWORD=changed-by-hand\n')
    edited = env_file.read_text()
    assert provision(scratch).returncode == 0
    assert env_file.read_text() == edited


def test_system_commands_firewall_and_mariadb(scratch):
    result = provision(scratch)
    lines = result.stdout.splitlines()
    assert 'would run: useradd --system --home-dir %s/opt/minitwit ' \
        '--no-create-home --shell /usr/sbin/nologin minitwit' % scratch in lines
    install = next(line for line in lines if 'apt-get install' in line)
    for package in ('python3-venv', 'nginx', 'mariadb-server', 'ufw',
                    'logrotate'):
        assert package in install.split()
    # Only SSH, HTTP, HTTPS and the simulator API get in.
    assert [line for line in lines if line.startswith('would run: ufw')] == [
        'would run: ufw default deny incoming',
        'would run: ufw default allow outgoing',
        'would run: ufw allow 22/tcp', 'would run: ufw allow 80/tcp',
        'would run: ufw allow 443/tcp', 'would run: ufw allow 5001/tcp',
        'would run: ufw allow 5443/tcp', 'would run: ufw --force enable']
    assert 'would run: systemctl enable --now ufw' in lines
    cnf = (scratch / 'etc/mysql/mariadb.conf.d/60-minitwit.cnf').read_text()
    assert 'bind-address = 127.0.0.1' in cnf
    assert 'innodb_flush_log_at_trx_commit = 1' in cnf  # durable: one server
    assert 'character-set-server = utf8mb4' in cnf
    # The password never shows.
    password = settings(scratch / 'opt/minitwit/shared/minitwit.env')[
        'DATABASE_URL'].split(':')[2].split('@')[0]
    assert password not in result.stdout + result.stderr


@pytest.mark.needs('nginx', 'logrotate')
def test_nginx_site_and_logrotate_are_valid(scratch, tmp_path):
    result = provision(scratch, HTTP_LISTEN='127.0.0.1:8181',
                       HTTPS_LISTEN='127.0.0.1:8443',
                       API_LISTEN='127.0.0.1:5151',
                       API_HTTPS_LISTEN='127.0.0.1:5252')
    assert result.returncode == 0, result.stderr
    site = (scratch / 'etc/nginx/sites-available/minitwit').read_text()
    assert 'listen 127.0.0.1:8181 default_server;' in site
    assert 'listen 127.0.0.1:8443 ssl default_server;' in site
    assert 'listen 127.0.0.1:5151 default_server;' in site
    assert 'listen 127.0.0.1:5252 ssl default_server;' in site
    # Port 80 sends browsers to the HTTPS port, wherever it is.
    assert 'return 301 https://$host:8443$request_uri;' in site
    assert 'ssl_certificate %s/etc/minitwit/tls/cert.pem;' % scratch in site
    assert 'root %s/var/www/minitwit-acme;' % scratch in site
    assert 'include %s/opt/minitwit/shared/nginx-upstreams.conf;' % scratch \
        in site
    assert settings(scratch / 'opt/minitwit/shared/host.env') == {
        'PUBLIC_API_URL': 'http://127.0.0.1:5151'}
    assert [line for line in result.stdout.splitlines()
            if line.startswith('would run: ufw allow')] == [
        'would run: ufw allow %s/tcp' % port
        for port in (22, 8181, 8443, 5151, 5252)]
    assert os.readlink(scratch / 'etc/nginx/sites-enabled/minitwit') == \
        str(scratch / 'etc/nginx/sites-available/minitwit')
    conf = tmp_path / 'nginx.conf'
    conf.write_text('pid %s/nginx.pid;\nevents {}\nhttp { include %s; }\n' % (
        tmp_path, scratch / 'etc/nginx/sites-enabled/*'))
    check = subprocess.run(['nginx', '-t', '-p', str(tmp_path), '-c',
                            str(conf), '-e', str(tmp_path / 'error.log')],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr

    rotate = subprocess.run(['logrotate', '--debug', '--state',
                             str(tmp_path / 'state'),
                             str(scratch / 'etc/logrotate.d/minitwit')],
                            capture_output=True, text=True)
    assert rotate.returncode == 0, rotate.stderr
    assert '%s/var/log/minitwit/*.log' % scratch in rotate.stderr


def test_deploy_key_is_added_once(scratch):
    key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDeployKeyForTests circleci'
    for _ in range(2):
        assert provision(scratch, DEPLOY_PUBLIC_KEY=key).returncode == 0
    keys = scratch / 'root/.ssh/authorized_keys'
    assert keys.read_text() == key + '\n'
    assert keys.stat().st_mode & 0o777 == 0o600


def test_refuses_unknown_arguments():
    result = subprocess.run([PROVISION, '--bogus'], capture_output=True,
                            text=True)
    assert result.returncode == 2 and 'usage' in result.stderr


def server_blocks(site):
    """{listen: the server block's text} of the nginx site."""
    return {re.search(r'listen (\S+)', block).group(1): block
            for block in site.split('\nserver {')[1:]}


def test_nginx_terminates_tls_with_hsts_and_modern_protocols(scratch):
    assert provision(scratch).returncode == 0
    site = (scratch / 'etc/nginx/sites-available/minitwit').read_text()
    blocks = server_blocks(site)
    assert set(blocks) == {'80', '443', '5001', '5443'}
    # 80: the ACME challenges, /metrics for the server itself, and a
    # redirect for everything else.
    assert 'location ^~ /.well-known/acme-challenge/' in blocks['80']
    assert 'return 301 https://$host$request_uri;' in blocks['80']
    assert 'proxy_pass http://minitwit_web;' in blocks['80'].split(
        'location = /metrics')[1].split('}')[0]
    for port in ('443', '5443'):
        assert 'ssl_protocols TLSv1.2 TLSv1.3;' in blocks[port]
        assert 'add_header Strict-Transport-Security "max-age=31536000" ' \
            'always;' in blocks[port]
    # The simulator's port stays plain HTTP: its POSTs would not survive a
    # redirect. No HSTS on plain HTTP either (browsers ignore it there).
    assert 'return 301' not in blocks['5001'] and 'ssl' not in blocks['5001']
    assert 'proxy_set_header X-Forwarded-Proto $scheme;' in site


@pytest.mark.needs('openssl')
def test_without_a_domain_a_self_signed_certificate_is_made_once(scratch):
    assert provision(scratch).returncode == 0
    tls = scratch / 'etc/minitwit/tls'
    assert os.readlink(tls / 'cert.pem') == str(tls / 'selfsigned-cert.pem')
    assert os.readlink(tls / 'key.pem') == str(tls / 'selfsigned-key.pem')
    assert (tls / 'selfsigned-key.pem').stat().st_mode & 0o777 == 0o600
    text = subprocess.run(['openssl', 'x509', '-noout', '-text', '-in',
                           str(tls / 'cert.pem')], capture_output=True,
                          text=True, check=True).stdout
    assert 'DNS:localhost' in text and 'IP Address:127.0.0.1' in text
    made = (tls / 'selfsigned-cert.pem').read_bytes()
    second = provision(scratch)
    assert 'kept /etc/minitwit/tls/selfsigned-cert.pem' in second.stdout
    assert (tls / 'selfsigned-cert.pem').read_bytes() == made
    assert 'certbot' not in second.stdout


def test_with_a_domain_certbot_gets_the_certificate_and_the_timer_renews(
        scratch):
    result = provision(scratch, DOMAIN='minitwit.example.org',
                       CERTBOT_EMAIL='ops@example.org')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    install = next(line for line in lines if 'apt-get install' in line)
    assert {'certbot', 'python3-certbot-nginx'} <= set(install.split())
    # nginx first, with the self-signed certificate (it must be up to answer
    # the challenge on port 80); then certbot through the ACME path.
    certbot = 'would run: certbot certonly --webroot --webroot-path ' \
        '/var/www/minitwit-acme --domain minitwit.example.org ' \
        '--email ops@example.org --agree-tos --non-interactive ' \
        '--keep-until-expiring'
    assert certbot in lines
    assert lines.index('would run: systemctl enable --now nginx') < \
        lines.index('would run: ufw --force enable') < lines.index(certbot)
    assert 'would run: systemctl enable --now certbot.timer' in lines
    hook = scratch / 'etc/letsencrypt/renewal-hooks/deploy/minitwit-nginx'
    assert 'systemctl reload nginx' in hook.read_text()
    assert hook.stat().st_mode & 0o777 == 0o755
    live = scratch / 'etc/letsencrypt/live/minitwit.example.org'
    tls = scratch / 'etc/minitwit/tls'
    assert os.readlink(tls / 'cert.pem') == str(live / 'fullchain.pem')
    assert os.readlink(tls / 'key.pem') == str(live / 'privkey.pem')
    # The renewal hook's nginx reload and the links are only needed once.
    second = provision(scratch, DOMAIN='minitwit.example.org',
                       CERTBOT_EMAIL='ops@example.org')
    assert 'linked' not in second.stdout and 'wrote' not in second.stdout
    # Once certbot has the certificate, it is not asked again.
    live.mkdir(parents=True)
    (live / 'fullchain.pem').write_text('certificate')
    (live / 'privkey.pem').write_text('key')
    third = provision(scratch, DOMAIN='minitwit.example.org')
    assert 'certbot certonly' not in third.stdout
    assert 'would run: systemctl enable --now certbot.timer' in third.stdout
    assert provision(scratch, DOMAIN='-bad;name').returncode == 2


def test_installed_packages_are_not_asked_for_again(scratch):
    """A second run on a real server makes no apt call: the packages are
    looked up with dpkg first (in the dry run, the root's own dpkg status)."""
    first = provision(scratch)
    assert 'would run: apt-get update -q' in first.stdout
    install = next(line for line in first.stdout.splitlines()
                   if 'apt-get install' in line).split()
    packages = install[install.index('--no-install-recommends') + 1:]
    status = scratch / 'var/lib/dpkg/status'
    status.parent.mkdir(parents=True)
    status.write_text(''.join(
        'Package: %s\nStatus: install ok installed\nArchitecture: all\n'
        'Version: 1\n\n' % package for package in packages[1:]))
    one_missing = provision(scratch)
    assert 'would run: env DEBIAN_FRONTEND=noninteractive apt-get install -y '\
        '-q --no-install-recommends %s' % packages[0] in one_missing.stdout
    with status.open('a') as f:
        f.write('Package: %s\nStatus: install ok installed\n'
                'Architecture: all\nVersion: 1\n\n' % packages[0])
    none_missing = provision(scratch)
    assert 'apt-get' not in none_missing.stdout
    assert 'installed already: ' + ' '.join(packages) in none_missing.stdout


CLUSTER = {'CLUSTER_ADDRESSES': '10.0.0.1 10.0.0.2,10.0.0.3',
           'APP_ADDRESSES': '10.0.1.1 10.0.1.2', 'DB_PASSWORD': 'db-pass-for-tests'}


def would_run(result):
    return [line.removeprefix('would run: ') for line in result.stdout.splitlines()
            if line.startswith('would run: ')]


def test_a_galera_node_bootstraps_or_joins_with_its_peers_only(scratch):
    first = provision(scratch, ROLE='db', NODE_ADDRESS='10.0.0.1',
                      GALERA_BOOTSTRAP='1', **CLUSTER)
    assert first.returncode == 0, first.stderr
    commands = would_run(first)
    install = next(c for c in commands if 'apt-get install' in c).split()
    assert {'mariadb-server', 'galera-4', 'mariadb-backup', 'socat', 'ufw'} <= set(install)
    assert not {'nginx', 'python3-venv', 'certbot'} & set(install)
    cnf = scratch / 'etc/mysql/mariadb.conf.d'
    galera = (cnf / '61-minitwit-galera.cnf').read_text().splitlines()
    for line in ('[galera]', 'wsrep_on = ON',
                 'wsrep_provider = /usr/lib/galera/libgalera_smm.so',
                 'wsrep_cluster_address = gcomm://10.0.0.1,10.0.0.2,10.0.0.3',
                 'wsrep_node_address = 10.0.0.1', 'wsrep_sst_method = mariabackup',
                 'binlog_format = ROW', 'innodb_autoinc_lock_mode = 2',
                 'log_bin_trust_function_creators = 1',
                 'innodb_flush_log_at_trx_commit = 2'):
        assert line in galera
    assert 'bind-address = 10.0.0.1' in (cnf / '60-minitwit.cnf').read_text()
    # The state transfers' password: generated, in a file for root and
    # mysql only, never printed or on a command line.
    sst = cnf / '62-minitwit-sst.cnf'
    assert sst.stat().st_mode & 0o777 == 0o640
    password = re.search(r'^wsrep_sst_auth = mariabackup:(\S{32,})$', sst.read_text(),
                         re.M).group(1)
    assert 'chown root:mysql %s' % sst in commands
    assert password not in first.stdout + first.stderr
    assert CLUSTER['DB_PASSWORD'] not in first.stdout + first.stderr
    # The first node starts the cluster; mariadb-server's own start is stopped first.
    assert commands[commands.index('systemctl stop mariadb') + 1] == 'galera_new_cluster'
    assert [c for c in commands if c.startswith('ufw')] == [
        'ufw default deny incoming', 'ufw default allow outgoing', 'ufw allow 22/tcp',
        'ufw allow proto tcp from 10.0.0.2 to any port 3306,4444,4567,4568',
        'ufw allow proto tcp from 10.0.0.3 to any port 3306,4444,4567,4568',
        'ufw allow proto tcp from 10.0.1.1 to any port 3306',
        'ufw allow proto tcp from 10.0.1.2 to any port 3306', 'ufw --force enable']
    assert 'user minitwit for 10.0.1.1 10.0.1.2' in first.stdout
    # No apps on a database node.
    assert not (scratch / 'opt/minitwit').exists()
    assert not (scratch / 'etc/nginx/sites-available/minitwit').exists()
    assert not any('useradd' in c for c in commands)
    # A re-run keeps the password; nothing is written again.
    second = provision(scratch, ROLE='db', NODE_ADDRESS='10.0.0.1', **CLUSTER)
    assert second.returncode == 0 and 'wrote' not in second.stdout
    assert password in sst.read_text()

    # Another node joins (no bootstrap), with the password it was given.
    other = scratch.with_name('node2')
    joined = provision(other, ROLE='db', NODE_ADDRESS='10.0.0.2', SST_PASSWORD=password,
                       **CLUSTER)
    commands = would_run(joined)
    assert 'galera_new_cluster' not in commands
    assert commands[commands.index('systemctl stop mariadb') + 1] == 'systemctl start mariadb'
    assert (other / 'etc/mysql/mariadb.conf.d/62-minitwit-sst.cnf').read_text() == \
        sst.read_text()
    assert 'wsrep_node_address = 10.0.0.2' in \
        (other / 'etc/mysql/mariadb.conf.d/61-minitwit-galera.cnf').read_text()
    assert 'ufw allow proto tcp from 10.0.0.1 to any port 3306,4444,4567,4568' in commands
    assert not any('from 10.0.0.2 ' in c for c in commands)


def test_an_app_server_names_every_database_node_and_installs_no_database(scratch):
    result = provision(scratch, ROLE='app', CLUSTER_ADDRESSES='db1,db2 db3',
                       DB_PASSWORD='p@ss/w:rd')
    assert result.returncode == 0, result.stderr
    env = settings(scratch / 'opt/minitwit/shared/minitwit.env')
    assert env['DATABASE_URL'] == 'mysql://minitwit:p%40ss%2Fw%3Ard@db1,db2,db3:3306/minitwit'
    commands = would_run(result)
    install = next(c for c in commands if 'apt-get install' in c).split()
    assert 'nginx' in install and 'mariadb-server' not in install
    # (It may build mysqlclient: libmariadb's headers, not its server.)
    assert {'libmariadb-dev', 'gcc', 'python3-dev'} <= set(install)
    assert not (scratch / 'etc/mysql').exists()
    assert not any('mariadb' in c for c in commands if 'apt-get' not in c)
    assert [c for c in commands if c.startswith('ufw allow')] == [
        'ufw allow %d/tcp' % port for port in (22, 80, 443, 5001, 5443)]
    assert (scratch / 'etc/nginx/sites-available/minitwit').exists()
    assert 'p@ss/w:rd' not in result.stdout


@pytest.mark.parametrize('env, message', [
    ({'ROLE': 'web'}, "ROLE is all, app or db, not 'web'"),
    ({'ROLE': 'app', 'DB_PASSWORD': 'x'}, 'ROLE=app needs CLUSTER_ADDRESSES'),
    ({'ROLE': 'app', 'CLUSTER_ADDRESSES': 'db1'}, 'ROLE=app needs DB_PASSWORD'),
    ({'ROLE': 'db', 'CLUSTER_ADDRESSES': 'db1'}, 'ROLE=db needs DB_PASSWORD'),
    ({'ROLE': 'db', 'CLUSTER_ADDRESSES': '10.0.0.1', 'DB_PASSWORD': 'x',
      'NODE_ADDRESS': '10.0.0.9'}, 'NODE_ADDRESS 10.0.0.9 is not one of CLUSTER_ADDRESSES'),
    ({'ROLE': 'app', 'CLUSTER_ADDRESSES': 'db1 b;ad', 'DB_PASSWORD': 'x'},
     "'b;ad' is not a host or address"),
])
def test_a_role_without_what_it_needs_is_refused(scratch, env, message):
    result = provision(scratch, **env)
    assert result.returncode == 2 and message in result.stderr, result.stderr
