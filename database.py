"""How MiniTwit reaches its database: the plumbing under models.py.

DATABASE_URL chooses it: an embedded SQLite file by default
(sqlite:///minitwit.db), MySQL/MariaDB in production
(mysql://user:password@host:3306/name). Here are the URL's parsing, the
connection pools, SQLite's WAL checkpointer, the schema's creation from
schema.sql, a connection per request (`connection`), and compiled
statements (`Prepared`). The models and their queries are in models.py.
"""
import os
import re
import sqlite3
import threading
import weakref
from urllib.parse import parse_qsl, quote, unquote, urlparse

from peewee import (
    DatabaseProxy,
    IntegrityError,
    InterfaceError,
    OperationalError,
    __exception_wrapper__,
)
from playhouse.pool import MaxConnectionsExceeded, PooledMySQLDatabase, PooledSqliteDatabase
from pymysql.constants import SERVER_STATUS

DEFAULT_DATABASE_URL = 'sqlite:///minitwit.db'
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'schema.sql')

# What a request may hit when the database is down, restarting or saturated:
# the apps answer 503 for these instead of 500.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, MaxConnectionsExceeded)

# The models are bound to this; configure() points it at a database.
db = DatabaseProxy()


def insert_many(fields, rows):
    """INSERT `rows` (tuples in the order of `fields`, all of one model) as
    one executemany, for bulk loads: a peewee query of all the rows would
    cost more to build than the database's work."""
    sql, _ = fields[0].model.insert(dict.fromkeys(fields)).sql()
    with __exception_wrapper__:  # the driver's errors as peewee's
        db.cursor().executemany(sql, rows)


class Prepared:
    """A peewee query whose SQL is built once per database, then only run.

    Building a query costs 0.1-0.4 ms on this hardware, several times what
    running it costs on SQLite, so the statements every simulator request
    runs are kept compiled. `build(*params)` must bind each parameter once,
    in order; the first call checks that it does.
    """

    def __init__(self, build):
        self.build = build
        self.compiled = weakref.WeakKeyDictionary()  # database -> SQL

    def __call__(self, *params):
        sql = self.compiled.get(db.obj)
        if sql is None:
            sql, bound = self.build(*params).sql()
            if list(bound) != list(params):
                raise TypeError('query binds %r, not %r' % (bound, params))
            self.compiled[db.obj] = sql
        return db.execute_sql(sql, params)


def _query_params(query):
    """URL query parameters as Python values (`?max_connections=8`)."""
    params = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if re.fullmatch(r'-?\d+', value):
            value = int(value)
        elif re.fullmatch(r'-?\d+\.\d*', value):
            value = float(value)
        elif value.lower() in ('true', 'false'):
            value = value.lower() == 'true'
        params[key] = value
    return params


# What a DATABASE_URL may set in its query string, per scheme.
URL_OPTIONS = {
    'sqlite': {'synchronous', 'max_connections', 'stale_timeout', 'timeout'},
    'mysql': {'max_connections', 'stale_timeout', 'timeout', 'connect_timeout',
              'read_timeout', 'write_timeout'},
}


def make_database(url):
    """A peewee database for `url`: sqlite:///path or mysql://u:p@host/name."""
    parsed = urlparse(url)
    params = _query_params(parsed.query)
    allowed = URL_OPTIONS.get('mysql' if parsed.scheme == 'mariadb'
                              else parsed.scheme, set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError('DATABASE_URL option(s) %s not understood; %s URLs '
                         'take %s' % (', '.join(unknown), parsed.scheme,
                                      ', '.join(sorted(allowed)) or 'none'))
    if parsed.scheme == 'sqlite':
        path = unquote(parsed.path[1:]) or ':memory:'
        options = dict(
            # WAL lets readers run beside the writer. With synchronous=NORMAL
            # a commit survives the process being killed, not a power cut;
            # ?synchronous=full in the URL buys that too, at ~0.8 ms a write.
            pragmas={'journal_mode': 'wal',
                     'synchronous': params.pop('synchronous', 'normal'),
                     'foreign_keys': 1, 'busy_timeout': 2000},
            # Take the write lock when a transaction starts, so two writers
            # queue on the busy timeout instead of one failing on upgrade.
            lock_type='IMMEDIATE',
            # Pooled connections move between waitress's threads.
            check_same_thread=False,
            max_connections=64, stale_timeout=3600)
        options.update(params)
        return PooledSqliteDatabase(path, **options)
    if parsed.scheme in ('mysql', 'mariadb'):
        options = dict(
            host=parsed.hostname or '127.0.0.1', port=parsed.port or 3306,
            user=unquote(parsed.username or 'root'),
            password=unquote(parsed.password or ''),
            charset='utf8mb4',
            # Fail fast when the server is down or hung rather than letting a
            # request outlive the simulator's 300 ms.
            connect_timeout=2, read_timeout=10, write_timeout=10,
            # Pool: opening a connection costs tens of milliseconds; waiting
            # for a free one longer than this would miss the deadline anyway.
            max_connections=16, stale_timeout=600, timeout=0.15)
        options.update(params)
        return MySQLPool(unquote(parsed.path[1:]), **options)
    raise ValueError('DATABASE_URL must start with sqlite:/// or mysql://, '
                     'not %r' % url.split(':', 1)[0])


class WalCheckpointer(threading.Thread):
    """Copies SQLite's write-ahead log into the database file, 10 times a second.

    SQLite does it inside a commit, every 1000 pages: that made every ~250th
    simulator write wait ~15 ms. Done here, beside the requests (PASSIVE
    never blocks them), the checkpoint a commit still runs finds almost
    nothing left to copy.
    """

    def __init__(self, path, interval=0.1):
        super().__init__(name='sqlite-wal-checkpoint', daemon=True)
        self.path, self.interval = path, interval
        self.stopped = threading.Event()

    def run(self):
        conn = None
        while not self.stopped.wait(self.interval):
            try:
                if conn is None:
                    # mode=rw: creating the file is the apps' job, not this.
                    conn = sqlite3.connect('file:%s?mode=rw' % quote(self.path),
                                           uri=True, timeout=0,
                                           isolation_level=None)
                    # Otherwise a file this creates is not in WAL mode and
                    # the checkpoints below do nothing.
                    conn.execute('PRAGMA journal_mode=wal')
                conn.execute('PRAGMA wal_checkpoint(PASSIVE)')
            except sqlite3.Error:
                pass  # busy, or not created yet: next time
        if conn is not None:
            conn.close()

    def stop(self):
        self.stopped.set()


class MySQLPool(PooledMySQLDatabase):
    """peewee's MySQL pool without its ROLLBACK at every check-in.

    peewee cannot tell whether a PyMySQL connection is inside a transaction,
    so it rolls back every connection it takes back: a round trip per
    request. The server says so in every answer (server_status).
    """

    def _can_reuse(self, conn):
        if conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS:
            try:
                conn.rollback()
            except Exception:
                return False
        return True


_checkpointer = None
_schema_lock = threading.Lock()
_schema_ready = False


def configure(url=None):
    """Point the models at DATABASE_URL (or `url`); connects lazily."""
    global _checkpointer, _schema_ready
    url = url or os.environ.get('DATABASE_URL') or DEFAULT_DATABASE_URL
    if db.obj is not None:
        db.obj.close_all()
    if _checkpointer is not None:
        _checkpointer.stop()
        _checkpointer = None
    database = make_database(url)
    db.initialize(database)
    if isinstance(database, PooledSqliteDatabase) and \
            database.database != ':memory:':
        _checkpointer = WalCheckpointer(database.database)
        _checkpointer.start()
    _schema_ready = False
    return database


def schema_statements(path=SCHEMA_FILE):
    """The statements of schema.sql, without its comment lines."""
    with open(path, encoding='utf-8') as f:
        text = '\n'.join(line for line in f
                         if not line.lstrip().startswith('--'))
    return [s.strip() for s in text.split(';') if s.strip()]


def create_schema():
    """Run schema.sql: creates what is missing, touches nothing else."""
    global _schema_ready
    with _schema_lock:
        if _schema_ready:
            return
        with db.connection_context():
            for statement in schema_statements():
                try:
                    db.execute_sql(statement)
                except IntegrityError:
                    pass  # another process seeded `latest` first
        _schema_ready = True


def is_mysql():
    return isinstance(db.obj, PooledMySQLDatabase)


class connection:
    """A connection for one request, with the schema ensured.

    Use as a context manager around a request's work; it makes a database
    that was unreachable at start-up usable as soon as it comes back.
    A MySQL connection goes back to the pool afterwards (and is pinged when
    it comes out again); an SQLite one stays with its thread for the next
    request: checking it in and out cost a fifth of a simulator request.
    """

    def __enter__(self):
        if not _schema_ready:
            create_schema()
        db.connect(reuse_if_open=True)
        return db

    def __exit__(self, *exc):
        if is_mysql() and not db.is_closed():
            db.close()
