"""How MiniTwit reaches its database: the plumbing under models.py.

DATABASE_URL chooses it: an embedded SQLite file by default
(sqlite:///minitwit.db), MySQL/MariaDB in production
(mysql://user:password@host:3306/name). This package holds what the models
and the apps use whatever the database: `configure()` (the URL), the
schema's creation from schema.sql, a connection per request
(`connection`), compiled statements (`Prepared`) and `transaction()`, which
runs several statements as one transaction. What is particular to each
database is in database/sqlite.py and database/mysql.py; the models and
their queries are in models.py.
"""
import os
import re
import sys
import threading
import weakref
from collections import namedtuple
from urllib.parse import parse_qsl, unquote, urlparse

from peewee import (
    DatabaseProxy,
    IntegrityError,
    InterfaceError,
    OperationalError,
    __exception_wrapper__,
)
from playhouse.pool import MaxConnectionsExceeded

from database import galera, mysql, sqlite
from database.galera import causal  # noqa: F401  (for the apps)

DEFAULT_DATABASE_URL = 'sqlite:///minitwit.db'
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'schema.sql')

# What a request may hit when the database is down, restarting or saturated:
# the apps answer 503 for these instead of 500.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, MaxConnectionsExceeded)

# The models are bound to this; configure() points it at a database.
db = DatabaseProxy()

# One statement of a transaction: SQL with placeholders, and its values.
Statement = namedtuple('Statement', 'sql params')


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

    def statement(self, *params):
        """The Statement, for transaction()."""
        sql = self.compiled.get(db.obj)
        if sql is None:
            sql, bound = self.build(*params).sql()
            if list(bound) != list(params):
                raise TypeError('query binds %r, not %r' % (bound, params))
            self.compiled[db.obj] = sql
        return Statement(sql, params)

    def __call__(self, *params):
        """Run it now, on its own; its cursor."""
        return db.execute_sql(*self.statement(*params))

    def rows(self, *params):
        """Run a query now, on its own; its rows, as tuples."""
        return db.obj.fetch_rows(*self.statement(*params))


def transaction(*statements):
    """Run Statements as one transaction, all or nothing, in one round trip
    on MySQL; the result of each, in order: .rowcount and .lastrowid."""
    return db.obj.run_transaction(statements)


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
URL_OPTIONS = {'sqlite': sqlite.OPTIONS, 'mysql': mysql.OPTIONS}


def make_database(url):
    """A peewee database for `url`: sqlite:///path or mysql://u:p@host/name."""
    parsed = urlparse(url)
    scheme = 'mysql' if parsed.scheme == 'mariadb' else parsed.scheme
    params = _query_params(parsed.query)
    allowed = URL_OPTIONS.get(scheme, set())
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError('DATABASE_URL option(s) %s not understood; %s URLs '
                         'take %s' % (', '.join(unknown), parsed.scheme,
                                      ', '.join(sorted(allowed)) or 'none'))
    if scheme == 'sqlite':
        return sqlite.make(unquote(parsed.path[1:]) or ':memory:', params)
    if scheme == 'mysql':
        # Not parsed.hostname: the URL may name several nodes (galera.py).
        credentials, _, hosts = parsed.netloc.rpartition('@')
        user, _, password = credentials.partition(':')
        params.update(user=unquote(user or 'root'), password=unquote(password),
                      nodes=galera.parse_nodes(hosts or '127.0.0.1'))
        return mysql.make(unquote(parsed.path[1:]), params)
    raise ValueError('DATABASE_URL must start with sqlite:/// or mysql://, '
                     'not %r' % url.split(':', 1)[0])


def status():
    """What /healthz says of the database: the node in use, and on a Galera
    cluster its size and the node's state."""
    if is_mysql():
        return db.obj.status()
    return {'node': 'SQLite %s' % db.obj.database}


def describe(database):
    """What a start-up log line says of the database (no password)."""
    if is_mysql(database):
        return database.describe()
    return 'SQLite %s' % database.database


_checkpointer = None
_schema_lock = threading.Lock()
_schema_ready = False
_configure_lock = threading.Lock()


def configure(url=None, announce=False):
    """Point the models at DATABASE_URL (or `url`); connects lazily.
    `announce`: say on stderr which database and driver (the apps do)."""
    global _checkpointer, _schema_ready
    url = url or os.environ.get('DATABASE_URL') or DEFAULT_DATABASE_URL
    if db.obj is not None:
        db.obj.close_all()
    if _checkpointer is not None:
        _checkpointer.stop()
        _checkpointer = None
    database = make_database(url)
    db.initialize(database)
    if not is_mysql(database) and database.database != ':memory:':
        _checkpointer = sqlite.WalCheckpointer(database.database)
        _checkpointer.start()
    _schema_ready = False
    if announce:
        print('minitwit: database %s' % describe(database), file=sys.stderr,
              flush=True)
    return database


def configured():
    """The database the models use: DATABASE_URL's, configured and announced
    on first use when nothing configured one. So importing an app touches
    no database; serve.py calls this at start, to say which and to refuse a
    bad URL before serving."""
    if db.obj is None:
        with _configure_lock:
            if db.obj is None:
                configure(announce=True)
    return db.obj


def schema_statements(path=SCHEMA_FILE):
    """The statements of schema.sql, without its comment lines. A statement
    ends with a line ending in ';', but for a trigger, whose body holds
    statements of its own: it ends at the line 'END;'."""
    statements, lines = [], []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.lstrip().startswith('--') or not (line.strip() or lines):
                continue
            lines.append(line.rstrip())
            trigger = lines[0].startswith('CREATE TRIGGER')
            if (lines[-1] == 'END;') if trigger else lines[-1].endswith(';'):
                statements.append('\n'.join(lines)[:-1].strip())
                lines = []
    if lines:
        raise ValueError('%s ends inside a statement: %s' % (path, lines[0]))
    return statements


# A statement of schema.sql that creates one named object if it is missing.
CREATES = re.compile(r'CREATE (?:UNIQUE )?(TABLE|INDEX|TRIGGER|VIEW) IF NOT EXISTS (\w+)')


def existing_objects():
    """{(kind, name)} of the tables, views, indexes and triggers the MySQL
    database has. On Galera every DDL statement, even a CREATE ... IF NOT
    EXISTS that changes nothing, is replicated to every node in total
    order (TOI): each stalls the cluster's writes for a moment, and a
    CREATE TRIGGER on a table other nodes are writing to can end in an
    "MDL BF-BF conflict" that hangs a node. So what exists is not sent."""
    found = set()
    for kind, query in (
            ('TABLE', 'SELECT table_name FROM information_schema.tables '
                      'WHERE table_schema = DATABASE()'),
            ('INDEX', 'SELECT index_name FROM information_schema.statistics '
                      'WHERE table_schema = DATABASE()'),
            ('TRIGGER', 'SELECT trigger_name FROM information_schema.triggers '
                        'WHERE trigger_schema = DATABASE()')):
        cursor = db.cursor()
        cursor.execute(query)
        for (name,) in cursor.fetchall():
            found.add((kind, name))
            if kind == 'TABLE':
                found.add(('VIEW', name))
    return found


def create_schema():
    """Run schema.sql: creates what is missing, touches nothing else."""
    global _schema_ready
    with _schema_lock:
        if _schema_ready:
            return
        with db.connection_context():
            existing = existing_objects() if is_mysql() else set()
            for statement in schema_statements():
                creates = CREATES.match(statement)
                if creates and creates.groups() in existing:
                    continue
                try:
                    # No parameters, so that '%' is SQL's, not a placeholder.
                    with __exception_wrapper__:
                        db.cursor().execute(statement)
                except IntegrityError:
                    pass  # another process seeded `latest` or the counts first
        _schema_ready = True


def is_mysql(database=None):
    return isinstance(database or db.obj, mysql.MySQLPool)


class connection:
    """A connection for one request, with the schema ensured.

    Use as a context manager around a request's work; it makes a database
    that was unreachable at start-up usable as soon as it comes back.
    A MySQL connection goes back to the pool afterwards; an SQLite one stays
    with its thread for the next request: checking it in and out cost a
    fifth of a simulator request.
    """

    def __enter__(self):
        configured()
        if not _schema_ready:
            create_schema()
        db.connect(reuse_if_open=True)
        return db

    def __exit__(self, *exc):
        if is_mysql() and not db.is_closed():
            db.close()
