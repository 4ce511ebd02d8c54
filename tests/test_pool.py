"""MiniTwit's pool of MySQL connections (database/mysql.py): how many it
opens, which one a request gets, and what it closes."""
import threading
import time
import uuid

import pytest
from conftest import MARIADB_URL

import database

pytestmark = pytest.mark.skipif(not MARIADB_URL,
                                reason='TEST_MARIADB_URL is not set')


@pytest.fixture
def pool(mariadb_admin):
    """pool(options): the models on a new database of the test server,
    through a pool with these URL options; .name is the database's."""
    name = 'minitwit_pool_%s' % uuid.uuid4().hex[:12]
    with mariadb_admin.cursor() as cur:
        cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)

    def configure(options):
        return database.configure('%s/%s?%s' % (MARIADB_URL, name, options))
    configure.name = name
    yield configure
    database.db.obj.close_all()
    with mariadb_admin.cursor() as cur:
        cur.execute('DROP DATABASE %s' % name)


def server_connections(admin, name):
    """How many connections the server has open to the database `name`,
    counted from outside the pool."""
    with admin.cursor() as cur:
        cur.execute('SELECT COUNT(*) FROM information_schema.processlist '
                    'WHERE db = %s', (name,))
        return cur.fetchone()[0]


def connection_id():
    """The server's id of the connection a request gets now."""
    with database.connection():
        return database.db.execute_sql('SELECT CONNECTION_ID()').fetchone()[0]


def test_one_request_after_another_takes_one_connection(pool, mariadb_admin):
    pool('max_connections=4')
    assert len({connection_id() for _ in range(20)}) == 1
    assert server_connections(mariadb_admin, pool.name) == 1


def test_a_request_waits_for_a_connection_given_back_in_time(pool,
                                                             mariadb_admin):
    """At most max_connections are open; a request that finds them all in
    use gets the first one given back within `timeout`."""
    pool('max_connections=2&timeout=5')
    held, release, got = [], threading.Event(), []

    def hold():
        with database.connection():
            held.append(database.db.execute_sql(
                'SELECT CONNECTION_ID()').fetchone()[0])
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for thread in holders:
        thread.start()
    deadline = time.monotonic() + 10
    while len(held) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    waiter = threading.Thread(target=lambda: got.append(connection_id()))
    waiter.start()
    time.sleep(0.3)
    assert got == []  # waiting: both connections are in use
    release.set()
    waiter.join(10)
    for thread in holders:
        thread.join(10)
    assert len(got) == 1 and got[0] in held
    assert server_connections(mariadb_admin, pool.name) == 2


def test_a_connection_older_than_stale_timeout_is_replaced(pool,
                                                           mariadb_admin):
    pool('stale_timeout=0.3')
    first = connection_id()
    assert connection_id() == first
    time.sleep(0.4)
    assert connection_id() != first
    assert server_connections(mariadb_admin, pool.name) == 1


def test_close_all_closes_the_idle_and_the_busy(pool, mariadb_admin):
    target = pool('max_connections=4')
    inside, leave = threading.Event(), threading.Event()

    def busy():
        with database.connection():
            database.db.execute_sql('SELECT 1')
            inside.set()
            leave.wait(10)
    thread = threading.Thread(target=busy)
    thread.start()
    assert inside.wait(10)
    before = connection_id()  # a second connection, idle now
    assert server_connections(mariadb_admin, pool.name) == 2
    target.close_all()
    deadline = time.monotonic() + 5
    while server_connections(mariadb_admin, pool.name) and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    assert server_connections(mariadb_admin, pool.name) == 0
    leave.set()  # the busy thread gives back a connection that is closed
    thread.join(10)
    assert connection_id() != before
    assert server_connections(mariadb_admin, pool.name) == 1
