"""MiniTwit's data: users, messages, follows and the simulator's `latest`,
their queries as model methods, and what the apps accept as input.

Both apps and every tool share them. How they reach the database
(DATABASE_URL, the pools, the schema) is database/. The tables are created
from schema.sql, which tests/test_schema.py keeps in step with the models.
"""
import time

from peewee import (
    JOIN,
    SQL,
    AutoField,
    BigIntegerField,
    BooleanField,
    Case,
    CharField,
    CompositeKey,
    ForeignKeyField,
    IntegerField,
    Model,
    Select,
    TextField,
    Value,
    fn,
)

import database
import passwords
from database import db, is_mysql
from database.compiled import compiled


def upsert(query, target, **action):
    """The INSERT `query`, updating the row it meets instead (`update=` or
    `preserve=`): MySQL takes no conflict target, SQLite needs `target`."""
    if is_mysql():
        return query.on_conflict(**action)
    return query.on_conflict(conflict_target=target, **action)


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

    @compiled(one=True)
    def by_name(cls, username):
        """The user called exactly `username`, or None."""
        return cls.select().where(cls.username == username)

    @classmethod
    def by_names(cls, *names):
        """{name: User} of those of `names` that exist, in one query."""
        return {user.username: user
                for user in cls.select().where(cls.username.in_(names))}

    @classmethod
    def register(cls, username, email, pw_hash):
        """Create a user: the new User; IntegrityError when the name is
        taken. It takes the hash, so that the slow part never holds the
        write lock."""
        database.transaction(cls.new.statement(username, email, pw_hash))
        return cls.by_name(username)

    @compiled
    def new(cls, username, email, pw_hash):
        return cls.insert(username=username, email=email, pw_hash=pw_hash)

    @compiled(one=True)
    def profile(cls, username, viewer_id=None):
        """The user called exactly `username`, or None; `.followed` says
        whether the user `viewer_id` follows them (one query for both)."""
        followed = Follower.select().where((Follower.who == viewer_id) &
                                           (Follower.whom == cls.user_id))
        return (cls.select(cls, fn.EXISTS(followed).alias('followed'))
                .where(cls.username == username))

    def check_password(self, password):
        """Whether `password` is right; upgrades an old hash when it is."""
        ok, stale = passwords.verify_password(self.pw_hash, password)
        if ok and stale:
            self.pw_hash = passwords.hash_password(password)
            database.transaction(User.rehash.statement(self.pw_hash,
                                                       self.user_id))
        return ok

    @compiled
    def rehash(cls, pw_hash, user_id):
        return cls.update(pw_hash=pw_hash).where(cls.user_id == user_id)

    def following(self):
        """The users this user follows, in the order they were followed."""
        return (User.select()
                .join(Follower, on=(Follower.whom == User.user_id))
                .where(Follower.who == self.user_id)
                .order_by(Follower.id))

    def post(self, text):
        """Record a message by this user, dated now."""
        database.transaction(Message.post.statement(self.username, text,
                                                    int(time.time())))

    def follow(self, other):
        database.transaction(Follower.follow.statement(self.username,
                                                       other.username))

    def unfollow(self, other):
        database.transaction(Follower.unfollow.statement(self.username,
                                                         other.username))

    def timeline(self, before=None, size=30):
        """A page of this user's home timeline (Message.home_timeline)."""
        return Message.home_timeline(self.user_id, before, size)


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

    @compiled
    def post(cls, username, text, pub_date):
        """Record a message by the user called `username`: 1, or 0 when
        there is no such user (one statement, no lookup)."""
        author = User.select(User.user_id, Value(text), Value(pub_date),
                             Value(False)).where(User.username == username)
        return cls.insert_from(author, [cls.author, cls.text, cls.pub_date,
                                        cls.flagged])

    @classmethod
    def visible(cls):
        """Unflagged messages with their authors, newest first; ties on
        pub_date (whole seconds) in the order they were stored."""
        return (cls.select(cls, User)
                .join(User, on=(cls.author == User.user_id))
                .where(cls.flagged == False)  # noqa: E712 (SQL, not Python)
                .order_by(cls.pub_date.desc(), cls.message_id.desc()))

    @compiled
    def newest(cls, size, author_id=None):
        """(text, pub_date, username) of the `size` newest visible
        messages, everybody's or those of the user `author_id`."""
        query = cls.visible().select(cls.text, cls.pub_date, User.username)
        if author_id is not None:
            query = query.where(cls.author == author_id)
        return query.limit(size)

    @classmethod
    def page(cls, ids, before=None, size=30):
        """A page of a timeline: the `size` newest visible messages among
        `ids` (a query of message ids) after `before`, the (pub_date,
        message_id) of an earlier page's last, as rows with message_id,
        text, pub_date and the author's username and email.

        Keyed on the last message seen, not an offset: page 100 is one index
        range like page 1. The ids come from the index alone, and only their
        rows are read (asked for whole rows, MariaDB walks the index from
        the newest message down to `before`). "After (x, y)" is `pub_date <=
        x AND (pub_date < x OR message_id < y)`: both databases make the
        first term an index range, which neither does for the row value."""
        ids = ids.where(cls.flagged == False)  # noqa: E712 (SQL, not Python)
        if before is not None:
            pub_date, message_id = before
            ids = ids.where((cls.pub_date <= pub_date) &
                            ((cls.pub_date < pub_date) |
                             (cls.message_id < message_id)))
        page = (ids.order_by(cls.pub_date.desc(), cls.message_id.desc())
                .limit(size).alias('page'))
        return (cls.select(cls.message_id, cls.text, cls.pub_date,
                           User.username, User.email).from_(page)
                .join(cls, JOIN.CROSS)
                .join(User, on=(cls.author == User.user_id))
                .where(cls.message_id == page.c.message_id)
                .order_by(cls.pub_date.desc(), cls.message_id.desc()))

    @compiled
    def public_timeline(cls, before=None, size=30):
        """A page of everybody's messages (see `page`)."""
        return cls.page(cls.select(cls.message_id), before, size)

    @compiled
    def user_timeline(cls, user_id, before=None, size=30):
        """A page of the messages of the user `user_id` (see `page`)."""
        return cls.page(cls.select(cls.message_id).where(cls.author == user_id),
                        before, size)

    @compiled
    def home_timeline(cls, user_id, before=None, size=30):
        """A page of the messages of the user `user_id` and of those they
        follow.

        Found from the authors' side, one index range per author (CROSS
        JOIN: SQLite never reorders it). Left to choose, both databases
        walk the whole timeline newest first looking for these authors: a
        full index scan for one who follows nobody. UNION, not UNION ALL:
        a user who follows themself (the API allows it) sees each message
        once."""
        authors = (Select(columns=[Value(user_id).alias('author')]) |
                   Follower.select(Follower.whom.alias('author'))
                   .where(Follower.who == user_id)).alias('authors')
        return cls.page(cls.select(cls.message_id).from_(authors)
                        .join(cls, JOIN.CROSS)
                        .where(cls.author == authors.c.author), before, size)


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

    @compiled
    def follow(cls, who, whom):
        """The user called `who` follows the one called `whom`: 1, followed
        now or already, or 0 when either does not exist (no lookup).

        The duplicate is updated to what it holds, not ignored: on SQLite
        an ignored row counts 0, and on InnoDB INSERT IGNORE share-locks a
        duplicate and then wants it exclusively, so that two clients
        following one pair at once deadlock. (MySQL counts the row because
        the connections ask for FOUND_ROWS: database/.)"""
        followed = User.alias('followed')
        pair = (User.select(User.user_id, followed.user_id)
                .join(followed, JOIN.CROSS)
                .where((User.username == who) & (followed.username == whom)))
        return upsert(cls.insert_from(pair, [cls.who, cls.whom]),
                      [cls.who, cls.whom], update={cls.who: cls.who})

    @compiled
    def unfollow(cls, who, whom):
        """`who` no longer follows `whom` (names): 1, or 0 when the pair
        was not followed or either user does not exist."""
        def user_id(name):
            return User.select(User.user_id).where(User.username == name)
        return cls.delete().where((cls.who == user_id(who)) &
                                  (cls.whom == user_id(whom)))


class Latest(BaseModel):
    """The id of the last simulator action processed.

    In the database, not a process, so that it survives restarts and every
    process and host agrees. On a Galera cluster each node's processes
    write a row of their own (database/: `latest_row`), since one row
    written on two nodes is a certification failure; the latest is the
    highest, as the simulator's ids only grow. Row 1 holds -1 from the
    start: a fresh database answers -1."""
    id = IntegerField(primary_key=True)
    value = BigIntegerField()

    class Meta:
        table_name = 'latest'

    @classmethod
    def get_value(cls):
        value = cls.select(fn.MAX(cls.value)).scalar()
        return -1 if value is None else value

    @compiled
    def set_value(cls, value):
        return upsert(cls.insert(id=db.obj.latest_row, value=value), [cls.id],
                      preserve=[cls.value])

    @classmethod
    def reset(cls):
        """Forget every process's latest: -1 again."""
        cls.update(value=-1).execute()


class TweetKey(BaseModel):
    """A simulator tweet stored: the request's `latest` and its author.

    The idempotency key of POST /msgs/<user>: stored in the message's own
    transaction, so that a tweet sent again with the same `latest` (a retry
    after a 503 whose commit did reach the disk) fails on this primary key
    and stores nothing twice. A tweet without `latest` has no key."""
    latest = BigIntegerField()
    author_id = IntegerField()  # no foreign key: see schema.sql

    class Meta:
        table_name = 'tweet_key'
        primary_key = CompositeKey('latest', 'author_id')

    @compiled
    def claim(cls, latest, username):
        """Store the key of `username`'s tweet sent with `latest`, before
        the message; IntegrityError when that tweet was stored already."""
        author = User.select(Value(latest), User.user_id).where(
            User.username == username)
        return cls.insert_from(author, [cls.latest, cls.author_id])


class RowCount(BaseModel):
    """How many rows `user`, `message` and `follower` hold, kept by
    schema.sql's triggers in 64 shards a table (writers on other Galera
    nodes rarely meet on one row): /metrics reads these at any size."""
    tbl = CharField(max_length=16)
    shard = IntegerField()
    n = BigIntegerField()

    class Meta:
        table_name = 'row_count'
        primary_key = CompositeKey('tbl', 'shard')

    @classmethod
    def totals(cls):
        """{'users': N, 'messages': N, 'follows': N}."""
        rows = cls.select(cls.tbl, fn.SUM(cls.n)).group_by(cls.tbl).tuples()
        return {tbl: int(n) for tbl, n in rows}


class Session(BaseModel):
    """How many times a user has signed out: a session cookie names the
    count it was issued under and is good while that is still the count,
    so signing out ends every session issued before, on every browser.
    A user who never signed out has no row: 0."""
    user_id = IntegerField(primary_key=True)
    generation = IntegerField()

    class Meta:
        table_name = 'user_session'

    @classmethod
    def user(cls, user_id):
        """(User, generation) of the user `user_id`, or (None, None)."""
        user = cls.signed_in(user_id)
        return (user, user.generation) if user else (None, None)

    @compiled(one=True)
    def signed_in(cls, user_id):
        """The User `user_id` with `.generation`, in one query, or None."""
        return (User.select(User, fn.COALESCE(cls.generation, SQL('0'))
                            .alias('generation'))
                .join(cls, JOIN.LEFT_OUTER, on=(cls.user_id == User.user_id))
                .where(User.user_id == user_id))

    @compiled
    def end_all(cls, user_id):
        """End every session of the user `user_id`."""
        return upsert(cls.insert(user_id=user_id, generation=1), [cls.user_id],
                      update={cls.generation: cls.generation + 1})


class SignInFailure(BaseModel):
    """Failed sign-ins of one user name or one client address (`subject`,
    'name:' or 'addr:' and a hash) since `since`, a window of WINDOW
    seconds. In the database, so that every process and host counts
    together."""
    subject = CharField(max_length=80, primary_key=True)
    failures = IntegerField()
    since = BigIntegerField()

    WINDOW = 60

    class Meta:
        table_name = 'sign_in_failure'
        # Windows that are over are an index range, for add() to remove.
        indexes = ((('since',), False),)

    @classmethod
    def wait(cls, limits, now=None):
        """How many seconds until `limits` ({subject: most failures}) allow
        another try: 0 when they do now."""
        now = time.time() if now is None else now
        rows = cls.select().where(cls.subject.in_(list(limits)))
        return max([0] + [int(row.since + cls.WINDOW - now) + 1 for row in rows
                          if row.failures >= limits[row.subject] and
                          row.since + cls.WINDOW > now])

    @classmethod
    def add(cls, subjects, now=None):
        """Count a failure of each of `subjects`: one more in the current
        window, or the first of a new one. Windows that are over go, so
        that guessing many names leaves no rows behind."""
        now = int(time.time() if now is None else now)
        database.transaction(cls.expire.statement(now - cls.WINDOW), *(
            cls.count.statement(subject, now, now - cls.WINDOW)
            for subject in subjects))

    @compiled
    def expire(cls, start):
        return cls.delete().where(cls.since <= start)

    @compiled
    def count(cls, subject, now, start):
        # MySQL sets these in order, so `failures` is decided on the
        # window as it was, before `since` moves.
        current = cls.since > start
        return upsert(cls.insert(subject=subject, failures=1, since=now),
                      [cls.subject],
                      update={cls.failures: Case(None, [(current, cls.failures + 1)], 1),
                              cls.since: Case(None, [(current, cls.since)], now)})

    @compiled
    def clear(cls, subject):
        return cls.delete().where(cls.subject == subject)


MODELS = (User, Message, Follower, Latest, TweetKey, Session, SignInFailure,
          RowCount)


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
