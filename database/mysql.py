"""MariaDB and MySQL: playhouse's pool over mysqlclient or PyMySQL, on one
server or on the nodes of a Galera cluster.

A cluster is a DATABASE_URL naming several nodes, mysql://u:pw@db1,db2:3307,db3/name
(a node without a port is on 3306), and `prefer=N` the one (1 is the first)
this process tries first, so that app hosts spread over the cluster. A new
connection goes to the first usable node in that order: a node that
refuses connections, fails a statement, or is not synced with the rest
(wsrep_ready, wsrep_local_state) is left alone for DOWN_SECONDS; one that
did not answer within the connect timeout (hung: SIGSTOP, a dead link;
on a cluster the read timeout is the connect timeout, 5 s) for
HUNG_SECONDS, since every try costs a request that long. Connections to a node found down are not
handed out again, nor those to another node once the preferred one may be
back.

Read-your-writes on a cluster: a node applies the others' commits a moment
after they commit, so a request that must see earlier writes (the apps say
which: `causal()`) has its first statement wait until its node has applied
everything committed before (wsrep_sync_wait). The server skips that wait
inside a transaction, so a transaction waits on its BEGIN. One server
pays for none of this.
"""
import select
import threading
import time

from peewee import (
    DatabaseError,
    InterfaceError,
    MySQLDatabase,
    OperationalError,
    __exception_wrapper__,
)
from playhouse.pool import PooledDatabase

DOWN_SECONDS, HUNG_SECONDS = 2, 30
SYNC_WAIT = 'SET STATEMENT wsrep_sync_wait=15 FOR '  # every kind of statement
STATUS = ("SHOW STATUS WHERE Variable_name IN ('wsrep_ready', "
          "'wsrep_local_state', 'wsrep_local_state_comment', "
          "'wsrep_cluster_size')")
# After these, nothing of the statement was done: the connection was dead
# before it was sent (2006); the node refused it (1047: not ready, 1180: cut
# off from the cluster's majority). Not 2013: a COMMIT whose answer was
# lost may have committed.
NOTHING_SENT, LOST, ROLLED_BACK = 2006, 2013, 1213
NOT_RUN = {1047, 1180}
CONNECTION_ERRORS = {0, NOTHING_SENT, LOST, 2055, 2002, 2003, 2026}

FOUND_ROWS, MULTI_STATEMENTS = 2, 1 << 16  # the client protocol's flags

_request = threading.local()


def causal(needed=True):
    """Whether this thread's next statement must see every commit made
    before it, on any node; the apps say it at the start of a request."""
    _request.causal = needed


def errno(error):
    """The MySQL error number of a (peewee-wrapped) driver error, or None."""
    args = error.args
    if args and isinstance(args[0], Exception):
        args = args[0].args
    return args[0] if args and isinstance(args[0], int) else None


def parse_nodes(hosts):
    """[(host, port)] of 'db1,db2:3307,db3'."""
    nodes = []
    for part in hosts.split(','):
        host, _, port = part.strip().partition(':')
        if not host:
            raise ValueError('DATABASE_URL names an empty host in %r' % hosts)
        nodes.append((host, int(port or 3306)))
    return nodes


def choose_driver(name):
    """The DB-API module of driver=`name`: mysqlclient, pymysql, or auto
    (mysqlclient, in C, when installed: docs/benchmarks.md has why)."""
    modules = {'mysqlclient': 'MySQLdb', 'pymysql': 'pymysql'}
    if name not in ('auto', *modules):
        raise ValueError('DATABASE_URL option driver=%s: MiniTwit knows '
                         'mysqlclient and pymysql' % name)
    for candidate in modules if name == 'auto' else [name]:
        try:
            return __import__(modules[candidate])
        except ImportError:
            if name != 'auto':
                raise
    raise ImportError('no MySQL driver: make install')


def node_status(conn):
    """The wsrep status variables of a driver connection's node."""
    cursor = conn.cursor()
    try:
        cursor.execute(STATUS)
        return dict(cursor.fetchall())
    finally:
        cursor.close()


class NodeNotReady(OperationalError):
    """A node answered but cannot serve: not synced with the cluster."""


class MySQL(MySQLDatabase):
    """peewee's MySQL database on the URL's nodes, through its driver."""

    def __init__(self, database, driver='auto', nodes=(('127.0.0.1', 3306),),
                 prefer=1, causal=True, **kwargs):
        if not 1 <= prefer <= len(nodes):
            raise ValueError('prefer=%d: the URL names %d node(s)' % (
                prefer, len(nodes)))
        self.driver = choose_driver(driver)
        self.order = nodes[prefer - 1:] + nodes[:prefer - 1]
        self.clustered = len(nodes) > 1
        if 'unix_socket' in kwargs and self.clustered:
            raise ValueError('unix_socket= reaches one server, on this machine:'
                             ' the URL names %d nodes' % len(nodes))
        # causal=false: no read waits for other nodes' commits (a cluster
        # with one writer, or to measure what the waits cost).
        self.causal_reads = causal and self.clustered
        # models.Latest: on a cluster, a row per node its processes prefer.
        self.latest_row = prefer if self.clustered else 1
        self.down_until = {}  # node -> time.monotonic() it may be back
        self.node_of = {}  # id(conn) -> node
        super().__init__(database, **kwargs)

    def is_down(self, node):
        return self.down_until.get(node, 0) > time.monotonic()

    def _connect(self):
        """A connection to the first usable node, with FOUND_ROWS (a
        statement counts the rows it matched, so that a follow of a pair
        followed already counts 1, as on SQLite) and MULTI_STATEMENTS."""
        error = None
        for node in [n for n in self.order if not self.is_down(n)] or self.order:
            where = {'host': 'localhost'} if 'unix_socket' in \
                self.connect_params else {'host': node[0], 'port': node[1]}
            started = time.monotonic()
            try:
                conn = self.driver.connect(
                    database=self.database, autocommit=True,
                    client_flag=FOUND_ROWS | MULTI_STATEMENTS,
                    **self.connect_params, **where)
                wsrep = node_status(conn) if self.clustered else {}
            except Exception as refused:
                error = refused
            else:
                if not self.clustered or (wsrep.get('wsrep_ready') == 'ON' and
                                          wsrep.get('wsrep_local_state') == '4'):
                    self.node_of[id(conn)] = node
                    return conn
                conn.close()
                error = NodeNotReady('%s:%d is not synced (%s)' % (
                    *node, wsrep.get('wsrep_local_state_comment', '?')))
            self.mark_down(node, started)
        raise error

    def mark_down(self, node, started):
        """Leave a node of a cluster alone for a while: longer when what
        failed took the connect timeout (the node hangs)."""
        if self.clustered:
            now = time.monotonic()
            hung = now - started >= 0.9 * self.connect_params.get('connect_timeout', 10)
            self.down_until[node] = now + (HUNG_SECONDS if hung else DOWN_SECONDS)

    def begin(self, isolation_level=None):
        self.execute_sql('BEGIN')  # where a causal wait goes

    def execute_sql(self, sql, params=None):
        """One statement. Outside a transaction, sent again on a new
        connection (another node, if this one failed) when that is safe:
        nothing was sent, or it reads."""
        if self.causal_reads and getattr(_request, 'causal', False):
            _request.causal = False
            sql = SYNC_WAIT + sql
        started = time.monotonic()
        try:
            return super().execute_sql(sql, params)
        except (OperationalError, InterfaceError) as error:
            code = errno(error)
            if code in CONNECTION_ERRORS or code in NOT_RUN:
                self.mark_down(self.node_of.get(id(self.connection())), started)
            read = sql.lstrip()[:6].upper() in ('SELECT', 'SHOW')
            if self.in_transaction() or not (
                    code == NOTHING_SENT or code in NOT_RUN or
                    code in CONNECTION_ERRORS and read):
                raise
        self.manual_close()
        return super().execute_sql(sql, params)

    def run_transaction(self, statements):
        """BEGIN, `statements` and COMMIT in one packet, one round trip
        (docs/benchmarks.md: a simulator write took five): their row
        counts. Their values are bound parameters, like every other
        statement's: no text from a request is ever part of the SQL."""
        sql = ';\n'.join(['BEGIN', *(sql for sql, _ in statements), 'COMMIT'])
        cursor = self.execute_sql(sql, [p for _, ps in statements for p in ps])
        try:
            with __exception_wrapper__:
                counts = []
                for _ in statements:
                    cursor.nextset()
                    counts.append(cursor.rowcount)
                cursor.nextset()
                return counts
        except DatabaseError as error:
            # The server stopped at the failed statement: roll back what
            # ran, or drop a connection that cannot say.
            try:
                if errno(error) in CONNECTION_ERRORS:
                    raise error
                self.execute_sql('ROLLBACK')
            except DatabaseError:
                self.manual_close()
            raise

    def describe(self):
        nodes = self.connect_params.get('unix_socket') or ','.join(
            '%s:%d' % node for node in self.order)
        return 'MariaDB/MySQL %s@%s/%s%s through %s' % (
            self.connect_params.get('user'), nodes, self.database,
            ' (a cluster: this process prefers %s:%d)' % self.order[0]
            if self.clustered else '',
            'mysqlclient' if self.driver.__name__ == 'MySQLdb' else 'PyMySQL')

    def status(self):
        """This thread's node and, on a cluster, what it says of itself."""
        conn = self.connection()
        status = {'node': '%s:%d' % self.node_of.get(id(conn), self.order[0])}
        if self.clustered:
            wsrep = node_status(conn)
            status.update(cluster_size=int(wsrep.get('wsrep_cluster_size', 0)),
                          state=wsrep.get('wsrep_local_state_comment', '?'))
        return status


class MySQLPool(PooledDatabase, MySQL):
    """playhouse's pool of MySQL connections; a connection is checked
    when it is handed out without a round trip."""

    @property
    def max_connections(self):
        return self._max_connections

    def _is_closed(self, conn):
        """Whether a pooled connection must not be handed out: its node
        was found down, or is not the preferred one, which may be back; or
        the server closed it (a restart, KILL, wait_timeout), which shows as
        something to read. PyMySQL shows no socket: it is pinged."""
        node = self.node_of.get(id(conn))
        if self.is_down(node) or (node != self.order[0] and
                                  not self.is_down(self.order[0])):
            return True
        try:
            if not hasattr(conn, 'fileno'):
                conn.ping(False)
                return False
            poller = select.poll()
            poller.register(conn.fileno(), select.POLLIN)
            return bool(poller.poll(0))
        except Exception:
            return True

    def _can_reuse(self, conn):
        return True  # peewee closes no connection inside a transaction

    def _close_raw(self, conn):
        self.node_of.pop(id(conn), None)
        super()._close_raw(conn)
