"""Shared fixtures: databases on each backend, the two apps, live servers.

Every test that takes `database` (or `api`, `ui`, `make_db_url`) runs once per
backend: SQLite always, and MariaDB too when TEST_MARIADB_URL names a server
(`mysql://root@127.0.0.1:3306`, as .ci/run sets it). A MariaDB that was asked
for and cannot be reached fails those tests; it never skips them.
"""
import os
import tempfile
import uuid
from urllib.parse import urlparse

import pytest
from serving import Server

pytest_plugins = ['system_tools']  # the `needs` marker: tests/system_tools.py

MARIADB_URL = os.environ.get('TEST_MARIADB_URL', '').rstrip('/')
BACKENDS = ['sqlite'] + (['mariadb'] if MARIADB_URL else [])

# A request that finds no database configured uses DATABASE_URL's: make that
# a throwaway file, never ./minitwit.db. Tests point the models at their own.
_DEFAULT_DIR = tempfile.mkdtemp(prefix='minitwit-tests-')
os.environ['DATABASE_URL'] = 'sqlite:///%s/default.db' % _DEFAULT_DIR
# The web UI reads its key when imported (and refuses a bad one in production).
os.environ.setdefault('MINITWIT_SECRET_KEY', 'test-only-secret-' + uuid.uuid4().hex)

import database  # noqa: E402
import models  # noqa: E402
import sessions  # noqa: E402
import sim_api  # noqa: E402


def pytest_report_header(config):
    return 'minitwit backends: %s' % ', '.join(
        BACKENDS if not MARIADB_URL else
        ['sqlite', 'mariadb at %s' % urlparse(MARIADB_URL).netloc])


# --- databases --------------------------------------------------------------

def _mariadb_admin():
    import pymysql
    parts = urlparse(MARIADB_URL)
    try:
        return pymysql.connect(host=parts.hostname or '127.0.0.1',
                               port=parts.port or 3306,
                               user=parts.username or 'root',
                               password=parts.password or '',
                               autocommit=True, connect_timeout=5)
    except pymysql.err.OperationalError as error:
        pytest.fail('TEST_MARIADB_URL=%s is set but MariaDB cannot be '
                    'reached: %s' % (MARIADB_URL, error), pytrace=False)


@pytest.fixture(scope='session')
def mariadb_admin():
    """A root connection to the test server, for creating databases."""
    conn = _mariadb_admin()
    yield conn
    conn.close()


@pytest.fixture
def mariadb_socket_url(mariadb_admin):
    """TEST_MARIADB_URL's server through its Unix socket (no database):
    skipped when the server is not on this machine."""
    with mariadb_admin.cursor() as cur:
        cur.execute('SELECT @@socket')
        [(socket_file,)] = cur.fetchall()
    if not os.path.exists(socket_file):
        pytest.skip('the test server (%s) is not on this machine'
                    % MARIADB_URL)
    credentials = urlparse(MARIADB_URL).netloc.rpartition('@')[0] or 'root'
    return 'mysql://%s@localhost?unix_socket=%s' % (credentials, socket_file)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """'sqlite' or 'mariadb': tests that use a database run on each."""
    return request.param


@pytest.fixture
def make_db_url(backend, request, tmp_path):
    """A factory of URLs of new, empty databases on this test's backend.

    They are dropped when the test ends. Use it for a server process or for
    anything that needs a database no other test has touched.
    """
    created = []

    def make():
        if backend == 'sqlite':
            path = tmp_path / ('db-%s.sqlite' % uuid.uuid4().hex[:8])
            return 'sqlite:///%s' % path
        admin = request.getfixturevalue('mariadb_admin')
        name = 'minitwit_test_%s' % uuid.uuid4().hex[:12]
        with admin.cursor() as cur:
            cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
        created.append(name)
        return '%s/%s' % (MARIADB_URL, name)

    yield make
    if created:
        admin = request.getfixturevalue('mariadb_admin')
        with admin.cursor() as cur:
            for name in created:
                cur.execute('DROP DATABASE IF EXISTS %s' % name)


@pytest.fixture(scope='session')
def _shared_mariadb(request):
    """One MariaDB database with the schema for the whole session; each
    test empties it (creating one per test costs ~0.3 s)."""
    admin = request.getfixturevalue('mariadb_admin')
    name = 'minitwit_test_%s' % uuid.uuid4().hex[:12]
    with admin.cursor() as cur:
        cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
    yield '%s/%s' % (MARIADB_URL, name)
    with admin.cursor() as cur:
        cur.execute('DROP DATABASE IF EXISTS %s' % name)


def _empty_tables():
    for model in (models.Message, models.Follower, models.User,
                  models.TweetKey, sessions.Session, sessions.SignInFailure):
        model.delete().execute()
    models.Latest.reset()


@pytest.fixture
def fresh_db(backend, tmp_path, request):
    """The models pointed at an empty database with the schema."""
    if backend == 'sqlite':
        url = 'sqlite:///%s' % (tmp_path / 'minitwit.db')
    else:
        url = request.getfixturevalue('_shared_mariadb')
    database.configure(url)
    database.create_schema()
    if backend == 'mariadb':
        with database.connection():
            _empty_tables()
    yield database.db
    database.db.obj.close_all()


@pytest.fixture
def api(fresh_db):
    """The simulator API under WebTest."""
    from webtest import TestApp
    return TestApp(sim_api.app)


# --- live servers -----------------------------------------------------------

@pytest.fixture
def start_server():
    """Start the apps under waitress (`python -m serve`); all are stopped after the test.

    start_server('sim_api:app', database_url) -> serving.Server (.url, .port)
    """
    servers = []

    def start(app, database_url=None, **kwargs):
        server = Server(app, database_url, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
