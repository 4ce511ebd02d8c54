"""MiniTwit's database as a three-node MariaDB Galera cluster: what a
crashed node costs and what concurrent writers on two nodes see.

The cluster is real (tests/galera.py: three mariadbd on 127.0.0.1), so these
are slow. They need mariadbd, Galera's library and rsync (its state
transfers), and root (the nodes run as user mysql).
"""
import threading

import pymysql
import pytest
from galera import GaleraCluster
from serving import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.needs('mariadbd', 'mariadb-install-db', 'rsync',
                                '/usr/lib/galera/libgalera_smm.so')]

DEADLOCK = 1213  # how a transaction that lost certification ends


@pytest.fixture(scope='module')
def cluster():
    with GaleraCluster() as started:
        yield started


class Writer(threading.Thread):
    """Inserts rows on one node, one autocommit statement at a time, until
    told to stop; counts what the node acknowledged."""

    def __init__(self, cluster, node, database):
        super().__init__(daemon=True)
        self.conn = cluster.connect(node, database, read_timeout=20)
        self.acked = 0
        self.error = None
        self.done = threading.Event()

    def run(self):
        try:
            with self.conn.cursor() as cur:
                while not self.done.is_set():
                    cur.execute("INSERT INTO message (text) VALUES ('during')")
                    self.acked += 1
        except pymysql.err.MySQLError as error:
            self.error = error
        finally:
            self.conn.close()

    def stop(self):
        self.done.set()
        self.join(30)
        assert not self.is_alive(), 'the writer hung'
        assert self.error is None, self.error


def test_a_crashed_node_rejoins_by_ist_and_misses_nothing(cluster):
    cluster.create_database('crash')
    with cluster.connect(0, 'crash') as conn, conn.cursor() as cur:
        cur.execute('CREATE TABLE message (id INT AUTO_INCREMENT PRIMARY KEY, '
                    'text VARCHAR(100) NOT NULL)')
        cur.executemany('INSERT INTO message (text) VALUES (%s)',
                        [('before %d' % i,) for i in range(100)])

    # Written on the first node, read on the third: with wsrep_sync_wait the
    # read waits until the third node has applied every write before it.
    with cluster.connect(2, 'crash', init_command='SET SESSION wsrep_sync_wait = 1') \
            as conn, conn.cursor() as cur:
        cur.execute("SELECT text FROM message ORDER BY id")
        assert [text for text, in cur.fetchall()] == ['before %d' % i for i in range(100)]

    writer = Writer(cluster, 0, 'crash')
    writer.start()
    wait_until(lambda: writer.acked >= 50 or writer.error, 'the first writes')
    cluster.kill(1)
    wait_until(lambda: cluster.status(0)['wsrep_cluster_size'] == 2,
               'the others to notice the crash', timeout=20)
    at_crash = writer.acked
    # The survivors stay a Primary component and keep committing.
    wait_until(lambda: writer.acked >= at_crash + 100 or writer.error,
               'writes while node 1 is down', timeout=20)
    cluster.restart(1)
    writer.stop()

    assert cluster.rejoined_by(1) == 'IST'
    expected = 100 + writer.acked
    assert cluster.row_counts('crash', ['message']) == \
        {node: {'message': expected} for node in range(3)}


def attempt(conn, statements):
    """Run the statements; None if they all succeed, else the error number."""
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    except pymysql.err.OperationalError as error:
        return error.args[0]
    return None


@pytest.mark.parametrize('database, key, change', [
    ('conflict_update', 1, "UPDATE account SET owner = '{who}' WHERE id = 1"),
    ('conflict_insert', 2, "INSERT INTO account (id, owner) VALUES (2, '{who}')"),
], ids=['same row updated', 'same key inserted'])
def test_a_certification_conflict_fails_one_writer_with_a_deadlock(
        cluster, database, key, change):
    cluster.create_database(database)
    with cluster.connect(0, database) as conn, conn.cursor() as cur:
        cur.execute('CREATE TABLE account (id INT PRIMARY KEY, owner VARCHAR(10))')
        cur.execute("INSERT INTO account VALUES (1, 'nobody')")
    writers = {who: cluster.connect(node, database, autocommit=False)
               for who, node in (('first', 0), ('second', 1))}
    try:
        # Each node lets its own transaction change the row: the conflict
        # shows only when they replicate, at COMMIT.
        for who, conn in writers.items():
            assert attempt(conn, ['BEGIN', change.format(who=who)]) is None
        outcomes = {}
        commits = [threading.Thread(target=lambda who=who, conn=conn: outcomes.update(
            {who: attempt(conn, ['COMMIT'])})) for who, conn in writers.items()]
        for thread in commits:
            thread.start()
        for thread in commits:
            thread.join(30)
        assert sorted(outcomes.values(), key=str) == [DEADLOCK, None], outcomes
    finally:
        for conn in writers.values():
            conn.close()

    winner, = [who for who, error in outcomes.items() if error is None]
    for node in range(3):
        with cluster.connect(node, database, init_command='SET SESSION wsrep_sync_wait = 1') \
                as conn, conn.cursor() as cur:
            cur.execute('SELECT owner FROM account WHERE id = %s', (key,))
            assert cur.fetchone() == (winner,)
