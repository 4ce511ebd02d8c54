"""The server side for real, on a booted Debian 12 host (tests/host/bootedhost.py:
systemd as PID 1 under systemd-nspawn, an address of its own, no network
beyond this machine): what a user's first droplet would otherwise find out.

One host, booted once, goes through what a droplet goes through, in order:

1. deploy/provision.sh runs inside it, twice: the second run changes no file
   it manages, restarts nothing and makes no apt call. The user, MariaDB
   with the generated password, nginx, ufw's rules, logrotate, the units.
2. deploy.sh from here over SSH to the host's address: an unknown and a
   changed host key are refused, the pinned one deploys; both apps run as
   systemd services under `minitwit`, and answer through nginx.
3. A deploy during a replay drops nothing; a broken release is rolled back.
4. TLS at the edge, checked with curl: the redirect (not of the ACME
   path), HSTS, TLS 1.0 and 1.1 refused, both apps over HTTPS, Secure
   session cookies.
5. `systemctl kill -s KILL` on the API during a replay: systemd restarts it
   and nothing acknowledged is lost.
6. Each app's JSON access lines are in the journal.
7. A reboot: everything comes back by itself, the data included.

It fails rather than skips where hosts cannot boot when TEST_HOST=1 (as
.ci/run sets it) or MINITWIT_REQUIRE_ALL=1.
"""
import json
import os
import re
import subprocess
import threading
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from delivery import broken_release, connection, get, make_dist, release_of, replay_until
from host.bootedhost import BootedHost, build_root, missing_requirements
from serving import ROOT, wait_until
from system_tools import describe, missing

from scripts.simulator.gen_scenario import generate_actions
from scripts.simulator.simulate import EXPECTED, Client, verify

REQUIRED = os.environ.get('TEST_HOST') == '1' or os.environ.get('MINITWIT_REQUIRE_ALL') == '1'
TOOLS = ('root', 'debootstrap', 'systemd-nspawn', 'ip', 'ssh', 'scp', 'curl', 'openssl')
# 10.231.<INDEX>.0/24: this module's own (tests/test_booted_host.py has 11).
INDEX = 12
# Asked for, a missing tool fails the test (the module fixture says which);
# otherwise the `needs` marker skips it and the run's summary says why.
NEEDS = pytest.mark.needs(*TOOLS) if not REQUIRED else pytest.mark.slow
TIMINGS = {}
# What provisioning manages on the host: a second run must leave all of it as it was.
MANAGED = ('/opt/minitwit', '/etc/nginx/sites-available', '/etc/nginx/sites-enabled',
           '/etc/mysql/mariadb.conf.d', '/etc/systemd/system', '/etc/logrotate.d/minitwit',
           '/etc/minitwit', '/var/www/minitwit-acme', '/etc/ufw', '/etc/default/ufw',
           '/usr/local/bin/minitwitctl', '/root/.ssh/authorized_keys')
MARIADB_STATE = 'SELECT user, host FROM mysql.user ORDER BY user, host; SHOW DATABASES'
APT_SHIM = '#!/bin/sh\necho "$(basename "$0") $*" >> /root/apt-calls\nexec /usr/bin/"$(basename "$0")" "$@"\n'
UFW_STATUS = '''Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
80/tcp                     ALLOW IN    Anywhere
443/tcp                    ALLOW IN    Anywhere
5001/tcp                   ALLOW IN    Anywhere
5443/tcp                   ALLOW IN    Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
80/tcp (v6)                ALLOW IN    Anywhere (v6)
443/tcp (v6)               ALLOW IN    Anywhere (v6)
5001/tcp (v6)              ALLOW IN    Anywhere (v6)
5443/tcp (v6)              ALLOW IN    Anywhere (v6)
'''


def require_host():
    """Skip where booted hosts cannot run (the marker did), or fail when
    they were asked for: TEST_HOST=1 or MINITWIT_REQUIRE_ALL=1."""
    lacking = [describe(tool) for tool in missing(TOOLS)]
    reason = ('needs ' + ', '.join(lacking)) if lacking else missing_requirements()
    if reason and REQUIRED:
        pytest.fail('the booted-host tests cannot run here: %s (TEST_HOST=1 or '
                    'MINITWIT_REQUIRE_ALL=1 asks for them; `sudo make deps` installs '
                    'debootstrap and systemd-container)' % reason, pytrace=False)
    if reason:
        pytest.skip(reason)


def test_a_host_that_cannot_boot_is_skipped_unless_asked_for(monkeypatch):
    import test_host
    monkeypatch.setattr(test_host, 'missing', lambda tools: ['debootstrap'])
    monkeypatch.setattr(test_host, 'REQUIRED', False)
    with pytest.raises(pytest.skip.Exception, match='needs debootstrap'):
        require_host()
    monkeypatch.setattr(test_host, 'REQUIRED', True)
    with pytest.raises(pytest.fail.Exception,
                       match='booted-host tests cannot run here: needs debootstrap'):
        require_host()


@contextmanager
def phase(name):
    """Time a phase of the test; a failure says which phase it was in."""
    print('--- %s' % name, flush=True)
    started = time.monotonic()
    try:
        yield
    except Exception as error:
        error.add_note('(in the phase: %s)' % name)
        raise
    finally:
        TIMINGS[name] = round(time.monotonic() - started, 1)


class Droplet:
    """The booted host as the tests here use it."""

    def __init__(self, host, work):
        self.host, self.work = host, work
        self.address = host.address
        self.api = 'http://%s:5001' % host.address
        self.api_https = 'https://%s:5443' % host.address
        self.web = 'https://%s' % host.address
        self.spec = 'root@' + host.address
        self.certificate = work / 'host-cert.pem'

    def ssh(self, command, timeout=300, input=None, check=True):
        code, out, err = self.host.ssh(command, timeout=timeout, input=input)
        if check:
            assert code == 0, '%s: exit %d\n%s%s' % (command, code, out, err)
        return out

    def deploy(self, *args, known_hosts=None, tarball=None, **env):
        """./deploy.sh ARGS from here, with the host's key and pinned host key."""
        env = dict(os.environ, SSH_KEY=str(self.host.identity),
                   SSH_KNOWN_HOSTS=str(known_hosts or self.host.known_hosts),
                   **{k: str(v) for k, v in env.items()})
        if tarball is not None:
            env['TARBALL'] = str(tarball)
        return subprocess.run(['./deploy.sh', *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=600)

    def curl(self, *args, timeout=30):
        """curl from here: (exit code, headers and body, stderr)."""
        done = subprocess.run(['curl', '-sS', '-m', '10', '--noproxy', '*', '-D', '-', *args],
                              capture_output=True, text=True, timeout=timeout)
        return done.returncode, done.stdout, done.stderr

    def live_slot(self):
        return self.ssh('basename "$(readlink /opt/minitwit/current)"').strip()


def headers(response):
    """{lower-case name: value} of the last header block curl -D printed."""
    block = re.split(r'\r?\n\r?\n', response.split('\r\n\r\n')[0])[0]
    return {name.lower(): value.strip() for name, _, value in
            (line.partition(':') for line in block.splitlines()[1:])}


def status_of(response):
    return int(response.split(None, 2)[1])


def renamed(actions, prefix):
    """The actions with every user name prefixed: fresh users for a replay
    on a database that has had one."""
    out = []
    for action_id, command, fields in actions:
        fields = list(fields)
        fields[0] = prefix + fields[0]
        if command in ('follow', 'unfollow'):
            fields[1] = prefix + fields[1]
        out.append((action_id, command, fields))
    return out


def lost(client, sent):
    """What the API no longer shows of the acknowledged (2xx) actions in
    `sent` ((action, status, server) triples): their users, their messages
    and, for each pair whose last action was acknowledged, its follow."""
    acked = [action for action, status, _ in sent if status == 204]
    problems = []
    users = {fields[0] for _, command, fields in acked if command == 'register'}
    tweets = defaultdict(Counter)
    for _, command, fields in acked:
        if command == 'tweet':
            tweets[fields[0]][fields[1]] += 1
    for user in sorted(users | set(tweets)):
        status, body = client.send('GET', '/msgs/%s?no=100000' % quote(user, safe=''),
                                   timeout=30)
        if status != 200:
            problems.append('user %r: GET /msgs answers %d' % (user, status))
            continue
        shown = Counter(m['content'] for m in json.loads(body))
        for text, count in tweets[user].items():
            if shown[text] < count:
                problems.append('%r posted %r %d times, %d shown' % (user, text, count,
                                                                      shown[text]))
    last = {}
    for action, status, _ in sent:
        if action[1] in ('follow', 'unfollow'):
            last[tuple(action[2][:2])] = (action[1], status)
    follows = {}
    for (who, whom), (command, status) in sorted(last.items()):
        if status != 204:
            continue  # not acknowledged: either way is right
        if who not in follows:
            follows[who] = set(client.get_json('/fllws/%s?no=100000'
                                               % quote(who, safe=''))['follows'])
        if (whom in follows[who]) != (command == 'follow'):
            problems.append('%r %ss %r was acknowledged, not stored' % (who, command, whom))
    return problems


def snapshot(droplet):
    """What provisioning manages, as files (path, type, mode, owner, link
    target, checksum), plus the user, MariaDB's users and the services'
    start times (a restart shows)."""
    paths = ' '.join(MANAGED)
    return droplet.ssh('\n'.join([
        'set -e',
        "find %s \\( -path /opt/minitwit/shared/wheels -prune \\) -o "
        "-printf '%%p %%y %%m %%u:%%g %%l\\n' | sort" % paths,
        'find %s -type f -exec sha256sum {} + | sort -k 2' % paths,
        'getent passwd minitwit; getent group minitwit',
        'mariadb -N -e "%s"' % MARIADB_STATE,
        'systemctl show -p ActiveEnterTimestampMonotonic mariadb nginx ufw',
        'systemctl is-enabled mariadb nginx ufw']))


def fill_wheelhouse(droplet, work):
    """The wheels a release needs, built here with this machine's Python 3.11
    and copied into the host's wheelhouse: the host has no package index, as
    a server that has had a deploy before needs none."""
    wheels = work / 'wheels'
    requirements = ['--group', str(Path(ROOT) / 'pyproject.toml') + ':app']
    if (Path(ROOT) / 'pyproject.toml').exists():
        requirements += ['--group', str(Path(ROOT) / 'pyproject.toml') + ':mysql']
    done = subprocess.run([str(Path(ROOT) / '.venv' / 'bin' / 'python'), '-m', 'pip', 'wheel',
                           '--quiet', '--disable-pip-version-check', '-w', str(wheels), 'pip',
                           *requirements], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(str(p) for p in wheels.glob('*.whl'))
    scp = subprocess.run(['scp', *droplet.host.ssh_options(), '-q', *files,
                          '%s:/opt/minitwit/shared/wheels/' % droplet.spec],
                         capture_output=True, text=True, timeout=300)
    assert scp.returncode == 0, scp.stderr
    return [Path(f).name for f in files]


def mariadb_as_minitwit(droplet, password, sql):
    """Run sql as MariaDB's user minitwit over 127.0.0.1, the password on
    stdin (never on a command line): (exit code, output)."""
    code, out, err = droplet.host.ssh(
        'read -r MYSQL_PWD; export MYSQL_PWD; mariadb --user=minitwit --host=127.0.0.1 '
        '--batch --skip-column-names minitwit -e %s' % json.dumps(sql),
        input=password + '\n', timeout=60)
    return code, out + err


def ufw_status(droplet):
    """`ufw status verbose`, without its trailing blanks."""
    return ''.join(line.rstrip() + '\n'
                   for line in droplet.ssh('ufw status verbose').strip().splitlines())


def eventually(condition, what, timeout):
    """wait_until for conditions that ask the host (over SSH): twice a second."""
    wait_until(condition, what, timeout, interval=0.5)


def request_id(url, cafile=None):
    """The X-Request-Id nginx gave a GET of url (it answers 200)."""
    parts = urlsplit(url)
    conn = connection(url, cafile=cafile)
    try:
        conn.request('GET', parts.path)
        answer = conn.getresponse()
        answer.read()
        assert answer.status == 200, (url, answer.status)
        return answer.getheader('X-Request-Id')
    finally:
        conn.close()


def unit_user(droplet, unit):
    pid = droplet.ssh('systemctl show -p MainPID --value %s' % unit).strip()
    assert pid != '0', '%s has no main process' % unit
    return droplet.ssh('ps -o user= -p %s' % pid).strip(), pid


@pytest.fixture(scope='module')
def droplet(tmp_path_factory):
    require_host()
    started = time.monotonic()
    build_root()
    TIMINGS['root (0 when cached)'] = round(time.monotonic() - started, 1)
    work = tmp_path_factory.mktemp('droplet')
    host = BootedHost(work, 'droplet', INDEX)
    try:
        started = time.monotonic()
        host.start()
        TIMINGS['copy and boot'] = round(time.monotonic() - started, 1)
        yield Droplet(host, work)
    finally:
        host.close()
        print('booted host:', host.timings)
        print('phases (s):', json.dumps(TIMINGS, indent=1))


@pytest.mark.slow
@NEEDS
@pytest.mark.timeout(1500)
def test_a_droplet_provisioned_deployed_killed_and_rebooted(droplet, tmp_path):
    """Every bullet of the issue, in the order a droplet lives them."""
    host = droplet.host
    dist = tmp_path / 'dist'
    v1 = make_dist(dist, 'v1')

    with phase('provision (first run)'):
        droplet.ssh('mkdir -p /root/provision')
        scp = subprocess.run(['scp', *host.ssh_options(), '-q', str(v1),
                              '%s:/root/provision/minitwit.tar.gz' % droplet.spec],
                             capture_output=True, text=True, timeout=120)
        assert scp.returncode == 0, scp.stderr
        # Every apt call is written down (the real apt-get runs).
        for tool in ('apt-get', 'apt'):
            droplet.ssh('cat > /usr/local/sbin/%s && chmod 755 /usr/local/sbin/%s'
                        % (tool, tool), input=APT_SHIM)
        droplet.ssh('cd /root/provision && tar -xzf minitwit.tar.gz --strip-components=1')
        first = droplet.ssh('bash /root/provision/deploy/provision.sh 2>&1', timeout=900)
        assert 'provisioned' in first, first
        calls = droplet.ssh('cat /root/apt-calls')
        assert calls.splitlines()[0] == 'apt-get update -q', calls
        assert 'install -y -q --no-install-recommends' in calls, calls

    with phase('provision (second run)'):
        before = snapshot(droplet)
        droplet.ssh('rm /root/apt-calls')
        second = droplet.ssh('bash /root/provision/deploy/provision.sh 2>&1', timeout=900)
        assert 'provisioned' in second, second
        assert droplet.ssh('cat /root/apt-calls 2>/dev/null || true') == '', \
            'the second run called apt'
        assert 'installed already: ' in second
        assert re.findall(r'^(?:wrote|linked) .*', second, re.M) == [], second
        assert 'running: systemctl restart' not in second
        assert snapshot(droplet) == before
        droplet.ssh('rm -f /usr/local/sbin/apt-get /usr/local/sbin/apt')

    with phase('what provisioning set up'):
        # The dedicated user: a system account that cannot log in.
        user = droplet.ssh('getent passwd minitwit').strip().split(':')
        assert int(user[2]) < 1000 and user[5] == '/opt/minitwit' \
            and user[6] == '/usr/sbin/nologin', user
        env = dict(line.split('=', 1) for line in
                   droplet.ssh('cat /opt/minitwit/shared/minitwit.env').splitlines()
                   if line and not line.startswith('#'))
        assert droplet.ssh('stat -c "%a %U:%G" /opt/minitwit/shared/minitwit.env') \
            == '640 root:minitwit\n'
        # MariaDB, with the generated password, utf8mb4, on 127.0.0.1 only.
        # The apps reach it through its socket.
        password = re.fullmatch(r'mysql://minitwit:([^@]+)@localhost/minitwit'
                                r'\?unix_socket=/run/mysqld/mysqld\.sock',
                                env['DATABASE_URL']).group(1)
        code, out = mariadb_as_minitwit(
            droplet, password, 'SELECT CURRENT_USER(), @@character_set_server, @@bind_address')
        # (MariaDB names 127.0.0.1 localhost: provisioning made both users.)
        assert code == 0 and out.split()[1:] == ['utf8mb4', '127.0.0.1'], out
        assert out.split()[0] in ('minitwit@localhost', 'minitwit@127.0.0.1'), out
        code, out = mariadb_as_minitwit(droplet, 'not-the-password', 'SELECT 1')
        assert code != 0 and 'Access denied' in out
        # nginx, ufw (as written), logrotate, the units.
        assert droplet.ssh('systemctl is-active mariadb nginx ufw').split() == ['active'] * 3
        assert droplet.ssh('systemctl is-enabled mariadb nginx ufw').split() == ['enabled'] * 3
        droplet.ssh('nginx -t -q')
        assert ufw_status(droplet) == UFW_STATUS
        assert droplet.ssh('cat /etc/logrotate.d/minitwit') == \
            (Path(ROOT) / 'deploy/logrotate/minitwit').read_text()
        droplet.ssh('logrotate --debug /etc/logrotate.d/minitwit 2>&1')
        for app in ('web', 'api'):
            assert droplet.ssh('systemctl cat minitwit-%s@blue.service' % app).startswith(
                '# /etc/systemd/system/minitwit-%s@.service' % app)
        # ufw drops what it does not let in: a server on 8080 is not reached.
        droplet.ssh('systemd-run --unit=stray-8080 python3 -m http.server --bind 0.0.0.0 8080')
        eventually(lambda: droplet.ssh('ss -Htln "sport = :8080"').strip(),
                   'the stray server to listen', 20)
        code, _, err = droplet.curl('-m', '2', 'http://%s:8080/' % droplet.address)
        assert code == 28, err  # a time-out: dropped, not refused
        droplet.ssh('systemctl stop stray-8080')
        droplet.certificate.write_text(droplet.ssh('cat /etc/minitwit/tls/cert.pem'))

    with phase('wheelhouse'):
        wheels = fill_wheelhouse(droplet, tmp_path)
        assert any(name.startswith('pip-') for name in wheels), wheels

    with phase('host keys'):
        unknown = tmp_path / 'unknown_known_hosts'
        unknown.touch()
        result = droplet.deploy(droplet.spec, tarball=v1, known_hosts=unknown)
        assert result.returncode != 0
        assert 'the SSH host key of %s is unknown' % droplet.address in result.stderr
        assert 'TRUST_NEW_HOST=1' in result.stderr
        changed = tmp_path / 'changed_known_hosts'
        impostor = tmp_path / 'impostor'
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', str(impostor)],
                       check=True)
        changed.write_text('%s %s\n' % (droplet.address, ' '.join(
            impostor.with_suffix('.pub').read_text().split()[:2])))
        result = droplet.deploy(droplet.spec, tarball=v1, known_hosts=changed,
                                TRUST_NEW_HOST=1)
        assert result.returncode != 0
        assert 'the SSH host key of %s has CHANGED' % droplet.address in result.stderr
        assert droplet.ssh('ls /opt/minitwit/releases') == ''
        assert droplet.ssh('test -e /opt/minitwit/incoming || echo none') == 'none\n'

    with phase('deploy v1 over SSH'):
        result = droplet.deploy(droplet.spec, tarball=v1)
        assert result.returncode == 0, result.stdout + result.stderr
        first_release = release_of(droplet.api)
        assert first_release.startswith('v1-')
        for app in ('web', 'api'):
            unit = 'minitwit-%s@blue' % app
            assert droplet.ssh('systemctl is-active %s; systemctl is-enabled %s'
                               % (unit, unit)).split() == ['active', 'enabled']
            assert unit_user(droplet, unit)[0] == 'minitwit'
        droplet.ssh('systemd-analyze verify minitwit-web@blue.service '
                    'minitwit-api@blue.service 2>&1')
        if (Path(ROOT) / 'pyproject.toml').exists():
            # The C driver, from the wheel built here, loads on the host.
            droplet.ssh('/opt/minitwit/current/.venv/bin/python -c "import MySQLdb"')
        # The API through nginx on the host's address: plain and HTTPS
        # (the self-signed certificate names the address); the web UI.
        assert get(droplet.api + '/latest') == (200, 'minitwit/' + first_release,
                                               b'{"latest": -1}')
        assert get(droplet.api_https + '/latest', cafile=droplet.certificate)[:2] == \
            (200, 'minitwit/' + first_release)
        assert get(droplet.web + '/public', cafile=droplet.certificate)[0] == 200
        # TRUST_NEW_HOST=1: a first deploy by hand pins the key it met.
        fresh = tmp_path / 'fresh_known_hosts'
        result = droplet.deploy('--revision', droplet.spec, known_hosts=fresh,
                                TRUST_NEW_HOST=1)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == droplet.ssh('cat /opt/minitwit/current/REVISION').strip()
        assert subprocess.run(['ssh-keygen', '-F', droplet.address, '-f', str(fresh)],
                              capture_output=True).returncode == 0
        assert droplet.deploy('--revision', droplet.spec, known_hosts=fresh).returncode == 0

    with phase('zero-downtime deploy v2 during a replay'):
        v2 = make_dist(dist, 'v2')
        actions = generate_actions(seed=11, users=30, actions=20000)
        stop, sent = threading.Event(), []
        load = threading.Thread(target=replay_until, args=(droplet.api, actions, stop, sent))
        load.start()
        try:
            wait_until(lambda: len(sent) >= 20, 'the replay to start', 60)
            result = droplet.deploy(droplet.spec, tarball=v2)
            after = len(sent)
            wait_until(lambda: len(sent) >= after + 20, 'requests after the deploy', 60)
        finally:
            stop.set()
            load.join(60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [(a, s) for a, s, _ in sent if s != EXPECTED[a[1]]] == []
        second_release = release_of(droplet.api)
        assert second_release.startswith('v2-')
        answered = [server.removeprefix('minitwit/') for _, _, server in sent]
        assert set(answered) == {first_release, second_release}
        assert set(answered[after:]) == {second_release}
        assert verify(Client(droplet.api, timeout=30), [a for a, _, _ in sent]) == []
        assert droplet.live_slot() == 'green'
        assert droplet.ssh('systemctl is-active minitwit-web@blue minitwit-api@blue',
                           check=False).split() == ['inactive', 'inactive']
        state = (get(droplet.api + '/msgs?no=100000'), get(droplet.api + '/latest'))

    with phase('a broken release is rolled back'):
        v3 = broken_release(v1, 'v3')
        result = droplet.deploy(droplet.spec, tarball=v3)
        assert result.returncode != 0
        assert 'failed: its health check failed (web blue: stopped)' in result.stderr
        assert 'Rolled back: still serving %s' % second_release in result.stderr
        assert 'this release is broken' in result.stderr  # from the journal
        assert release_of(droplet.api) == second_release
        assert release_of(droplet.web) == second_release
        assert get(droplet.web + '/healthz', cafile=droplet.certificate)[:2] == \
            (200, 'minitwit/' + second_release)
        assert droplet.ssh('systemctl is-enabled minitwit-web@blue minitwit-api@blue',
                           check=False).split() == ['disabled', 'disabled']
        assert (get(droplet.api + '/msgs?no=100000'), get(droplet.api + '/latest')) == state

    with phase('TLS at the edge'):
        cafile = ['--cacert', str(droplet.certificate)]
        code, out, err = droplet.curl('http://%s/public?x=1' % droplet.address)
        assert code == 0, err
        assert status_of(out) == 301
        assert headers(out)['location'] == 'https://%s/public?x=1' % droplet.address
        # ...but not certbot's challenges.
        droplet.ssh('echo token-content > /var/www/minitwit-acme/.well-known/acme-challenge/t1')
        code, out, err = droplet.curl('http://%s/.well-known/acme-challenge/t1'
                                      % droplet.address)
        assert (code, status_of(out), out.rstrip().rsplit('\n', 1)[-1]) == \
            (0, 200, 'token-content'), out + err
        for url in (droplet.web + '/public', droplet.api_https + '/latest'):
            code, out, err = droplet.curl(*cafile, url)
            assert code == 0 and status_of(out) == 200, err
            assert headers(out)['strict-transport-security'] == 'max-age=31536000'
            assert headers(out)['server'] == 'minitwit/' + second_release
            # The simulator's plain port has no HSTS and no redirect.
            for tls in ('1.2', '1.3'):
                code, out, err = droplet.curl(*cafile, '--tlsv' + tls, '--tls-max', tls, url)
                assert code == 0 and status_of(out) == 200, (tls, err)
            for tls in ('1.0', '1.1'):
                # The client allows them (OpenSSL 3 does not at its default
                # security level), and the server's alert says why it
                # refuses: the protocol. (With TLS 1.0 on in ssl_protocols
                # but OpenSSL's default level, nginx says "internal error".)
                code, out, err = droplet.curl(*cafile, '--tlsv' + tls, '--tls-max', tls,
                                              '--ciphers', 'DEFAULT@SECLEVEL=0', url)
                assert code == 35 and 'alert protocol version' in err, (tls, code, err)
        code, out, _ = droplet.curl(droplet.api + '/latest')
        assert status_of(out) == 200 and 'strict-transport-security' not in headers(out)
        # Session cookies are Secure behind HTTPS: sign up through the API,
        # sign in on the web UI with a plain form POST (no token, no Origin:
        # as the course's scripts and curl send it).
        code, out, err = droplet.curl(*cafile, '-X', 'POST', '-H', 'Content-Type: '
                                      'application/json', '-u', 'simulator:super_safe!',
                                      '--data', '{"username": "tls-user", "email": '
                                      '"tls@example.com", "pwd": "secret-1"}',
                                      droplet.api_https + '/register')
        assert code == 0 and status_of(out) == 204, out + err
        code, out, err = droplet.curl(*cafile, droplet.web + '/login')
        assert code == 0 and status_of(out) == 200, err
        assert 'set-cookie' not in headers(out), out  # no csrf cookie, nothing
        code, out, err = droplet.curl(*cafile, '--data-urlencode', 'username=tls-user',
                                      '--data-urlencode', 'password=secret-1',
                                      droplet.web + '/login')
        assert code == 0 and status_of(out) in (302, 303), out + err
        cookies = re.findall(r'(?im)^set-cookie:\s*(.*?)\r?$', out)
        assert not [c for c in cookies if c.startswith('csrf=')], out
        session = [c for c in cookies if c.startswith('session=')]
        assert session, out
        attributes = {a.strip().lower() for a in session[0].split(';')[1:]}
        assert {'secure', 'httponly', 'samesite=lax'} <= attributes, session
        # The app itself marks nothing Secure over plain HTTP: that came
        # from nginx's X-Forwarded-Proto.
        port = 8010 if droplet.live_slot() == 'green' else 8000
        plain = droplet.ssh('curl -sS -D - -o /dev/null --data-urlencode username=tls-user '
                            '--data-urlencode password=secret-1 http://127.0.0.1:%d/login'
                            % port)
        cookies = re.findall(r'(?im)^set-cookie:\s*(.*?)\r?$', plain)
        session = [c for c in cookies if c.startswith('session=')]
        assert session and 'httponly' in session[0].lower(), plain
        assert 'secure' not in plain.lower(), plain

    with phase('systemctl kill -s KILL during a replay'):
        slot = droplet.live_slot()
        unit = 'minitwit-api@%s' % slot
        _, pid_before = unit_user(droplet, unit)
        restarts = int(droplet.ssh('systemctl show -p NRestarts --value %s' % unit))
        actions = renamed(generate_actions(seed=12, users=30, actions=20000), 'k ')
        stop, sent = threading.Event(), []
        load = threading.Thread(target=replay_until, args=(droplet.api, actions, stop, sent))
        load.start()
        try:
            wait_until(lambda: len(sent) >= 50, 'the replay to start', 60)
            droplet.ssh('systemctl kill -s KILL %s' % unit)
            killed_at = len(sent)
            eventually(lambda: int(droplet.ssh('systemctl show -p NRestarts --value %s'
                                               % unit)) > restarts,
                       'systemd to restart %s' % unit, 30)
            eventually(lambda: sum(status == 204 for _, status, _ in sent[killed_at:]) >= 50
                       and sent[-1][1] == 204, 'answers after the restart', 60)
        finally:
            stop.set()
            load.join(60)
        user, pid_after = unit_user(droplet, unit)
        assert user == 'minitwit' and pid_after != pid_before
        assert droplet.ssh('systemctl is-active %s' % unit) == 'active\n'
        failed = Counter(status for _, status, _ in sent if status != 204)
        assert failed[502] > 0, 'the replay never saw the API down: %s' % failed
        assert lost(Client(droplet.api, timeout=30), sent) == []
        assert json.loads(get(droplet.api + '/latest')[2])['latest'] == sent[-1][0][0]

    with phase('the journal has the JSON access lines'):
        slot = droplet.live_slot()
        # nginx gives every request an id; the app logs it and answers it.
        ids = {'api': request_id(droplet.api + '/latest'),
               'web': request_id(droplet.web + '/public', droplet.certificate)}
        for app, request_id_ in ids.items():
            def logged(app=app, wanted=request_id_):
                lines = droplet.ssh('journalctl -u minitwit-%s@%s -o cat --no-pager'
                                    % (app, slot)).splitlines()
                records = [json.loads(line) for line in lines if line.startswith('{')]
                return [r for r in records if r.get('request_id') == wanted]
            eventually(logged, 'the %s request in the journal' % app, 20)
            record, = logged()
            assert record['app'] == app and record['status'] == 200, record

    with phase('reboot'):
        slot = droplet.live_slot()
        data = (get(droplet.api + '/msgs?no=100000'), get(droplet.api + '/latest'))
        host.reboot(timeout=120)
        assert host.state == 'running', host.failed_units
        units = ['mariadb', 'nginx', 'ufw', 'minitwit-web@' + slot, 'minitwit-api@' + slot]
        assert droplet.ssh('systemctl is-active %s' % ' '.join(units)).split() == \
            ['active'] * 5
        assert droplet.ssh('systemctl is-active minitwit-web@%s' % (
            'blue' if slot == 'green' else 'green'), check=False) == 'inactive\n'
        eventually(lambda: get(droplet.api + '/healthz')[0] == 200, 'the API after the reboot',
                   60)
        assert (get(droplet.api + '/msgs?no=100000'), get(droplet.api + '/latest')) == data
        assert get(droplet.web + '/public', cafile=droplet.certificate)[0] == 200
        assert ufw_status(droplet) == UFW_STATUS
        code, out, err = droplet.curl('http://%s/' % droplet.address)
        assert code == 0 and status_of(out) == 301, err
