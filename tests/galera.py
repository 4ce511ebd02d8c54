"""A real MariaDB Galera cluster on loopback, for tests that need one.

Each node is a `mariadbd` of its own (a throwaway datadir, socket and four
ports from free_port(), 127.0.0.1 only) with wsrep on, so that tests can
kill, stop and restart nodes and see what a client sees. Every wait is
bounded and fails with the tail of the node's error log; close() leaves
no process behind, not even when the test process is killed.

    with GaleraCluster() as cluster:      # start(): ~9 s for three nodes
        conn = cluster.connect(0, 'db')
        cluster.kill(1)
        cluster.restart(1)                # rejoins by IST, ~3 s
        assert cluster.rejoined_by(1) == 'IST'

Nodes are numbered from 0; node 0 bootstraps the cluster.
"""
import ctypes
import getpass
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql

from tests.serving import free_port

PROVIDER = '/usr/lib/galera/libgalera_smm.so'
WAIT = 60  # seconds: the most a start, a join or a stop may take
SYNCED = 4  # wsrep_local_state of a node that is in sync with the group

# Group communication timeouts. A killed node's sockets are closed by the
# kernel, but Galera still waits evs.suspect_timeout before it declares the
# node gone, and until then every commit on the others waits too: with the
# defaults (5 s suspect, 15 s inactive) each kill stalls writes for 5 s or
# more. With these the survivors carry on after ~1.3 s; keepalives every
# 200 ms keep a node that is merely slow (three busy loops on two cores)
# from being suspected.
EVS = {'evs.keepalive_period': 'PT0.2S',
       'evs.inactive_check_period': 'PT0.2S',
       'evs.suspect_timeout': 'PT1S',
       'evs.inactive_timeout': 'PT2S',
       'evs.install_timeout': 'PT2S',
       'evs.join_retrans_period': 'PT0.2S'}


def _die_with_parent():
    """In the child before exec, after Popen has switched its user: SIGKILL
    it if the test process dies, so that not even a hard-killed pytest
    leaves a mariadbd behind. (Linux only. It is the *thread* that started
    the child whose death counts: start nodes from the main thread.)"""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def available():
    """None if a cluster can run here, else why not."""
    if not shutil.which('mariadbd') and not os.path.exists('/usr/sbin/mariadbd'):
        return 'mariadbd is not installed'
    if not os.path.exists(PROVIDER):
        return 'the Galera provider %s is not installed (apt install galera-4)' % PROVIDER
    if not shutil.which('rsync'):
        return 'rsync, the state transfer method, is not installed'
    return None


def mariadbd():
    return shutil.which('mariadbd') or '/usr/sbin/mariadbd'


def node_user():
    """The user the nodes run as. Not root: wsrep_sst_rsync receives a full
    copy (SST) with an rsync daemon, and an rsync daemon started by root
    drops to 'nobody' (rsyncd.conf's default uid), which cannot write the
    datadir ("mkdir mysql (in rsync_sst) failed: Permission denied"). So
    root runs them as 'mysql', as Debian's service does; anyone else as
    themselves."""
    if os.geteuid() != 0:
        return getpass.getuser()
    try:
        pwd.getpwnam('mysql')
    except KeyError:
        raise NodeError('running as root, the nodes need a user "mysql" '
                        'to run as (the rsync SST fails as root)') from None
    return 'mysql'


class NodeError(RuntimeError):
    """A node did not do what it was asked in time; says why, with its log."""


class Node:
    """One mariadbd of the cluster: its files, ports and process."""

    def __init__(self, index, root, port):
        """`port()` gives a free port no other node of the cluster has."""
        self.index = index
        self.root = Path(root)
        self.datadir = self.root / 'data'
        self.tmpdir = self.root / 'tmp'
        self.socket = self.root / 'mariadb.sock'
        self.log = self.root / 'mariadb.err'
        self.port = port()        # clients
        self.group_port = port()  # Galera group communication
        self.ist_port = port()    # incremental state transfer, receiving
        self.sst_port = port()    # full state transfer (rsync), receiving
        self.process = None
        self.reaped = True  # nothing of the last run is left
        self.log_offset = 0  # where the log of the current run begins

    def __repr__(self):
        return 'node %d (port %d)' % (self.index, self.port)

    def running(self):
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines=40):
        try:
            text = self.log.read_text(errors='replace')
        except FileNotFoundError:
            return '(no error log at %s)' % self.log
        return '\n'.join(text.splitlines()[-lines:])

    def log_since_start(self):
        """The error log of the current (or last) run only."""
        with open(self.log, 'rb') as f:
            f.seek(self.log_offset)
            return f.read().decode('utf-8', 'replace')

    def fail(self, what):
        raise NodeError('%r %s; its error log ends:\n%s'
                        % (self, what, self.log_tail()))


def distinct_ports():
    """A free_port() that never gives the same port twice: a cluster picks
    all its ports before any node binds one."""
    given = set()

    def port():
        while True:
            candidate = free_port()
            if candidate not in given:
                given.add(candidate)
                return candidate
    return port


class GaleraCluster:
    """N mariadbd nodes with wsrep on, replicating to each other over
    127.0.0.1. Node numbers are 0 .. N-1; node 0 bootstraps the cluster."""

    def __init__(self, root=None, nodes=3, gcache='32M', wait=WAIT):
        """`root`: the directory the nodes' files go in; by default a new one
        in the system's temporary directory, removed by close(). (pytest's
        tmp_path will not do as root: it is private to root, and the nodes
        then run as 'mysql'.)"""
        self.user = node_user()
        self.own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix='galera-')) if root is None \
            else Path(root)
        self.wait = wait
        # The gcache keeps the recent write sets that a restarted node
        # catches up with (IST); a node that missed more gets a full copy
        # (SST) instead. It is a file of this size in each datadir, written
        # out at start: 32M holds tens of thousands of small write sets.
        self.gcache = gcache
        port = distinct_ports()
        self.nodes = [Node(i, self.root / ('node%d' % i), port)
                      for i in range(nodes)]
        self.closed = False

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # --- configuration ----------------------------------------------------

    def provider_options(self, node):
        options = {'base_host': '127.0.0.1',
                   'base_port': node.group_port,
                   'gmcast.listen_addr': 'tcp://127.0.0.1:%d' % node.group_port,
                   'ist.recv_addr': '127.0.0.1:%d' % node.ist_port,
                   'gcache.size': self.gcache,
                   **EVS}
        return ';'.join('%s=%s' % item for item in options.items())

    def options(self, node):
        """mariadbd's whole command line for `node`, configuration files
        ignored (--no-defaults): nothing of this machine's own MariaDB.
        (The SST script still reads /etc/mysql/my.cnf for options the
        server does not pass it, such as log-bin or innodb-data-home-dir;
        Debian's sets none of them.)"""
        peers = ','.join('127.0.0.1:%d' % n.group_port for n in self.nodes)
        return [
            '--no-defaults',
            '--datadir=%s' % node.datadir,
            # A tmpdir of its own: a starting mariadbd deletes every #sql*
            # file in its tmpdir, and in /tmp those are other servers' temp
            # tables (mariadb-install-db fails "Unknown table
            # 'mysql.tmp_user_sys'", or crashes, when two start at once).
            '--tmpdir=%s' % node.tmpdir,
            # Small and fast: a test's data is tiny.
            '--innodb-buffer-pool-size=32M',
            '--innodb-log-file-size=8M',
            '--key-buffer-size=1M',
            '--aria-pagecache-buffer-size=1M',
            '--max-connections=100',
            '--performance-schema=OFF',
            '--port=%d' % node.port,
            '--bind-address=127.0.0.1',
            '--socket=%s' % node.socket,
            '--pid-file=%s' % (node.root / 'mariadb.pid'),
            '--log-error=%s' % node.log,
            '--skip-name-resolve',
            '--character-set-server=utf8mb4',
            # What Galera requires of every node.
            '--binlog-format=ROW',
            '--innodb-autoinc-lock-mode=2',
            '--default-storage-engine=InnoDB',
            '--wsrep-on=ON',
            '--wsrep-provider=%s' % PROVIDER,
            '--wsrep-cluster-name=minitwit-test',
            '--wsrep-cluster-address=gcomm://%s' % peers,
            '--wsrep-node-name=node%d' % node.index,
            '--wsrep-node-address=127.0.0.1:%d' % node.group_port,
            '--wsrep-node-incoming-address=127.0.0.1:%d' % node.port,
            '--wsrep-sst-receive-address=127.0.0.1:%d' % node.sst_port,
            '--wsrep-sst-method=rsync',
            '--wsrep-provider-options=%s' % self.provider_options(node),
        ]

    # --- life cycle -------------------------------------------------------

    def start(self):
        """Bootstrap node 0, then let the others join one at a time (each by
        SST from a node that is already synced). Returns self."""
        try:
            self._make_dirs()
            # Only the first node needs system tables: the others receive
            # everything from it by SST.
            first = self.nodes[0]
            installed = subprocess.run(
                ['mariadb-install-db', '--no-defaults',
                 '--datadir=%s' % first.datadir, '--tmpdir=%s' % first.tmpdir,
                 '--auth-root-authentication-method=normal', '--skip-test-db',
                 '--innodb-log-file-size=8M', '--innodb-buffer-pool-size=32M'],
                timeout=120, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, **self._as_user())
            if installed.returncode:
                raise NodeError('mariadb-install-db failed:\n%s' % installed.stdout
                                .decode('utf-8', 'replace')[-3000:])
            self._launch(first, '--wsrep-new-cluster')
            self.wait_synced(0)
            for node in self.nodes[1:]:
                self._launch(node)
                self.wait_synced(node.index)
        except BaseException:
            self.close()
            raise
        return self

    def _make_dirs(self):
        """Each node's directory, empty datadir and tmpdir, the nodes'
        user's."""
        for node in self.nodes:
            node.datadir.mkdir(parents=True, exist_ok=True)
            node.tmpdir.mkdir(exist_ok=True)
            for path in (node.root, node.datadir, node.tmpdir):
                shutil.chown(path, self.user, pwd.getpwnam(self.user).pw_gid)
        if self.own_root:
            shutil.chown(self.root, self.user)
        reachable = subprocess.run(['test', '-w', str(self.nodes[0].datadir)],
                                   timeout=10, **self._as_user())
        if reachable.returncode:
            raise NodeError('user %s cannot write %s: a directory above it is '
                            'private (give GaleraCluster no root to use a new '
                            'temporary directory)' % (self.user, self.nodes[0].datadir))

    def _as_user(self):
        """Popen's arguments that run a command as the nodes' user."""
        if self.user == getpass.getuser():
            return {}
        entry = pwd.getpwnam(self.user)
        return dict(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])

    def _launch(self, node, *extra):
        node.log_offset = node.log.stat().st_size if node.log.exists() else 0
        node.reaped = False
        node.process = subprocess.Popen(
            [mariadbd(), *self.options(node), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True,
            preexec_fn=_die_with_parent, **self._as_user())

    def kill(self, node, sig=signal.SIGKILL):
        """Send `sig` to the node, mariadbd and any SST helper it runs (a
        crash, by default), and wait until mariadbd has exited. For a
        signal that does not end it, see pause()."""
        node = self.nodes[node]
        if not node.running():
            node.fail('is not running')
        os.killpg(node.process.pid, sig)
        try:
            node.process.wait(self.wait)
        except subprocess.TimeoutExpired:
            node.fail('did not exit %d s after signal %s' % (self.wait, sig))
        self._reap_group(node)

    def stop(self, node):
        """A clean shutdown: the node leaves the group and saves its
        position, so that it can rejoin by IST."""
        node = self.nodes[node]
        if node.running():
            node.process.terminate()
            node.process.send_signal(signal.SIGCONT)  # if paused
            try:
                node.process.wait(self.wait)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
                node.fail('did not stop within %d s of SIGTERM; killed it' % self.wait)
        self._reap_group(node)

    def recover_position(self, node):
        """The last transaction a stopped or crashed node committed,
        'uuid:seqno', from InnoDB itself (`mariadbd --wsrep-recover`, as
        Debian's galera_recovery does). After a crash grastate.dat says
        seqno -1; without this the node would need a full SST."""
        node = self.nodes[node]
        out = node.root / 'recover.err'
        subprocess.run([mariadbd(), *self.options(node), '--wsrep-recover',
                        '--log-error=%s' % out],
                       timeout=self.wait, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                       start_new_session=True, **self._as_user())
        text = out.read_text(errors='replace')
        found = re.findall(r'WSREP: Recovered position: (\S+:-?\d+)', text)
        if not found:
            raise NodeError('%r: mariadbd --wsrep-recover found no position:\n%s'
                            % (node, text[-3000:]))
        return found[-1]

    def restart(self, node, fresh=False):
        """Start a killed or stopped node again from its recovered position,
        so that it asks for the write sets it missed (IST) rather than a
        whole copy (SST); returns once it is synced. fresh=True empties its
        datadir first: it joins as a new node would, by SST."""
        index = node
        node = self.nodes[index]
        if node.running():
            node.fail('is still running')
        if fresh:
            shutil.rmtree(node.datadir)
            self._make_dirs()
            self._launch(node)
        else:
            position = self.recover_position(index)
            self._launch(node, '--wsrep-start-position=%s' % position)
        self.wait_synced(index)

    def pause(self, node):
        """Freeze the node (SIGSTOP): to the others it falls silent, as one
        behind a cut cable would, yet it keeps its identity. resume() lets
        it carry on, and it merges back by itself."""
        self.nodes[node].process.send_signal(signal.SIGSTOP)

    def resume(self, node):
        self.nodes[node].process.send_signal(signal.SIGCONT)

    def bootstrap(self, node):
        """Make a non-Primary node the Primary component on its own (after
        the others were lost for good), as an operator would with
        pc.bootstrap."""
        with self.connect(node) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'")
        self.wait_synced(node)

    def memory(self, node):
        """The node's resident memory in bytes (its share of shared pages
        counted once: PSS)."""
        pid = self.nodes[node].process.pid
        with open('/proc/%d/smaps_rollup' % pid) as f:
            for line in f:
                if line.startswith('Pss:'):
                    return int(line.split()[1]) * 1024
        return None

    def close(self):
        """Stop every node: SIGTERM, then SIGKILL after a bound; remove the
        directory if it is the cluster's own. Safe to call twice, and after
        nodes have been killed."""
        for node in self.nodes:
            if node.running():
                node.process.terminate()
                node.process.send_signal(signal.SIGCONT)  # if paused
        deadline = time.monotonic() + self.wait
        for node in self.nodes:
            if node.reaped:  # never started, or stopped and reaped earlier
                continue
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
            self._reap_group(node)
        if self.own_root and not self.closed:
            shutil.rmtree(self.root, ignore_errors=True)
        self.closed = True

    @staticmethod
    def _reap_group(node):
        """Kill what the node's mariadbd left behind in its process group (an
        SST script, an rsync daemon) when it died mid-transfer. Called right
        after mariadbd has exited, as soon as we know, never later, when its
        process id could be another's."""
        if node.reaped:
            return
        try:
            os.killpg(node.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        node.reaped = True

    # --- clients ----------------------------------------------------------

    def url(self, node, database=''):
        """The DATABASE_URL of `database` on `node`."""
        return 'mysql://root@127.0.0.1:%d/%s' % (self.nodes[node].port, database)

    def urls(self, database=''):
        return [self.url(n.index, database) for n in self.nodes]

    def connect(self, node, database=None, **options):
        """A PyMySQL connection to `node`, autocommit on, short timeouts
        unless `options` say otherwise. Without TLS: PyMySQL 1.2 otherwise
        builds a TLS context with the system's CA certificates for every
        connection ("preferred" TLS), 25 ms of CPU, though these servers
        have no TLS to offer."""
        settings = dict(host='127.0.0.1', port=self.nodes[node].port,
                        user='root', database=database, autocommit=True,
                        charset='utf8mb4', connect_timeout=2,
                        read_timeout=30, write_timeout=30, ssl_disabled=True)
        settings.update(options)
        return pymysql.connect(**settings)

    def create_database(self, name):
        """Create `name` (on node 0; DDL replicates) and wait until every
        running node has it. Returns its URLs, one per node."""
        with self.connect(0) as conn, conn.cursor() as cur:
            cur.execute('CREATE DATABASE `%s` CHARACTER SET utf8mb4' % name)
        for node in self.nodes:
            if node.running():
                with self.connect(node.index) as conn, conn.cursor() as cur:
                    cur.execute('SET SESSION wsrep_sync_wait = 1')
                    cur.execute('SELECT 1 FROM information_schema.schemata '
                                'WHERE schema_name = %s', (name,))
                    if not cur.fetchone():
                        node.fail('has no database %s' % name)
        return self.urls(name)

    # --- state ------------------------------------------------------------

    def status(self, node):
        """The node's wsrep state, as SHOW STATUS says it: wsrep_ready
        ('ON'/'OFF'), wsrep_local_state (4 = Synced), its comment,
        wsrep_cluster_size and wsrep_cluster_status ('Primary' or
        'non-Primary')."""
        with self.connect(node, connect_timeout=1, read_timeout=5) as conn, \
                conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN "
                        "('wsrep_ready', 'wsrep_local_state', "
                        "'wsrep_local_state_comment', 'wsrep_cluster_size', "
                        "'wsrep_cluster_status')")
            found = dict(cur.fetchall())
        for name in ('wsrep_local_state', 'wsrep_cluster_size'):
            if name in found:  # absent when wsrep failed to load
                found[name] = int(found[name])
        return found

    def wait_synced(self, node, timeout=None):
        """Wait until the node is up, in the Primary component and Synced;
        NodeError with its log if it dies or takes longer than `timeout`."""
        n = self.nodes[node]
        deadline = time.monotonic() + (timeout or self.wait)
        last = 'no answer'
        while True:
            if not n.running():
                self._reap_group(n)
                n.fail('exited (status %s) before it was synced'
                       % (n.process.returncode if n.process else None))
            try:
                state = self.status(node)
                if state.get('wsrep_local_state') == SYNCED and \
                        state.get('wsrep_cluster_status') == 'Primary' and \
                        state.get('wsrep_ready') == 'ON':
                    return state
                last = state
            except pymysql.err.MySQLError as error:
                last = error
            if time.monotonic() > deadline:
                n.fail('was not synced within %g s (last: %s)'
                       % (timeout or self.wait, last))
            time.sleep(0.05)

    def rejoined_by(self, node):
        """'IST' or 'SST': how the node got its state the last time it
        joined, as its error log tells; None if it needed neither (the node
        that bootstrapped). The SST script runs either way: for an IST it
        only passes the position on ("rsync IST completed on joiner")."""
        log = self.nodes[node].log_since_start()
        found = re.findall(r'(SST|IST) completed on joiner', log)
        if found:
            return found[-1]
        if 'Receiving IST:' in log:
            return 'IST'
        return None

    def row_counts(self, database, tables):
        """{node: {table: rows}} on every running node, each read after the
        node has applied all the cluster committed (wsrep_sync_wait)."""
        counts = {}
        for node in self.nodes:
            if not node.running():
                continue
            with self.connect(node.index, database) as conn, conn.cursor() as cur:
                cur.execute('SET SESSION wsrep_sync_wait = 1')
                counts[node.index] = {}
                for table in tables:
                    cur.execute('SELECT COUNT(*) FROM `%s`' % table)  # noqa: S608 (our own names)
                    counts[node.index][table] = cur.fetchone()[0]
        return counts
