"""MySQL and MariaDB: the driver, a pool that hands out a connection without
a round trip, and a transaction sent in one round trip.

Where a simulator request's time went on MariaDB (docs/benchmarks.md has
the profile): a ping at every checkout, BEGIN, the write, the `latest`
update and COMMIT were five round trips, each costing more in the driver
than the statement cost in the server. Now:

- a pooled connection is checked locally when it is handed out: a socket
  with something to read while it sat in the pool was closed by the server
  (a restart, a KILL, wait_timeout) and is replaced. Only a connection idle
  for PING_AFTER seconds is pinged, for what gives no sign (a dropped NAT
  entry, a dead link);
- a transaction of several statements goes as one multi-statement packet,
  BEGIN and COMMIT included: one round trip (`run_transaction`);
- a statement that fails because the connection was dead before anything
  was sent (2006) is sent again on a new connection; a read is also sent
  again when the connection died while it waited (2013); a transaction the
  server rolled back whole (1213: an InnoDB deadlock, a Galera
  certification failure) is run again, a bounded number of times. Nothing
  else is repeated: what may have been committed is never sent twice.

Multi-statement packets take every value as a bound parameter, like every
other statement here: no text from a request is ever part of the SQL.
"""
import contextlib
import importlib
import random
import select
import threading
import time
from collections import namedtuple

from peewee import (
    DatabaseError,
    InterfaceError,
    MySQLDatabase,
    OperationalError,
    __exception_wrapper__,
)
from playhouse.pool import MaxConnectionsExceeded

from database import galera

# What a mysql:// URL may set in its query string.
OPTIONS = {'max_connections', 'stale_timeout', 'timeout', 'connect_timeout',
           'read_timeout', 'write_timeout', 'driver', 'prefer', 'causal',
           'unix_socket'}

# Error numbers of the MySQL client protocol and server.
NOTHING_SENT = 2006        # CR_SERVER_GONE_ERROR: the connection was dead
LOST_WAITING = 2013        # CR_SERVER_LOST: died while waiting for the answer
CONNECTION_ERRORS = {0, NOTHING_SENT, LOST_WAITING, 2055, 2002, 2003, 2026}
ROLLED_BACK = 1213         # ER_LOCK_DEADLOCK: the whole transaction undone
NOT_RUN = 1047             # a Galera node not ready refused the statement

PING_AFTER = 5.0           # seconds idle in the pool before a checkout pings
# A transaction the server rolled back whole runs again, at most this often,
# after a random pause that doubles each time (up to 32 ms): writers
# colliding on one row take turns instead of colliding again. All the
# pauses together stay under 150 ms, inside the simulator's 300.
TRANSACTION_ATTEMPTS = 8

Result = namedtuple('Result', 'rowcount lastrowid')


class Driver:
    """A DB-API driver for MySQL, and what MiniTwit needs beyond DB-API.

    Each connects with FOUND_ROWS: a statement's row count is the rows it
    matched, not only those it changed. A follow of a pair followed already
    (ON DUPLICATE KEY UPDATE to the same values) then counts 1, as on
    SQLite, and 0 means an unknown user: no lookup needed to tell.
    """

    name = module = None
    # Whether several statements can go in one packet (multi-statements).
    batches = False
    needs = ''  # what it takes to install

    def load(self):
        return importlib.import_module(self.module)

    def version(self):
        return getattr(self.load(), '__version__', '?')

    def connect(self, database, params):
        raise NotImplementedError

    def fileno(self, conn):
        raise NotImplementedError

    def ping(self, conn):
        conn.ping()

    def in_transaction(self, conn):
        return False

    def cursor(self, conn):
        return conn.cursor()

    def fetch_rows(self, conn, sql, params):
        """The rows of one query, as tuples."""
        cursor = self.cursor(conn)
        try:
            cursor.execute(sql, params or None)
            return cursor.fetchall()
        finally:
            cursor.close()

    def run_batch(self, conn, sql, params):
        """Send `sql`, several statements, with `params` in one packet
        (drivers that `batches`); a Result for each statement."""
        cursor = self.cursor(conn)
        cursor.execute(sql, params or None)
        results = [Result(cursor.rowcount, cursor.lastrowid)]
        while cursor.nextset():
            results.append(Result(cursor.rowcount, cursor.lastrowid))
        return results


class PyMySQL(Driver):
    name, module = 'pymysql', 'pymysql'
    batches = True
    needs = 'pure Python: always installed (requirements.txt)'

    def connect(self, database, params):
        pymysql = self.load()
        from pymysql.constants import CLIENT
        return pymysql.connect(
            database=database, autocommit=True,
            client_flag=CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS, **params)

    def fileno(self, conn):
        return conn._sock.fileno()

    def ping(self, conn):
        conn.ping(reconnect=False)  # a bare ping() reconnects silently

    def in_transaction(self, conn):
        from pymysql.constants import SERVER_STATUS
        return bool(conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS)


class MySQLClient(Driver):
    name, module = 'mysqlclient', 'MySQLdb'
    batches = True
    needs = 'C, on libmariadb: make install-mysql (libmariadb-dev, pkg-config, gcc)'

    def version(self):
        return '.'.join(map(str, self.load().version_info[:3]))

    def connect(self, database, params):
        MySQLdb = self.load()
        from MySQLdb.constants import CLIENT
        return MySQLdb.connect(
            database=database, autocommit=True,
            client_flag=CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS, **params)

    def fileno(self, conn):
        return conn.fileno()

    def fetch_rows(self, conn, sql, params):
        # As run_batch: a cursor's Python cost a timeline page a tenth of
        # its time.
        conn.query(self._bind(conn, sql, params))
        result = conn.store_result()
        return result.fetch_row(0) if result is not None else ()

    def run_batch(self, conn, sql, params):
        # The connection's own C calls, without a cursor: a cursor's Python
        # around them (each result's bookkeeping) cost a write about a
        # tenth of its time in the app.
        conn.query(self._bind(conn, sql, params))
        results = []
        while True:
            conn.store_result()  # a write's: none, or rows nobody reads
            results.append(Result(conn.affected_rows(), conn.insert_id()))
            if conn.next_result() == -1:
                return results

    @staticmethod
    def _bind(conn, sql, params):
        """`sql` with `params` in it, escaped by the connection, as bytes."""
        query = sql.encode(conn.encoding)
        if params:
            query %= tuple(map(conn.literal, params))
        return query


class MariaDBConnector(Driver):
    """MariaDB Connector/Python: C, but every statement with parameters is a
    server-side prepared statement, and no multi-statements with them."""

    name, module = 'mariadb', 'mariadb'
    needs = 'C: pip install mariadb (libmariadb-dev)'

    def connect(self, database, params):
        from mariadb.constants import CLIENT
        params = {k: v for k, v in params.items() if k != 'charset'}
        return self.load().connect(database=database, autocommit=True,
                                   client_flag=CLIENT.FOUND_ROWS, **params)

    def fileno(self, conn):
        return conn._get_socket().fileno()

    def cursor(self, conn):
        return conn.cursor(buffered=True)

    def in_transaction(self, conn):
        return bool(conn.server_status & 1)


class MySQLConnector(Driver):
    """Oracle's mysql-connector-python (its C extension where the wheel has
    one; on this platform's wheel it has not: pure Python)."""

    name, module = 'mysql-connector', 'mysql.connector'
    needs = 'pip install mysql-connector-python'

    def connect(self, database, params):
        params = dict(params)
        params['connection_timeout'] = params.pop('connect_timeout', 10)
        params.pop('read_timeout', None)
        params.pop('write_timeout', None)
        from mysql.connector.constants import ClientFlag
        return self.load().connect(database=database, autocommit=True,
                                   buffered=True,
                                   client_flags=[ClientFlag.FOUND_ROWS],
                                   **params)

    def fileno(self, conn):
        return conn._socket.sock.fileno()

    def in_transaction(self, conn):
        return conn.in_transaction


DRIVERS = {d.name: d for d in (PyMySQL(), MySQLClient(), MariaDBConnector(),
                               MySQLConnector())}
# What `driver=auto` (the default) takes: the first that is installed, in the
# order `make bench-drivers` ranked them (docs/benchmarks.md).
PREFERENCE = ('mysqlclient', 'pymysql')


def choose(name='auto'):
    """The Driver called `name`, or the best installed one for 'auto'."""
    if name != 'auto':
        if name not in DRIVERS:
            raise ValueError('driver=%s: MiniTwit knows %s' % (
                name, ', '.join(sorted(DRIVERS))))
        return DRIVERS[name]
    for candidate in PREFERENCE:
        try:
            DRIVERS[candidate].load()
        except ImportError:
            continue
        return DRIVERS[candidate]
    raise ImportError('no MySQL driver: pip install -r requirements.txt')


def errno(error):
    """The MySQL error number of a (peewee-wrapped) driver error, or None."""
    for arg in error.args:
        if isinstance(arg, int):
            return arg
        if isinstance(arg, Exception) and arg.args and \
                isinstance(arg.args[0], int):
            return arg.args[0]
    return None


def pause(attempt):
    """Before attempt `attempt` + 1 of what the server rolled back: a random
    while, up to 2, 4, 8 ... 32 ms, so that colliding writers take turns."""
    time.sleep(random.uniform(0, min(0.001 * 2 ** attempt, 0.032)))


def is_read(sql):
    return sql.lstrip()[:6].upper() in ('SELECT', 'SHOW')


def make(database, params):
    """A MySQLPool for `database` with MiniTwit's settings and `params`."""
    options = dict(
        charset='utf8mb4',
        # Fail fast when the server is down or hung rather than letting a
        # request outlive the simulator's 300 ms.
        connect_timeout=2, read_timeout=10, write_timeout=10,
        # Pool: opening a connection costs tens of milliseconds; waiting for
        # a free one longer than this would miss the deadline anyway.
        max_connections=16, stale_timeout=600, timeout=0.15)
    options.update(params)
    return MySQLPool(database, **options)


class DriverDatabase(MySQLDatabase):
    """peewee's MySQLDatabase on the Driver of its `driver` attribute."""

    def _connect(self):
        if 'unix_socket' in self.connect_params:
            # The server on this machine, through its socket file: 0.03-0.07
            # ms less a write than loopback TCP (docs/benchmarks.md).
            # 'localhost' is the host name that makes every driver use it.
            return self.nodes.connect(lambda host, port: self.driver.connect(
                self.database, dict(self.connect_params, host='localhost')))
        return self.nodes.connect(lambda host, port: self.driver.connect(
            self.database, dict(self.connect_params, host=host, port=port)))

    def _set_server_version(self, conn):
        raw = getattr(conn, 'server_version', None) or conn.get_server_info()
        if isinstance(raw, int):  # MariaDB Connector/Python's 101119
            raw = (raw // 10000, raw // 100 % 100, raw % 100)
        self.server_version = self._extract_server_version(raw)
        self._set_csq_grouped('maria' in str(raw).lower() or
                              self.server_version >= (10,))

    def cursor(self, named_cursor=None):
        if self.is_closed():
            self.connect()
        return self.driver.cursor(self._state.conn)


class MySQLPool(DriverDatabase):
    """A pool of connections, with the checkout, the retries and the
    one-packet transactions described above.

    Its own, not peewee's: peewee's pool keeps the idle connections in a
    heap by age and takes two locks and a dozen dict and clock calls to
    hand one out and take it back, about a seventh of the API's Python
    for a write. Here the idle connections are a stack under one lock, the last
    one back going out first.
    """

    def __init__(self, database, driver='auto', nodes=(('127.0.0.1', 3306),),
                 prefer=1, causal=True, max_connections=16, stale_timeout=600,
                 timeout=0.15, **kwargs):
        self.driver = choose(driver)
        self.nodes = galera.Nodes(list(nodes), prefer)
        if 'unix_socket' in kwargs and self.nodes.clustered:
            raise ValueError('unix_socket= reaches one server, on this '
                             'machine: the URL names %d nodes'
                             % len(self.nodes.order))
        # causal=false in the URL: no read waits for other nodes' commits
        # (for a cluster with one writer, or to measure what they cost).
        self.causal_reads = causal
        # At most this many connections open at once; a request waits
        # `timeout` seconds for one, then gets MaxConnectionsExceeded (a
        # 503); a connection older than `stale_timeout` seconds is closed
        # rather than handed out again.
        self.max_connections = max_connections
        self.wait_timeout = timeout
        self.stale_timeout = stale_timeout
        self._available = threading.Condition(threading.Lock())
        self._idle = []     # (back since, opened at, conn): last back on top
        self._opened = {}   # id(conn) -> (conn, opened at), idle or in use
        self._opening = 0   # connections being opened, outside the lock
        super().__init__(database, **kwargs)

    def describe(self):
        nodes = ','.join('%s:%d' % node for node in self.nodes.order)
        if 'unix_socket' in self.connect_params:
            nodes = self.connect_params['unix_socket']
        return 'MariaDB/MySQL %s@%s/%s%s through %s %s' % (
            self.connect_params.get('user'), nodes, self.database,
            ' (a cluster: this process prefers %s:%d)' % self.nodes.preferred
            if self.nodes.clustered else '', self.driver.name,
            self.driver.version())

    def status(self):
        """The node this thread's connection is on and, on a cluster, what
        the node says of it: for /healthz and /metrics."""
        conn = self.connection()
        node = self.nodes.node_of(conn)
        status = {'node': '%s:%d' % node}
        if self.nodes.clustered:
            with __exception_wrapper__:
                wsrep = galera.node_status(conn)
            status.update(cluster_size=int(wsrep.get('wsrep_cluster_size', 0)),
                          state=wsrep.get('wsrep_local_state_comment', '?'))
        return status

    def _must_wait(self):
        """Whether the statement about to go must first see every commit
        of the cluster (the first of a request that asked, on a cluster)."""
        return galera.take_causal() and self.nodes.clustered and \
            self.causal_reads

    def _node_failed(self, code):
        """After a connection or wsrep error: leave this node alone for a
        while, when that is what the error says."""
        if code in CONNECTION_ERRORS or code in galera.NODE_NOT_READY:
            if not self.is_closed():
                self.nodes.mark_down(self.nodes.node_of(self._state.conn))

    # --- the pool ----------------------------------------------------------

    def connect(self, reuse_if_open=False):
        """Give this thread a connection from the pool (a new one when
        none is idle and fewer than max_connections are open)."""
        if not self._state.closed:
            if reuse_if_open:
                return False
            raise OperationalError('Connection already opened.')
        with __exception_wrapper__:
            conn = self._checkout()
        self._state.set_connection(conn)
        if self.server_version is None:
            self._set_server_version(conn)
        return True

    def close(self):
        """Give this thread's connection back to the pool."""
        if self._state.closed:
            return False
        if self.in_transaction():
            raise OperationalError('Attempting to close database while '
                                   'transaction is open.')
        conn = self._state.conn
        self._state.reset()
        self._checkin(conn)
        return True

    def manual_close(self):
        """Close this thread's connection for good (never back to the
        pool)."""
        if self._state.closed:
            return False
        conn = self._state.conn
        self._state.reset()
        self._discard(conn)
        return True

    def close_all(self):
        """Close every connection, idle or in use (by any thread)."""
        self._state.reset()
        with self._available:
            self._idle = []
            opened, self._opened = self._opened, {}
            self._available.notify_all()
        for conn, _ in opened.values():
            self._close_quietly(conn)

    def _checkout(self):
        deadline = None
        while True:
            with self._available:
                while not self._idle and \
                        len(self._opened) + self._opening >= self.max_connections:
                    now = time.monotonic()
                    deadline = deadline or now + self.wait_timeout
                    if now >= deadline:
                        raise MaxConnectionsExceeded(
                            'all %d connections are in use'
                            % self.max_connections)
                    self._available.wait(deadline - now)
                if not self._idle:
                    self._opening += 1
                    break
                since, opened, conn = self._idle.pop()
            if self._usable(conn, since, opened):
                return conn
            self._discard(conn)
        conn = None
        try:
            conn = self._connect()
        finally:
            with self._available:
                self._opening -= 1
                if conn is None:
                    self._available.notify()  # its place is free again
                else:
                    self._opened[id(conn)] = (conn, time.monotonic())
        return conn

    def _usable(self, conn, since, opened):
        """Whether an idle connection can be handed out, found without a
        round trip unless it sat idle for PING_AFTER seconds."""
        now = time.monotonic()
        if now - opened > self.stale_timeout or self.nodes.retire(conn):
            return False
        try:
            poller = select.poll()
            poller.register(self.driver.fileno(conn), select.POLLIN)
            if poller.poll(0):
                return False  # EOF from the server, or bytes nobody asked for
        except Exception:
            return False
        if now - since > PING_AFTER:
            try:
                self.driver.ping(conn)
            except Exception:
                return False
        return True

    def _checkin(self, conn):
        """Back to the pool; first roll back what a failure left open (the
        server says whether anything is: no round trip otherwise)."""
        if self.driver.in_transaction(conn):
            try:
                conn.rollback()
            except Exception:
                self._discard(conn)
                return
        with self._available:
            opened = self._opened.get(id(conn))
            if opened is not None:  # else close_all() closed it
                self._idle.append((time.monotonic(), opened[1], conn))
                self._available.notify()
                return
        self._close_quietly(conn)

    def _discard(self, conn):
        """Close a connection that is not to be used again."""
        with self._available:
            self._opened.pop(id(conn), None)
            self._available.notify()
        self._close_quietly(conn)

    def _close_quietly(self, conn):
        self.nodes.forget(conn)
        with contextlib.suppress(Exception):  # closed already, server gone
            conn.close()

    def _begin_statement(self):
        """BEGIN, with the causal wait when this request's first statement
        must have one: inside a transaction the server skips the wait, so
        a transaction waits on its BEGIN."""
        return galera.SYNC_WAIT + 'BEGIN' if self._must_wait() else 'BEGIN'

    def begin(self, isolation_level=None):
        """db.atomic()'s BEGIN (see _begin_statement)."""
        if isolation_level is not None:  # MiniTwit never asks for one
            return super().begin(isolation_level)
        with __exception_wrapper__:
            self.cursor().execute(self._begin_statement())

    def replace_connection(self):
        """Drop this thread's connection (never back to the pool) and open a
        new one."""
        self.manual_close()
        self.connect()

    # --- statements --------------------------------------------------------

    def execute_sql(self, sql, params=None):
        """Run one statement; its cursor. Outside a transaction, again when
        that is safe: on a new connection (another node, if this one
        failed) when nothing was sent or run, or for a read; after a pause
        when the server rolled it back (1213), as run_transaction does."""
        return self._statement(super().execute_sql, sql, params)

    def fetch_rows(self, sql, params):
        """Run one query, as execute_sql does; its rows, as tuples."""
        return self._statement(self._fetch_once, sql, params)

    def _fetch_once(self, sql, params):
        if self.is_closed():
            self.connect()
        with __exception_wrapper__:
            return self._without_cursor(sql, params, lambda: (
                self.driver.fetch_rows(self._state.conn, sql, params)))

    def _without_cursor(self, sql, params, send):
        """send(): `sql` sent through the driver's own calls, with what
        peewee's execute_sql does around a statement: its debug log and
        its query hooks, which see every statement on either database."""
        self._log_query(sql, params)
        if not self.query_hooks:
            return send()
        start = time.perf_counter()
        try:
            result = send()
        except Exception as exc:
            self._notify_hooks(sql, params, start, exc)
            raise
        self._notify_hooks(sql, params, start, None)
        return result

    def _statement(self, run, sql, params):
        """run(sql, params), with execute_sql's causal wait and retries."""
        if self._must_wait():
            sql = galera.SYNC_WAIT + sql
        attempt, replaced = 1, False
        while True:
            try:
                return run(sql, params)
            except (OperationalError, InterfaceError) as error:
                code = errno(error)
                self._node_failed(code)
                if self.in_transaction():
                    raise
                if code == ROLLED_BACK and attempt < TRANSACTION_ATTEMPTS:
                    pause(attempt)
                    attempt += 1
                elif not replaced and (
                        code in (NOTHING_SENT, NOT_RUN) or
                        (code in CONNECTION_ERRORS and is_read(sql))):
                    replaced = True
                    self.replace_connection()
                else:
                    raise

    def run_transaction(self, statements):
        """Run (sql, params) statements as one transaction: a Result
        (rowcount, lastrowid) for each. Sent again on a new connection if
        the old one was dead before anything was sent, and again (a few
        times) when the server rolled it back whole."""
        if len(statements) == 1:  # atomic on its own: no BEGIN/COMMIT
            begin = None
            if self._must_wait():
                (sql, params), = statements
                statements = [(galera.SYNC_WAIT + sql, params)]
        else:
            begin = self._begin_statement()
        attempt, replaced = 1, 0
        while True:
            try:
                return self._transaction_once(statements, begin)
            except (OperationalError, InterfaceError) as error:
                code = errno(error)
                self._node_failed(code)
                if code in (NOTHING_SENT, NOT_RUN) and \
                        replaced < len(self.nodes.order):
                    replaced += 1
                    self.replace_connection()
                elif code == ROLLED_BACK and attempt < TRANSACTION_ATTEMPTS:
                    pause(attempt)
                    attempt += 1
                else:
                    raise

    def _transaction_once(self, statements, begin):
        """`begin` None: one statement, atomic on its own."""
        if self.is_closed():
            self.connect()
        try:
            with __exception_wrapper__:
                if self.driver.batches:
                    return self._send_in_one_packet(statements, begin)
                # One statement after another, each through peewee's own
                # execute_sql (not this class's: no retry inside).
                execute = super().execute_sql
                if begin:
                    execute(begin)
                results = []
                for sql, params in statements:
                    cursor = execute(sql, tuple(params))
                    results.append(Result(cursor.rowcount, cursor.lastrowid))
                if begin:
                    execute('COMMIT')
                return results
        except DatabaseError as error:
            self._after_failure(error, begin is None)
            raise

    def _send_in_one_packet(self, statements, begin):
        sql = ';\n'.join(s for s, _ in statements)
        if begin:
            sql = '%s;\n%s;\nCOMMIT' % (begin, sql)
        params = [p for _, ps in statements for p in ps]
        results = self._without_cursor(sql, params, lambda: (
            self.driver.run_batch(self._state.conn, sql, params)))
        return results[1:-1] if begin else results

    def _after_failure(self, error, single):
        """Leave no transaction open after a statement of one failed: roll
        it back, or drop a connection that cannot say (the next statement
        of this request, if any, opens a new one)."""
        if errno(error) in CONNECTION_ERRORS:
            self.manual_close()
        elif not single:
            try:
                self.cursor().execute('ROLLBACK')
            except Exception:
                self.manual_close()
