"""Throwaway servers for the delivery tests, on 127.0.0.1 by default.

A `Host` is what a droplet is to deploy.sh: deploy/provision.sh lays it out
in a scratch root (--root), an OpenSSH server lets the test's key in, and
nginx serves the provisioned site on free ports. There is no systemd
here: the host's PATH starts with a stand-in for systemctl and journalctl
(tests/fake_systemd.py) that runs the units deploy/slot installs as plain
processes. `close()` stops everything it and its deploys started.

A Host may also live at another address, in a network namespace of its own
(tests/netns.py): `address` is where its sshd and nginx listen, `prefix`
the command that runs a program in there (`ip netns exec NAME`); what its
deploys start, they start over SSH, so in there too.
"""
import getpass
import http.client
import io
import json
import os
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from serving import ROOT, free_port

from scripts.simulator.simulate import Client, to_request

SSHD = '/usr/sbin/sshd'
USER = getpass.getuser()


def run(args, env=None, timeout=300, **kwargs):
    """Run a command from the repository; return the CompletedProcess."""
    return subprocess.run(args, cwd=ROOT, env=dict(os.environ, **(env or {})),
                          capture_output=True, text=True, timeout=timeout,
                          **kwargs)


def make_dist(dist_dir, version):
    """`make dist` with this version: the path of the tarball."""
    result = run(['make', '--no-print-directory', 'dist',
                  'DIST_DIR=%s' % dist_dir, 'DIST_VERSION=%s' % version])
    assert result.returncode == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def broken_release(tarball, version):
    """A copy of `tarball` as `version`, beside it, whose web app fails as
    it starts (its API would come up fine)."""
    broken = tarball.with_name('minitwit-%s.tar.gz' % version)
    with tarfile.open(tarball) as source, \
            tarfile.open(broken, 'w:gz') as copy:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() \
                else None
            path = member.name.partition('/')[2]
            member.name = 'minitwit-%s/%s' % (version, path) if path else \
                'minitwit-%s' % version
            if path == 'minitwit.py':
                data += b"\nraise RuntimeError('this release is broken')\n"
            elif path == 'VERSION':
                data = version.encode() + b'\n'
            if data is not None:
                member.size = len(data)
            copy.addfile(member, io.BytesIO(data) if data is not None
                         else None)
    return broken


def wait_for_port(port, process, what, timeout=20, address='127.0.0.1'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError('%s exited with %s' % (what, process.returncode))
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('%s is not listening on %s:%d' % (what, address, port))


def kill_pids(pids, sig=signal.SIGTERM, timeout=15):
    """Signal processes (ours) and wait for them to be gone: SIGKILL for
    any still there after `timeout`."""
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, sig)
            alive.add(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while alive and time.monotonic() < deadline:
        for pid in list(alive):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                alive.discard(pid)
        time.sleep(0.05)
    for pid in alive:
        os.kill(pid, signal.SIGKILL)


class Keys:
    """The deployer's SSH key and known_hosts, as CI would have them."""

    def __init__(self, directory):
        directory.mkdir(parents=True, exist_ok=True)
        self.key = directory / 'id_ed25519'
        self.known_hosts = directory / 'known_hosts'
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C',
                        'deploy-test', '-f', str(self.key)], check=True)
        self.known_hosts.touch()

    def env(self):
        return {'SSH_KEY': str(self.key),
                'SSH_KNOWN_HOSTS': str(self.known_hosts)}


class Sshd:
    """Debian's sshd on 127.0.0.1 (or `address`, run with `prefix`), a
    throwaway host key, our key let in."""

    def __init__(self, directory, keys, address='127.0.0.1', prefix=()):
        directory.mkdir(parents=True)
        host_key = directory / 'host_key'
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f',
                        str(host_key)], check=True)
        authorized = directory / 'authorized_keys'
        authorized.write_text(keys.key.with_suffix('.pub').read_text())
        self.port = free_port()
        config = directory / 'sshd_config'
        config.write_text('\n'.join([
            'Port %d' % self.port, 'ListenAddress %s' % address,
            'HostKey %s' % host_key, 'AuthorizedKeysFile %s' % authorized,
            'PidFile %s' % (directory / 'sshd.pid'),
            'PasswordAuthentication no', 'KbdInteractiveAuthentication no',
            'PermitRootLogin prohibit-password', 'UsePAM no',
            # The temporary folders are not laid out as sshd wants ~/.ssh.
            'StrictModes no', 'AllowUsers %s' % USER,
            'Subsystem sftp internal-sftp', 'LogLevel ERROR', '']))
        # sshd's privilege separation folder; the packaged service makes it.
        if not os.path.isdir('/run/sshd') and os.geteuid() == 0:
            os.makedirs('/run/sshd', mode=0o755)
        with keys.known_hosts.open('a') as known:
            known.write('[%s]:%d %s\n' % (address, self.port, ' '.join(
                host_key.with_suffix('.pub').read_text().split()[:2])))
        self.log = directory / 'sshd.log'
        self.process = subprocess.Popen(
            [*prefix, SSHD, '-D', '-f', str(config), '-E', str(self.log)])
        wait_for_port(self.port, self.process, 'sshd', address=address)

    def close(self):
        self.process.terminate()
        self.process.wait(15)


class Nginx:
    """nginx with a prefix of its own, serving what `include` names;
    started with the command `prefix` (`command` is nginx's own, without
    it: what runs where nginx runs)."""

    def __init__(self, directory, include, prefix=()):
        self.prefix = list(prefix)
        directory.mkdir(parents=True)
        self.pid_file = directory / 'nginx.pid'
        conf = directory / 'nginx.conf'
        temp = ''.join('  %s_temp_path %s;\n' % (kind, directory / kind)
                       for kind in ('client_body', 'proxy', 'fastcgi',
                                    'uwsgi', 'scgi'))
        conf.write_text(
            # Workers as this user: they must reach the temporary folders.
            ('user %s;\n' % USER if os.geteuid() == 0 else '') +
            'pid %s;\nerror_log %s;\nevents { worker_connections 512; }\n'
            'http {\n%s  include %s;\n}\n' % (
                self.pid_file, directory / 'error.log', temp, include))
        self.command = ['nginx', '-p', str(directory), '-c', str(conf),
                        '-e', str(directory / 'error.log')]

    def start(self):
        result = subprocess.run(self.prefix + self.command,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr

    def close(self):
        if self.pid_file.exists():
            kill_pids([int(self.pid_file.read_text())])


class Host:
    """A provisioned server that deploy.sh reaches over SSH."""

    def __init__(self, directory, keys, database_url, wheels=None,
                 address='127.0.0.1', prefix=(), **settings):
        self.scratch = directory
        self.address = address
        self.root = directory / 'opt' / 'minitwit'
        self.closers = []
        self.web_port, self.api_port = free_port(), free_port()
        self.http_port, self.api_https_port = free_port(), free_port()
        nginx = Nginx(directory / 'nginx',
                      directory / 'etc' / 'nginx' / 'sites-enabled' / '*',
                      prefix)
        # The stand-in for systemd (tests/fake_systemd.py): the units go
        # where provisioning put them, the apps' pids and output under run/.
        units = directory / 'etc' / 'systemd' / 'system'
        tools = directory / 'bin'
        tools.mkdir(parents=True)
        for program in ('systemctl', 'journalctl'):
            (tools / program).write_text(
                '#!/bin/sh\nexec %s %s %s %s %s "$@"\n' % tuple(map(shlex.quote, (
                    sys.executable, str(Path(__file__).with_name('fake_systemd.py')),
                    str(units), str(self.root / 'run'), program))))
            (tools / program).chmod(0o755)
        # This server's settings, before provisioning (which keeps them):
        # the stand-in first on PATH for deploy/slot and deploy/server.sh.
        settings = dict({
            'PATH': '"%s:$PATH"' % tools,
            'SYSTEMD_UNIT_DIR': units,
            'BLUE_WEB_PORT': free_port(), 'BLUE_API_PORT': free_port(),
            'GREEN_WEB_PORT': free_port(), 'GREEN_API_PORT': free_port(),
            'NGINX_COMMAND': '"%s"' % ' '.join(nginx.command),
            'NGINX_PID': nginx.pid_file,
            'PUBLIC_API_URL': 'http://%s:%d' % (address, self.api_port),
            'HEALTH_TIMEOUT': 60}, **settings)
        (self.root / 'shared').mkdir(parents=True)
        (self.root / 'shared' / 'host.env').write_text(''.join(
            '%s=%s\n' % item for item in settings.items()))
        result = run([str(Path(ROOT) / 'deploy' / 'provision.sh'), '--root',
                      str(directory)],
                     env={'HTTP_LISTEN': '%s:%d' % (address, self.http_port),
                          'HTTPS_LISTEN': '%s:%d' % (address, self.web_port),
                          'API_LISTEN': '%s:%d' % (address, self.api_port),
                          'API_HTTPS_LISTEN': '%s:%d'
                          % (address, self.api_https_port)})
        assert result.returncode == 0, result.stdout + result.stderr
        if wheels is not None:
            # A wheelhouse filled by an earlier deploy, as on a server that
            # has had one: only the first deploy of a session downloads.
            (self.root / 'shared' / 'wheels').rmdir()
            (self.root / 'shared' / 'wheels').symlink_to(wheels)
        self.env_file = self.root / 'shared' / 'minitwit.env'
        self.env_file.write_text(''.join(
            'DATABASE_URL=%s\n' % database_url
            if line.startswith('DATABASE_URL=') else line
            for line in self.env_file.read_text().splitlines(True)))
        try:
            nginx.start()
            self.closers.append(nginx.close)
            self.sshd = Sshd(directory / 'sshd', keys, address, prefix)
            self.closers.append(self.sshd.close)
        except BaseException:
            self.close()
            raise
        self.spec = 'ssh://%s@%s:%d%s' % (USER, address, self.sshd.port,
                                          self.root)
        # The web UI over HTTPS (its port 80 only redirects there), the
        # simulator API over plain HTTP (as the simulator calls it) and
        # HTTPS; the self-signed certificate provisioning made.
        self.api = 'http://%s:%d' % (address, self.api_port)
        self.api_https = 'https://%s:%d' % (address, self.api_https_port)
        self.web = 'https://%s:%d' % (address, self.web_port)
        self.web_http = 'http://%s:%d' % (address, self.http_port)
        self.certificate = directory / 'etc' / 'minitwit' / 'tls' / \
            'selfsigned-cert.pem'

    def releases(self):
        return sorted(p.name for p in (self.root / 'releases').iterdir())

    def revisions(self):
        """revisions.log as (event, release) pairs."""
        log = self.root / 'revisions.log'
        return [tuple(line.split()[1:3]) for line in
                log.read_text().splitlines()] if log.exists() else []

    def app_pid(self, app, slot):
        return int((self.root / 'run' / ('minitwit-%s@%s.service.pid'
                                         % (app, slot))).read_text())

    def close(self):
        """Stop the apps deploys started here, nginx and sshd."""
        kill_pids([int(pid_file.read_text())
                   for pid_file in (self.root / 'run').glob('*.pid')])
        for close in reversed(self.closers):
            close()


def deploy(*args, tarball=None, keys=None, **env):
    """./deploy.sh ARGS with the test's key; the CompletedProcess."""
    env = dict(keys.env(), **{k: str(v) for k, v in env.items()})
    if tarball is not None:
        env['TARBALL'] = str(tarball)
    return run(['./deploy.sh', *args], env=env)


def connection(url, source=None, timeout=10, cafile=None):
    """An HTTP or HTTPS connection to url's host, from address `source`;
    HTTPS trusts `cafile` (a self-signed certificate) or, without one,
    any certificate."""
    parts = urlsplit(url)
    source_address = (source, 0) if source else None
    if parts.scheme == 'https':
        context = ssl.create_default_context(cafile=cafile)
        if cafile is None:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=timeout, context=context,
            source_address=source_address)
    return http.client.HTTPConnection(parts.hostname, parts.port,
                                      timeout=timeout,
                                      source_address=source_address)


def get(url, source=None, timeout=10, cafile=None):
    """(status, Server header, body) of GET url, from address `source`."""
    parts = urlsplit(url)
    conn = connection(url, source, timeout, cafile)
    try:
        conn.request('GET', (parts.path or '/') +
                     ('?' + parts.query if parts.query else ''))
        answer = conn.getresponse()
        return answer.status, answer.getheader('Server'), answer.read()
    finally:
        conn.close()


def release_of(url):
    """The release that answers url/healthz (its Server header)."""
    status, server, body = get(url + '/healthz')
    assert status == 200, (status, server, body)
    return server.removeprefix('minitwit/')


def replay_until(url, actions, stop, sent):
    """Send simulator actions to url one by one, as the simulator does,
    until `stop` is set; append (action, status or error, Server) to sent."""
    client = Client(url, timeout=30)
    for action in actions:
        if stop.is_set():
            return
        action_id, command, fields = action
        method, path, body = to_request(command, fields)
        conn = http.client.HTTPConnection(client.host, client.port,
                                          timeout=30)
        try:
            conn.request(method, '%s?latest=%d' % (path, action_id),
                         json.dumps(body), client.headers)
            answer = conn.getresponse()
            answer.read()
            sent.append((action, answer.status, answer.getheader('Server')))
        except (OSError, http.client.HTTPException) as error:
            sent.append((action, repr(error), None))
        finally:
            conn.close()
