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
import weakref
from urllib.parse import parse_qsl, quote, unquote, urlparse

from peewee import (
    JOIN,
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
    Select,
    TextField,
    Value,
    __exception_wrapper__,
    fn,
)
from playhouse.pool import MaxConnectionsExceeded, PooledMySQLDatabase, PooledSqliteDatabase
from pymysql.constants import SERVER_STATUS

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
        return cls._from_row(row) if row else None

    @classmethod
    def by_id(cls, user_id):
        """The user with id `user_id`, or None."""
        row = _user_by_id(user_id).fetchone()
        return cls._from_row(row) if row else None

    @classmethod
    def by_names(cls, first, second):
        """{name: User} for whichever of the two names exist, in one query."""
        users = map(cls._from_row, _users_by_names(first, second).fetchall())
        return {user.username: user for user in users}

    @classmethod
    def _from_row(cls, row):
        return cls(**dict(zip(cls._meta.sorted_field_names, row, strict=True)))

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

    @staticmethod
    def post_as(username, text):
        """Record a message by the user called `username`, dated now, without
        looking the user up first; False when there is no such user."""
        return _post_as(text, int(time.time()), False, username).rowcount == 1

    # --- the web UI's pages --------------------------------------------------

    @classmethod
    def profile(cls, username, viewer_id=None):
        """The user called exactly `username`, or None; `.followed` says
        whether the user `viewer_id` follows them.

        One query, so that a profile page costs at most two small ones
        besides its messages: this and the signed-in user.
        """
        followed = Follower.select(Follower.id).where(
            (Follower.who == viewer_id) & (Follower.whom == cls.user_id))
        return (cls.select(cls, fn.EXISTS(followed).alias('followed'))
                .where(cls.username == username).first())

    def timeline(self, before=None, size=30):
        """A page of this user's home timeline: their messages and those of
        the users they follow (see Message.page for `before` and `size`).

        The page is found from the authors' side, one index range per
        author (the authors come first by CROSS JOIN, which SQLite never
        reorders). Left to choose, both databases walk the whole timeline
        newest first looking for these authors: fine for a user who follows
        many active people, a full index scan for one who follows nobody.
        The cost here grows with what the authors wrote, not with the table.
        UNION, not UNION ALL, so that a user who follows themself (the API
        allows it) does not see their messages twice.
        """
        authors = (Select(columns=[Value(self.user_id).alias('author')]) |
                   Follower.select(Follower.whom.alias('author'))
                   .where(Follower.who == self.user_id)).alias('authors')
        ids = (Message.select(Message.message_id).from_(authors)
               .join(Message, JOIN.CROSS)
               .where(Message.author == authors.c.author))
        return Message.page(ids, before, size)


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

    @classmethod
    def page(cls, ids, before=None, size=30):
        """A page of a timeline: the `size` newest visible messages among
        `ids` (a query of message ids) that come after `before`, a
        (pub_date, message_id) of an earlier page, as rows of message_id,
        text, pub_date and the author's username and email.

        Keyed on the last message seen, not an offset, so that page 100 is
        one index range like page 1. The ids are picked from the index alone,
        and only those rows are read: asked for whole rows in one go,
        MariaDB walks the index from the newest message down to `before`.
        "After (x, y)" is spelled `pub_date <= x AND (pub_date < x OR
        message_id < y)`: both databases make the first term an index range,
        which neither does for the row value (pub_date, message_id) < (x, y),
        and SQLite does not find it in `pub_date < x OR (pub_date = x AND
        ...)` when x is a bound parameter.
        """
        ids = ids.where(cls.flagged == False)  # noqa: E712 (SQL, not Python)
        if before is not None:
            pub_date, message_id = before
            ids = ids.where((cls.pub_date <= pub_date) &
                            ((cls.pub_date < pub_date) |
                             (cls.message_id < message_id)))
        page = (ids.order_by(cls.pub_date.desc(), cls.message_id.desc())
                .limit(size).alias('page'))
        # Plain rows of what a page shows: building model instances (and
        # reading every author's password hash) cost more than the query.
        return (cls.select(cls.message_id, cls.text, cls.pub_date,
                           User.username, User.email).from_(page)
                .join(cls, JOIN.CROSS)
                .join(User, on=(cls.author == User.user_id))
                .where(cls.message_id == page.c.message_id)
                .order_by(cls.pub_date.desc(), cls.message_id.desc())
                .namedtuples())

    @classmethod
    def public_timeline(cls, before=None, size=30):
        """A page of everybody's messages (see `page`)."""
        return cls.page(cls.select(cls.message_id), before, size)

    @classmethod
    def user_timeline(cls, user_id, before=None, size=30):
        """A page of the messages of the user `user_id` (see `page`)."""
        return cls.page(cls.select(cls.message_id)
                        .where(cls.author == user_id), before, size)


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


_user_by_name = Prepared(lambda name: User.select().where(User.username == name))
_user_by_id = Prepared(lambda user_id: User.select().where(
    User.user_id == user_id))
_users_by_names = Prepared(lambda first, second: User.select().where(
    User.username.in_([first, second])))
_post = Prepared(lambda author, text, pub_date, flagged: Message.insert(
    author=author, text=text, pub_date=pub_date, flagged=flagged))
_post_as = Prepared(lambda text, pub_date, flagged, username: Message.insert_from(
    User.select(User.user_id, Value(text), Value(pub_date), Value(flagged))
    .where(User.username == username),
    [Message.author, Message.text, Message.pub_date, Message.flagged]))


def _insert_follow(who, whom):
    """One follower row; nothing more when the pair is there already."""
    query = Follower.insert(who=who, whom=whom)
    if is_mysql():
        # INSERT IGNORE share-locks a duplicate and then wants it exclusively:
        # clients following one pair at once deadlock on InnoDB. Updating
        # the duplicate locks it exclusively at once, so they queue instead.
        return query.on_conflict(update={Follower.who: Follower.who})
    return query.on_conflict_ignore()


_follow = Prepared(_insert_follow)
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


__all__ = ['db', 'User', 'Message', 'Follower', 'Latest', 'MODELS',
           'configure', 'create_schema', 'connection', 'make_database',
           'IntegrityError', 'DatabaseError', 'UNAVAILABLE_ERRORS']
