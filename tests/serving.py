"""Start MiniTwit apps under waitress in child processes, for benchmarks,
load tests and the test suite: 127.0.0.1 only, a free port (never 2024),
up when /healthz answers 200, stopped with SIGTERM (then SIGKILL). And give
benchmarks a fresh MariaDB database to run them on, or a throwaway
MariaDB server of their own."""
import contextlib
import getpass
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from urllib.parse import parse_qsl, unquote, urlparse

import pymysql

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARIADB_WAIT = 30  # seconds a throwaway mariadbd has to start or stop


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


def in_threads(work, count, timeout=60):
    """Run work(n), n from 0 to count - 1, each in a thread of its own, all at
    once; return when every one has, or after `timeout` seconds each."""
    threads = [threading.Thread(target=work, args=(n,), daemon=True)
               for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)


def wait_until(condition, what, timeout=30, interval=0.02):
    """Call condition() until it is true, for at most `timeout` seconds;
    an AssertionError naming `what` if it never is."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError('gave up after %g s waiting for %s'
                                 % (timeout, what))
        time.sleep(interval)


def serve_command(root=ROOT):
    """How the checkout `root` serves an app: with serve.py (waitress and a
    graceful SIGTERM), or, an older checkout without it, waitress-serve."""
    if os.path.exists(os.path.join(root, 'serve.py')):
        return [sys.executable, '-m', 'serve']
    return [os.path.join(os.path.dirname(sys.executable), 'waitress-serve')]


class Server:
    """`python -m serve APP` on 127.0.0.1 and a free port, in its own
    process, from the checkout `root` (this one, or another to compare with).

    Its output goes to a temporary file: `output()` reads it.
    """

    def __init__(self, app, database_url=None, env=None, args=(),
                 port=None, wait=True, root=ROOT):
        self.app, self.root = app, root
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
            [*serve_command(self.root), '--listen=127.0.0.1:%d' % self.port,
             *WAITRESS_FLAGS, *self.args, self.app],
            cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
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
    parts = urlparse(server_url)
    socket_file = dict(parse_qsl(parts.query)).get('unix_socket')
    conn = pymysql.connect(host=parts.hostname or '127.0.0.1',
                           port=parts.port or 3306, unix_socket=socket_file,
                           user=unquote(parts.username or 'root'),
                           password=unquote(parts.password or ''),
                           autocommit=True, connect_timeout=5)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def with_option(url, name, value):
    """`url` with one more query parameter."""
    return '%s%s%s=%s' % (url, '&' if '?' in url else '?', name, value)


@contextlib.contextmanager
def fresh_mariadb(server_url, name):
    """The URL of database `name` on the MariaDB at `server_url`, created
    empty (dropped first if a run before left it), and dropped again when
    the with-block ends."""
    _mariadb_admin(server_url, 'DROP DATABASE IF EXISTS `%s`' % name,
                   'CREATE DATABASE `%s` CHARACTER SET utf8mb4' % name)
    server, _, options = server_url.partition('?')
    try:
        yield '%s/%s%s' % (server.rstrip('/'), name,
                           '?' + options if options else '')
    finally:
        _mariadb_admin(server_url, 'DROP DATABASE IF EXISTS `%s`' % name)


class ThrowawayMariaDB:
    """A throwaway mariadbd under the folder `root` (a Path): its own
    datadir, tmpdir, socket and port on 127.0.0.1, for tests that stop or
    crash it and benchmarks that need its settings. `options` are more
    mariadbd options."""

    def __init__(self, root, options=()):
        self.datadir = root / 'data'
        self.socket = root / 'mariadb.sock'
        self.log = root / 'mariadb.err'
        self.port = free_port()
        self.process = None
        self.databases = 0
        # Its own tmpdir: a starting server deletes every #sql* file in its
        # tmpdir, the temporary tables of other servers sharing /tmp too.
        (root / 'tmp').mkdir()
        # A small redo log and buffer pool: bootstrapping takes ~3 s, not ~7.
        self.options = ['--no-defaults', '--datadir=%s' % self.datadir,
                        '--tmpdir=%s' % (root / 'tmp'),
                        '--user=%s' % getpass.getuser(),
                        '--innodb-log-file-size=4M',
                        '--innodb-buffer-pool-size=32M', *options]
        subprocess.run(['mariadb-install-db', *self.options,
                        '--auth-root-authentication-method=normal',
                        '--skip-test-db'], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.start()

    def running(self):
        return self.process is not None and self.process.poll() is None

    def start(self):
        self.process = subprocess.Popen(
            ['mariadbd', *self.options, '--port=%d' % self.port,
             '--bind-address=127.0.0.1', '--socket=%s' % self.socket,
             '--skip-name-resolve', '--log-error=%s' % self.log])
        deadline = time.monotonic() + MARIADB_WAIT
        while True:
            try:
                self.connect().close()
                return
            except pymysql.err.OperationalError:
                if not self.running() or time.monotonic() > deadline:
                    raise RuntimeError('mariadbd did not start:\n' +
                                       self.log.read_text()) from None
                time.sleep(0.05)

    def stop(self, sig=signal.SIGTERM):
        """SIGTERM: a clean shutdown; SIGKILL: a crash."""
        self.process.send_signal(sig)
        self.process.wait(MARIADB_WAIT)

    def connect(self, database=None):
        return pymysql.connect(host='127.0.0.1', port=self.port, user='root',
                               database=database, autocommit=True,
                               connect_timeout=2, charset='utf8mb4')

    def create_database(self):
        """The DATABASE_URL of a new, empty database."""
        self.databases += 1
        name = 'throwaway_%d' % self.databases
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
        return 'mysql://root@127.0.0.1:%d/%s' % (self.port, name)
