"""Start MiniTwit apps under waitress in child processes, for benchmarks,
load tests and the test suite: 127.0.0.1 only, a free port (never 2024),
up when /healthz answers 200, stopped with SIGTERM (then SIGKILL). And give
benchmarks a fresh MariaDB database to run them on."""
import contextlib
import os
import random
import shlex
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import unquote, urlparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _waitress_flags():
    """The flags deploy/defaults.env gives every MiniTwit process (servers,
    `make serve`, and these helpers alike)."""
    with open(os.path.join(ROOT, 'deploy', 'defaults.env'),
              encoding='utf-8') as f:
        for line in f:
            if line.startswith('WAITRESS_FLAGS='):
                # A shell word (quoted) holding the flags.
                return shlex.split(line.split('=', 1)[1])[0].split()
    raise RuntimeError('deploy/defaults.env sets no WAITRESS_FLAGS')


WAITRESS_FLAGS = _waitress_flags()


def ephemeral_ports():
    """The range the kernel takes outgoing connections' ports from."""
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            low, high = map(int, f.read().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return low, high


def free_port():
    """A free TCP port on 127.0.0.1, never 2024, and below the ephemeral
    range: a port picked now may be bound much later (a deploy's next slot),
    and meanwhile any outgoing connection could take one from that range."""
    low = ephemeral_ports()[0]
    start = 10000 if low > 20000 else 1024
    while True:
        port = random.randrange(start, max(low, start + 1000))
        if port == 2024:
            continue
        with socket.socket() as s:
            try:
                s.bind(('127.0.0.1', port))
            except OSError:
                continue
        return port


def wait_until(condition, what, timeout=30, interval=0.02):
    """Call condition() until it is true, for at most `timeout` seconds;
    an AssertionError naming `what` if it never is."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError('gave up after %g s waiting for %s'
                                 % (timeout, what))
        time.sleep(interval)


def waitress_serve():
    """The waitress-serve beside this Python (the virtualenv's)."""
    return os.path.join(os.path.dirname(sys.executable), 'waitress-serve')


class Server:
    """`waitress-serve APP` on 127.0.0.1 and a free port, in its own process.

    Its output goes to a temporary file: `output()` reads it.
    """

    def __init__(self, app, database_url=None, env=None, args=(),
                 port=None, wait=True):
        self.app = app
        self.port = port or free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
        if database_url:
            self.env['DATABASE_URL'] = database_url
        self.args = list(args)
        self.log = tempfile.TemporaryFile()
        self.process = None
        self.start(wait)

    def start(self, wait=True):
        """(Re)start the process on the same port."""
        self.process = subprocess.Popen(
            [waitress_serve(), '--listen=127.0.0.1:%d' % self.port,
             *WAITRESS_FLAGS, *self.args, self.app],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_until_up()

    def wait_until_up(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError('%s exited with %s:\n%s' % (
                    self.app, self.process.returncode, self.output()))
            try:
                with urllib.request.urlopen(self.url + '/healthz',
                                            timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError('%s not up after %ss:\n%s' % (
            self.app, timeout, self.output()))

    def output(self):
        self.log.seek(0)
        return self.log.read().decode('utf-8', 'replace')

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)

    def close(self):
        self.stop()
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _mariadb_admin(server_url, *statements):
    """Run `statements` on the MariaDB at `server_url`."""
    import pymysql  # only benchmarks on MariaDB need it
    parts = urlparse(server_url)
    conn = pymysql.connect(host=parts.hostname or '127.0.0.1',
                           port=parts.port or 3306,
                           user=unquote(parts.username or 'root'),
                           password=unquote(parts.password or ''),
                           autocommit=True, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


@contextlib.contextmanager
def fresh_mariadb(server_url, name):
    """The URL of database `name` on the MariaDB at `server_url`, created
    empty (dropped first if a run before left it), and dropped again when
    the with-block ends."""
    _mariadb_admin(server_url, 'DROP DATABASE IF EXISTS `%s`' % name,
                   'CREATE DATABASE `%s` CHARACTER SET utf8mb4' % name)
    try:
        yield '%s/%s' % (server_url.rstrip('/'), name)
    finally:
        _mariadb_admin(server_url, 'DROP DATABASE IF EXISTS `%s`' % name)
