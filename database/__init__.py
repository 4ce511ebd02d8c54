"""How MiniTwit reaches its database: DATABASE_URL, playhouse's pools, the
schema, and the one retry of a transaction.

sqlite:///minitwit.db (the default) is an embedded file; mysql://user:pw@host/name
is MariaDB or MySQL (database/mysql.py), one server or a Galera cluster.
"""
import os
import random
import sqlite3
import sys
import threading
import time
from urllib.parse import quote, unquote, urlparse

from peewee import (
    DatabaseProxy,
    IntegrityError,
    InterfaceError,
    OperationalError,
    __exception_wrapper__,
)
from playhouse import db_url
from playhouse.pool import MaxConnectionsExceeded, PooledSqliteDatabase

from database import schema
from database.mysql import (
    NOT_RUN,
    NOTHING_SENT,
    ROLLED_BACK,
    MySQLPool,
    causal,  # noqa: F401  (the apps say which requests)
    errno,
    parse_nodes,
)

DEFAULT_DATABASE_URL = 'sqlite:///minitwit.db'

# What a request may meet when the database is down, restarting or busy:
# the apps answer 503 for these instead of 500.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, MaxConnectionsExceeded)

# The models are bound to this; configure() points it at a database.
db = DatabaseProxy()

OPTIONS = {
    'sqlite': {'synchronous', 'max_connections', 'stale_timeout', 'timeout'},
    'mysql': {'max_connections', 'stale_timeout', 'timeout', 'connect_timeout',
              'read_timeout', 'write_timeout', 'driver', 'prefer', 'causal',
              'unix_socket'},
}


def transaction(*statements):
    """Run `statements`, (sql, params) each (a compiled model method's
    .statement(...)), as one transaction: their row counts. On MySQL in
    one round trip, and again, up to 8 times, when the server says none of
    it was done (a dead connection, a node not ready, a deadlock or Galera
    certification failure: then after a random pause of up to 2, 4 ... 32
    ms, so that colliding writers take turns, under 150 ms in all)."""
    database = db.obj
    if not isinstance(database, MySQLPool):
        with database.atomic():
            return [database.execute_sql(sql, params).rowcount
                    for sql, params in statements]
    for attempt in range(1, 9):
        try:
            return database.run_transaction(statements)
        except (OperationalError, InterfaceError) as error:
            code = errno(error)
            if attempt == 8 or code not in (ROLLED_BACK, NOTHING_SENT, *NOT_RUN):
                raise
            if code == ROLLED_BACK:
                time.sleep(random.uniform(0, min(0.001 * 2 ** attempt, 0.032)))
            else:
                database.manual_close()


def insert_many(fields, rows):
    """INSERT `rows` (tuples in the order of `fields`, all of one model) as
    one executemany, for bulk loads: a peewee query of a million rows
    costs more to build than the database's work."""
    sql, _ = fields[0].model.insert(dict.fromkeys(fields)).sql()
    with __exception_wrapper__:
        db.cursor().executemany(sql, rows)


class SqlitePool(PooledSqliteDatabase):
    latest_row = 1  # models.Latest's row that this process writes

    def describe(self):
        return 'SQLite %s' % self.database

    def status(self):
        return {'node': self.describe()}


def make_database(url):
    """A pooled peewee database for `url`, with MiniTwit's settings."""
    parsed = urlparse(url)
    scheme = 'mysql' if parsed.scheme == 'mariadb' else parsed.scheme
    if scheme not in OPTIONS:
        raise ValueError('DATABASE_URL must start with sqlite:/// or mysql://, '
                         'not %r' % url.split(':', 1)[0])
    # Not parsed.hostname: the URL may name several nodes.
    credentials, _, hosts = parsed.netloc.rpartition('@')
    params = db_url.parseresult_to_dict(parsed._replace(scheme=scheme, netloc=credentials + '@'),
                                        unquote_user=True, unquote_password=True)
    user, password = params.pop('user', ''), params.pop('passwd', '')
    name = unquote(params.pop('database'))
    unknown = sorted(set(params) - OPTIONS[scheme])
    if unknown:
        raise ValueError('DATABASE_URL option(s) %s not understood; %s URLs '
                         'take %s' % (', '.join(unknown), parsed.scheme,
                                      ', '.join(sorted(OPTIONS[scheme]))))
    if scheme == 'sqlite':
        return SqlitePool(
            name or ':memory:',
            # WAL: readers run beside the writer. synchronous=NORMAL: a
            # commit survives the process being killed, not a power cut
            # (?synchronous=full buys that, at ~0.8 ms a write).
            pragmas={'journal_mode': 'wal', 'foreign_keys': 1,
                     'synchronous': params.pop('synchronous', 'normal'),
                     'busy_timeout': 2000},
            # Writers take the lock at BEGIN and queue on the busy timeout,
            # instead of one failing when it upgrades a read lock.
            lock_type='IMMEDIATE', check_same_thread=False,
            **{'max_connections': 64, 'stale_timeout': 3600, **params})
    options = {
        # Fail fast when the server is down or hung, rather than outlive
        # the simulator's 300 ms. Opening a connection costs tens of ms;
        # waiting longer than `timeout` for a free one would miss the
        # deadline anyway.
        'charset': 'utf8mb4', 'write_timeout': 10,
        'max_connections': 16, 'stale_timeout': 600, 'timeout': 0.15,
        'user': user or 'root', 'password': password,
        'nodes': parse_nodes(hosts or '127.0.0.1'), **params}
    # A cluster gives up on a hung node (SIGSTOP, a dead link) as on one that
    # refuses connections, and goes on on another: within the connect
    # timeout, which is then the read timeout too, and longer than a commit
    # stalled by a busy disk.
    if len(options['nodes']) > 1:
        options.setdefault('connect_timeout', 5)
        options.setdefault('read_timeout', options['connect_timeout'])
    options.setdefault('connect_timeout', 2)
    options.setdefault('read_timeout', 10)
    return MySQLPool(name, **options)


def is_mysql(database=None):
    return isinstance(database or db.obj, MySQLPool)


def describe(database):
    """What a start-up log line says of the database (no password)."""
    return database.describe()


def status():
    """What /healthz says of the database."""
    return db.obj.status()


_checkpointer = None
_schema_ready = False
_lock = threading.Lock()


def configure(url=None, announce=False):
    """Point the models at DATABASE_URL (or `url`); connects lazily.
    `announce`: say on stderr which database and driver (the apps do)."""
    global _checkpointer, _schema_ready
    url = url or os.environ.get('DATABASE_URL') or DEFAULT_DATABASE_URL
    if db.obj is not None:
        db.obj.close_all()
    if _checkpointer is not None:
        _checkpointer.set()
    database = make_database(url)
    db.initialize(database)
    if not is_mysql(database) and database.database != ':memory:':
        _checkpointer = threading.Event()
        threading.Thread(target=checkpoint, args=(database.database,
                                                  _checkpointer),
                         name='sqlite-wal-checkpoint', daemon=True).start()
    _schema_ready = False
    if announce:
        print('minitwit: database %s' % describe(database), file=sys.stderr,
              flush=True)
    return database


def configured():
    """The database the models use: DATABASE_URL's, configured on first
    use, so that importing an app touches no database (serve.py calls this
    at start, to refuse a bad URL before serving)."""
    if db.obj is None:
        with _lock:
            if db.obj is None:
                configure(announce=True)
    return db.obj


def checkpoint(path, stopped, interval=0.1):
    """Copy SQLite's write-ahead log into the database file, 10 times a
    second, until `stopped`. SQLite does it inside a commit every 1000
    pages, which made every ~250th simulator write wait ~15 ms; here,
    beside the requests (PASSIVE never blocks them), the commit finds
    almost nothing left to copy."""
    conn = None
    while not stopped.wait(interval):
        try:
            if conn is None:
                # mode=rw: creating the file is the apps' job.
                conn = sqlite3.connect('file:%s?mode=rw' % quote(path), uri=True,
                                       timeout=0, isolation_level=None)
                conn.execute('PRAGMA journal_mode=wal')
            conn.execute('PRAGMA wal_checkpoint(PASSIVE)')
        except sqlite3.Error:
            pass  # busy, or not created yet: next time
    if conn is not None:
        conn.close()


def create_schema():
    """Run schema.sql: creates what is missing, touches nothing else."""
    global _schema_ready
    with _lock:
        if _schema_ready:
            return
        with db.connection_context():
            existing = schema.existing(db) if is_mysql() else set()
            for statement in schema.statements():
                creates = schema.CREATES.match(statement)
                if creates and creates.groups() in existing:
                    continue
                try:
                    # No parameters, so that '%' is SQL's, not a placeholder.
                    with __exception_wrapper__:
                        db.cursor().execute(statement)
                except IntegrityError:
                    pass  # another process seeded `latest` or the counts first
        _schema_ready = True


class connection:
    """A connection for one request, with the schema ensured: a database
    that was unreachable at start-up is used as soon as it is back. A
    MySQL connection goes back to the pool afterwards; an SQLite one stays
    with its thread (checking it in and out cost a fifth of a request)."""

    def __enter__(self):
        configured()
        if not _schema_ready:
            create_schema()
        db.connect(reuse_if_open=True)
        return db

    def __exit__(self, *exc):
        if is_mysql() and not db.is_closed():
            db.close()
