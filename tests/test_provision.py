"""deploy/provision.sh in its dry-run mode: every file under a scratch root
(--root), the commands that would change the system (apt, users, MariaDB,
ufw, systemctl) only printed. Run twice, it changes nothing the second
time. (tests/test_deploy.py then deploys onto roots it laid out.)"""
import os
import re
import subprocess
from pathlib import Path

import pytest

from bench.serving import ROOT

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
    url = re.fullmatch(r'mysql://minitwit:([A-Za-z0-9_-]{32,})'
                       r'@127\.0\.0\.1:3306/minitwit', env['DATABASE_URL'])
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
        'would run: ufw --force enable']
    cnf = (scratch / 'etc/mysql/mariadb.conf.d/60-minitwit.cnf').read_text()
    assert 'bind-address = 127.0.0.1' in cnf
    assert 'character-set-server = utf8mb4' in cnf
    # The password never shows.
    password = settings(scratch / 'opt/minitwit/shared/minitwit.env')[
        'DATABASE_URL'].split(':')[2].split('@')[0]
    assert password not in result.stdout + result.stderr


@pytest.mark.needs('nginx', 'logrotate')
def test_nginx_site_and_logrotate_are_valid(scratch, tmp_path):
    result = provision(scratch, HTTP_LISTEN='127.0.0.1:8181',
                       API_LISTEN='127.0.0.1:5151')
    assert result.returncode == 0, result.stderr
    site = (scratch / 'etc/nginx/sites-available/minitwit').read_text()
    assert 'listen 127.0.0.1:8181 default_server;' in site
    assert 'listen 127.0.0.1:5151 default_server;' in site
    assert 'include %s/opt/minitwit/shared/nginx-upstreams.conf;' % scratch \
        in site
    assert settings(scratch / 'opt/minitwit/shared/host.env') == {
        'PUBLIC_API_URL': 'http://127.0.0.1:5151'}
    assert 'would run: ufw allow 5151/tcp' in result.stdout
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
