"""Several MariaDB nodes (a Galera cluster): which one a process uses.

DATABASE_URL may name several nodes, mysql://user:pw@db1,db2:3307,db3/name
(a node without a port is on 3306), and `prefer=N` the one (1 is the first)
this process tries first, so that app hosts spread over the cluster. Every
new connection goes to the first usable node in that order, preferred one
first: a node that refuses connections, or is not ready (wsrep_ready OFF) or
not synced (wsrep_local_state other than 4: joining, a donor, cut off from
the rest), is passed over and left alone for DOWN_SECONDS. A connection to
a node that was found down is not handed out again; one to another node
than the preferred is replaced once the preferred one may be back, so a
process returns to its node without a restart.

Read-your-writes: a node applies other nodes' commits a moment after they
commit, so a request that must see an earlier request's write (made
through another node, perhaps) has its first statement wait until the node
has applied everything committed before it (wsrep_sync_wait). The apps say
which requests must (`causal()`): the simulator's, each of which may
follow the previous one; a page right after the browser's own write. The
server skips that wait for a statement inside a transaction, so a
transaction waits on its BEGIN (database/mysql.py).
"""
import threading
import time

from peewee import OperationalError

DOWN_SECONDS = 2.0
SYNCED = '4'
# Every kind of statement waits: reads, updates and deletes, inserts, SHOW.
SYNC_WAIT = 'SET STATEMENT wsrep_sync_wait=15 FOR '
STATUS = ("SHOW STATUS WHERE Variable_name IN ('wsrep_ready', "
          "'wsrep_local_state', 'wsrep_local_state_comment', "
          "'wsrep_cluster_size', 'wsrep_cluster_status')")
# Errors that say the node cannot serve now: it refused the statement
# before running it (1047: not prepared for application use) or lost the
# cluster's majority (1180: not connected to the primary component).
NODE_NOT_READY = {1047, 1180}

_request = threading.local()


def causal(needed=True):
    """Whether this thread's next statement must see every commit made
    before it, on any node; the apps call it at the start of a request."""
    _request.causal = needed


def take_causal():
    """Whether the statement about to be sent must wait (only the first)."""
    needed = getattr(_request, 'causal', False)
    _request.causal = False
    return needed


def parse_nodes(hosts, default_port=3306):
    """[(host, port)] of 'db1,db2:3307,db3'."""
    nodes = []
    for part in hosts.split(','):
        host, _, port = part.strip().rpartition(':') if ':' in part else \
            (part.strip(), '', '')
        if not host:
            raise ValueError('DATABASE_URL names an empty host in %r' % hosts)
        nodes.append((host, int(port) if port else default_port))
    return nodes


class Nodes:
    """The nodes of one DATABASE_URL, preferred one first, and which of
    them were found down lately."""

    def __init__(self, nodes, prefer=1):
        if not 1 <= prefer <= len(nodes):
            raise ValueError('prefer=%d: the URL names %d node(s)' % (
                prefer, len(nodes)))
        self.order = nodes[prefer - 1:] + nodes[:prefer - 1]
        self.preferred = self.order[0]
        self.clustered = len(nodes) > 1
        self.down_until = {}
        self.of_connection = {}  # id(conn) -> node
        self.lock = threading.Lock()

    def is_down(self, node):
        # No lock: a dict read is atomic, and every checkout asks.
        return self.down_until.get(node, 0) > time.monotonic()

    def mark_down(self, node):
        with self.lock:
            self.down_until[node] = time.monotonic() + DOWN_SECONDS

    def candidates(self):
        """The nodes to try, in order: those not found down lately (all of
        them when every node was)."""
        up = [node for node in self.order if not self.is_down(node)]
        return up or list(self.order)

    def connect(self, open_connection):
        """A connection to the first usable node: open_connection(host,
        port) makes one. Raises the last error when no node is usable."""
        error = None
        for node in self.candidates():
            try:
                conn = open_connection(*node)
            except Exception as refused:
                error = refused
                self.mark_down(node)
                continue
            problem = self.clustered and unusable(conn)
            if problem:
                conn.close()
                error = NodeNotReady('%s:%d is %s' % (*node, problem))
                self.mark_down(node)
                continue
            self.of_connection[id(conn)] = node
            return conn
        raise error

    def node_of(self, conn):
        return self.of_connection.get(id(conn), self.preferred)

    def forget(self, conn):
        self.of_connection.pop(id(conn), None)

    def retire(self, conn):
        """Whether a pooled connection should not be handed out: its node
        was found down, or it is not the preferred node, which may be back."""
        node = self.node_of(conn)
        return self.is_down(node) or (node != self.preferred and
                                      not self.is_down(self.preferred))


class NodeNotReady(OperationalError):
    """A node answered but cannot serve: not synced with the cluster."""


def unusable(conn):
    """Why a connection's node cannot serve now, or None when it can."""
    status = node_status(conn)
    if status.get('wsrep_ready') != 'ON':
        return 'not ready (wsrep_ready %s)' % status.get('wsrep_ready', 'OFF')
    if status.get('wsrep_local_state') != SYNCED:
        return 'not synced (%s)' % status.get('wsrep_local_state_comment', '?')
    return None


def node_status(conn):
    """The node's wsrep status variables, read on a raw driver connection."""
    cursor = conn.cursor()
    try:
        cursor.execute(STATUS)
        return {name: value for name, value in cursor.fetchall()}
    finally:
        cursor.close()
