"""MiniTwit's data: users, messages, follows and the simulator's `latest`.

Both apps and every script share these models. The database is chosen by
DATABASE_URL: an embedded SQLite file by default, MySQL/MariaDB (PyMySQL,
utf8mb4, a connection pool) in production. The tables themselves are
created from schema.sql, which tests/test_schema.py keeps in step with the
models below.
"""
import os
import re
import sqlite3
import threading
import time
from urllib.parse import parse_qsl, quote, unquote, urlparse

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseError,
    DatabaseProxy,
    ForeignKeyField,
    IntegerField,
    IntegrityError,
    InterfaceError,
    Model,
    OperationalError,
    TextField,
)
from playhouse.pool import MaxConnectionsExceeded, PooledMySQLDatabase, PooledSqliteDatabase

import passwords

DEFAULT_DATABASE_URL = 'sqlite:///minitwit.db'
SCHEMA_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'schema.sql')

# What a request may hit when the database is down, restarting or saturated:
# the apps answer 503 for these instead of 500.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, MaxConnectionsExceeded)

db = DatabaseProxy()


class BaseModel(Model):
    class Meta:
        database = db
        legacy_table_names = False


class User(BaseModel):
    user_id = AutoField()
    username = CharField(max_length=255, unique=True)
    email = CharField(max_length=255)
    pw_hash = CharField(max_length=255)

    class Meta:
        table_name = 'user'

    @classmethod
    def by_name(cls, username):
        """The user called exactly `username`, or None."""
        row = _user_by_name(username).fetchone()
        return cls(**dict(zip(cls._meta.sorted_field_names, row, strict=True))) \
            if row else None

    @classmethod
    def register(cls, username, email, pw_hash):
        """Create a user; raises IntegrityError when the name is taken.

        It takes the hash, not the password, so that callers hash before
        they open a transaction: the slow part never holds the write lock.
        """
        return cls.create(username=username, email=email, pw_hash=pw_hash)

    def check_password(self, password):
        """Whether `password` is right; upgrades an old hash when it is."""
        ok, stale = passwords.verify_password(self.pw_hash, password)
        if ok and stale:
            new_hash = passwords.hash_password(password)
            with db.atomic():
                (User.update(pw_hash=new_hash)
                 .where(User.user_id == self.user_id).execute())
            self.pw_hash = new_hash
        return ok

    def following(self):
        """The users this user follows, in the order they were followed."""
        return (User.select()
                .join(Follower, on=(Follower.whom == User.user_id))
                .where(Follower.who == self.user_id)
                .order_by(Follower.id))

    def is_following(self, other):
        """Whether this user follows `other`."""
        return (Follower.select()
                .where((Follower.who == self.user_id) &
                       (Follower.whom == other.user_id))
                .exists())

    # The writes below are single statements, atomic on their own; callers
    # wrap them in db.atomic() when something must commit with them.

    def follow(self, other):
        """Follow `other`; following twice keeps one row."""
        _follow(self.user_id, other.user_id)

    def unfollow(self, other):
        """Stop following `other`; a pair that is not followed is fine."""
        _unfollow(self.user_id, other.user_id)

    def post(self, text):
        """Record a message by this user, dated now; returns its id."""
        return _post(self.user_id, text, int(time.time()), False).lastrowid



class Message(BaseModel):
    message_id = AutoField()
    # No index of its own: (author_id, flagged, ...) below starts with it.
    author = ForeignKeyField(User, column_name='author_id', field='user_id',
                             backref='messages', index=False)
    text = TextField()
    pub_date = IntegerField()
    flagged = BooleanField(default=False)

    class Meta:
        table_name = 'message'
        # Timelines read unflagged messages newest first, everybody's or one
        # author's: both orders are an index range, whatever the table size.
        indexes = (
            (('flagged', 'pub_date', 'message_id'), False),
            (('author', 'flagged', 'pub_date', 'message_id'), False),
        )

    @classmethod
    def visible(cls):
        """Unflagged messages with their authors, newest first.

        Ties on pub_date (one-second resolution) fall back to insertion order.
        """
        return (cls.select(cls, User)
                .join(User, on=(cls.author == User.user_id))
                .where(cls.flagged == False)  # noqa: E712 (SQL, not Python)
                .order_by(cls.pub_date.desc(), cls.message_id.desc()))


class Follower(BaseModel):
    id = AutoField()
    # who_id needs no index of its own: the unique (who_id, whom_id) starts
    # with it. whom_id gets one (follower_whom_id) for "who follows X".
    who = ForeignKeyField(User, column_name='who_id', field='user_id',
                          index=False)
    whom = ForeignKeyField(User, column_name='whom_id', field='user_id')

    class Meta:
        table_name = 'follower'
        indexes = (
            (('who', 'whom'), True),
        )


class Latest(BaseModel):
    """The id of the last simulator action processed: one row, id 1.

    It lives in the database, not in a process, so that it survives restarts
    and every process and host agrees on it.
    """
    id = IntegerField(primary_key=True)
    value = BigIntegerField()

    class Meta:
        table_name = 'latest'

    @classmethod
    def get_value(cls):
        row = cls.select(cls.value).where(cls.id == 1).tuples().first()
        return row[0] if row else -1

    @classmethod
    def set_value(cls, value):
        """Store `value`; call it inside the action's own transaction."""
        _set_latest(value, 1)


MODELS = (User, Message, Follower, Latest)


class Prepared:
    """A peewee query whose SQL is built once per database, then only run.

    Building a query costs 0.1-0.4 ms on this hardware, several times what
    running it costs on SQLite, so the statements every simulator request
    runs are kept compiled. `build(*params)` must bind each parameter once,
    in order; the first call checks that it does.
    """

    def __init__(self, build):
        self.build = build
        self.compiled = {}

    def __call__(self, *params):
        sql = self.compiled.get(db.obj)
        if sql is None:
            sql, bound = self.build(*params).sql()
            if list(bound) != list(params):
                raise TypeError('query binds %r, not %r' % (bound, params))
            self.compiled[db.obj] = sql
        return db.execute_sql(sql, params)


_user_by_name = Prepared(lambda name: User.select().where(User.username == name))
_post = Prepared(lambda author, text, pub_date, flagged: Message.insert(
    author=author, text=text, pub_date=pub_date, flagged=flagged))
_follow = Prepared(lambda who, whom: Follower.insert(
    who=who, whom=whom).on_conflict_ignore())
_unfollow = Prepared(lambda who, whom: Follower.delete().where(
    (Follower.who == who) & (Follower.whom == whom)))
_set_latest = Prepared(lambda value, row_id: Latest.update(
    value=value).where(Latest.id == row_id))


# --- what the apps accept ----------------------------------------------------

MAX_USERNAME = 100
MAX_EMAIL = 254
MAX_PASSWORD = 1024
MAX_MESSAGE = 1000


def unusable_text(value):
    """Whether a string holds what no column should: NUL or lone surrogates
    (JSON's \\ud800 decodes to one and cannot be stored as UTF-8)."""
    if '\x00' in value:
        return True
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        return True
    return False


def registration_error(username, email, password):
    """What is wrong with a sign-up, in the original's words, or None.

    Shared by the API and the web form; whether the name is free is the
    database's to say (the unique index), so it is not checked here.
    """
    fields = (username, email, password)
    if not isinstance(username, str) or not username.strip():
        return 'You have to enter a username'
    elif not isinstance(email, str) or '@' not in email:
        return 'You have to enter a valid email address'
    elif not isinstance(password, str) or not password:
        return 'You have to enter a password'
    elif any(unusable_text(f) for f in fields):
        return 'Names, addresses and passwords cannot contain NUL or ' \
               'unpaired surrogate characters'
    elif len(username) > MAX_USERNAME:
        return 'The username can be at most %d characters' % MAX_USERNAME
    elif len(email) > MAX_EMAIL:
        return 'The email address can be at most %d characters' % MAX_EMAIL
    elif len(password) > MAX_PASSWORD:
        return 'The password can be at most %d characters' % MAX_PASSWORD
    return None


def message_error(text):
    """What is wrong with a message's text, or None."""
    if not isinstance(text, str) or not text.strip():
        return 'You have to enter a message'
    elif unusable_text(text):
        return 'A message cannot contain NUL or unpaired surrogate characters'
    elif len(text) > MAX_MESSAGE:
        return 'A message can be at most %d characters' % MAX_MESSAGE
    return None


# --- connecting ------------------------------------------------------------

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


def make_database(url):
    """A peewee database for `url`: sqlite:///path or mysql://u:p@host/name."""
    parsed = urlparse(url)
    params = _query_params(parsed.query)
    if parsed.scheme == 'sqlite':
        path = unquote(parsed.path[1:]) or ':memory:'
        options = dict(
            # WAL lets readers run beside the writer; synchronous=FULL makes
            # every acknowledged commit survive a power cut, not only a crash.
            pragmas={'journal_mode': 'wal', 'synchronous': 'normal',
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
        return PooledMySQLDatabase(unquote(parsed.path[1:]), **options)
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
    """A pooled connection for one request, with the schema ensured.

    Use as a context manager around a request's work; it makes a database
    that was unreachable at start-up usable as soon as it comes back.
    """

    def __enter__(self):
        if not _schema_ready:
            create_schema()
        db.connect(reuse_if_open=True)
        return db

    def __exit__(self, *exc):
        if not db.is_closed():
            db.close()


__all__ = ['db', 'User', 'Message', 'Follower', 'Latest', 'MODELS',
           'configure', 'create_schema', 'connection', 'make_database',
           'IntegrityError', 'DatabaseError', 'UNAVAILABLE_ERRORS']
