"""MiniTwit's data: users, messages, follows and the simulator's `latest`.

Both apps and every tool share these models and their queries, and what
the apps accept as input. How they reach the database (DATABASE_URL, the
pools, the schema) is database.py. The tables themselves are created from
schema.sql, which tests/test_schema.py keeps in step with the models below.
"""
import random
import time
from collections import namedtuple

from peewee import (
    EXCLUDED,
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

import passwords
from database import Prepared, db, is_mysql


def upsert(query, target, update):
    """The INSERT `query`, updating the row it meets instead (by the unique
    key `target`): ON DUPLICATE KEY UPDATE on MySQL, which takes no conflict
    target, ON CONFLICT (target) DO UPDATE on SQLite."""
    if is_mysql():
        return query.on_conflict(update=update)
    return query.on_conflict(conflict_target=target, update=update)


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
        rows = _user_by_name.rows(username)
        return cls._from_row(rows[0]) if rows else None

    @classmethod
    def by_names(cls, first, second):
        """{name: User} for whichever of the two names exist, in one query."""
        users = map(cls._from_row, _users_by_names.rows(first, second))
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

    # --- the simulator's writes ----------------------------------------------
    # Statements, for sim_api to run in one transaction with the request's
    # `latest` (database.transaction). Each names its users and finds them
    # itself: no request looks a user up before it writes, and whether a
    # name is taken is the unique index's to say.

    @staticmethod
    def register_statement(username, email, pw_hash):
        """Create a user; IntegrityError when the name is taken."""
        return _register.statement(username, email, pw_hash)

    @staticmethod
    def post_as_statement(username, text):
        """Record a message by the user called `username`, dated now;
        it changes no row when there is no such user."""
        return _post_as.statement(text, int(time.time()), False, username)

    @staticmethod
    def follow_statement(who, whom):
        """`who` follows `whom` (names); 1 row, followed now or already,
        or 0 when either user does not exist."""
        return _follow_by_names.statement(who, whom)

    @staticmethod
    def unfollow_statement(who, whom):
        """`who` no longer follows `whom` (names); no row changes when the
        pair was not followed or either user does not exist."""
        return _unfollow_by_names.statement(who, whom)

    # --- the web UI's pages --------------------------------------------------

    @classmethod
    def profile(cls, username, viewer_id=None):
        """The user called exactly `username`, or None; `.followed` says
        whether the user `viewer_id` follows them.

        One query, so that a profile page costs at most two small ones
        besides its messages: this and the signed-in user.
        """
        if viewer_id is None:  # a visitor follows nobody
            user = cls.by_name(username)
            if user is not None:
                user.followed = False
            return user
        rows = _profile.rows(viewer_id, username)
        if not rows:
            return None
        user = cls._from_row(rows[0][:-1])
        user.followed = bool(rows[0][-1])
        return user

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
        return _HOME.page((self.user_id, self.user_id), before, size)


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

    @staticmethod
    def newest(size, author_id=None):
        """The `size` newest visible messages, everybody's or those of the
        user `author_id`, as (text, pub_date, username) rows: what the
        simulator API lists."""
        if author_id is None:
            return _newest.rows(False, size)
        return _newest_of.rows(False, author_id, size)

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
        return _PUBLIC.page((), before, size)

    @classmethod
    def user_timeline(cls, user_id, before=None, size=30):
        """A page of the messages of the user `user_id` (see `page`)."""
        return _OWN.page((user_id,), before, size)


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
    """The id of the last simulator action processed.

    It lives in the database, not in a process, so that it survives restarts
    and every process and host agrees on it. Each process writes a row of
    its own (one of LATEST_SHARDS, picked at random when it starts), and the
    latest is the highest: were it one row, every write on one Galera node
    would collide with every write on another (a certification failure).
    The simulator's ids only grow, so the highest is the last processed.
    Row 1 holds -1 from the start: a fresh database answers -1.
    """
    id = IntegerField(primary_key=True)
    value = BigIntegerField()

    class Meta:
        table_name = 'latest'

    @classmethod
    def get_value(cls):
        value = _latest.rows()[0][0]
        return -1 if value is None else value

    @classmethod
    def set_value(cls, value):
        """Store `value` now, on its own."""
        _set_latest(LATEST_SHARD, value)

    @staticmethod
    def set_statement(value):
        """Store `value`: a statement for the action's own transaction."""
        return _set_latest.statement(LATEST_SHARD, value)

    @classmethod
    def reset(cls):
        """Forget every process's latest: -1 again."""
        cls.update(value=-1).execute()


class TweetKey(BaseModel):
    """A simulator tweet stored: the request's `latest` and its author.

    The idempotency key of POST /msgs/<user>: stored in the message's own
    transaction, so that a tweet sent again with the same `latest` (a retry
    after a 503 whose commit did reach the disk) fails on this primary key
    and stores nothing twice. A tweet without `latest` has no key.
    """
    latest = BigIntegerField()
    author_id = IntegerField()  # no foreign key: see schema.sql

    class Meta:
        table_name = 'tweet_key'
        primary_key = CompositeKey('latest', 'author_id')

    @staticmethod
    def claim_statement(latest, username):
        """Store the key of `username`'s tweet sent with `latest`: a
        statement for the tweet's own transaction, before the message's.
        IntegrityError when that tweet was stored already; no row when
        there is no such user."""
        return _claim_tweet.statement(latest, username)


class RowCount(BaseModel):
    """How many rows `user`, `message` and `follower` hold: kept current by
    schema.sql's triggers, in 64 shards a table so that concurrent writers
    rarely meet on one row. Reading them costs the same at any size."""
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
        """(User, generation) of the user `user_id`, in one query, or
        (None, None)."""
        rows = _session_user.rows(user_id)
        if not rows:
            return None, None
        return User._from_row(rows[0][:-1]), rows[0][-1]

    @classmethod
    def end_all(cls, user_id):
        """End every session of the user `user_id`."""
        upsert(cls.insert(user_id=user_id, generation=1), [cls.user_id],
               {cls.generation: cls.generation + 1}).execute()


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
        current = cls.since > now - cls.WINDOW
        cls.delete().where(~current).execute()
        for subject in subjects:
            # MySQL sets these in order, so `failures` is decided on the
            # window as it was, before `since` moves.
            upsert(cls.insert(subject=subject, failures=1, since=now),
                   [cls.subject],
                   {cls.failures: Case(None, [(current, cls.failures + 1)], 1),
                    cls.since: Case(None, [(current, cls.since)], now)}
                   ).execute()

    @classmethod
    def clear(cls, subject):
        cls.delete().where(cls.subject == subject).execute()


MODELS = (User, Message, Follower, Latest, TweetKey, Session, SignInFailure,
          RowCount)


_user_by_name = Prepared(lambda name: User.select().where(User.username == name))
_session_user = Prepared(lambda user_id: User.select(
    User, fn.COALESCE(Session.generation, SQL('0')))
    .join(Session, JOIN.LEFT_OUTER, on=(Session.user_id == User.user_id))
    .where(User.user_id == user_id))
_users_by_names = Prepared(lambda first, second: User.select().where(
    User.username.in_([first, second])))
_post = Prepared(lambda author, text, pub_date, flagged: Message.insert(
    author=author, text=text, pub_date=pub_date, flagged=flagged))
_post_as = Prepared(lambda text, pub_date, flagged, username: Message.insert_from(
    User.select(User.user_id, Value(text), Value(pub_date), Value(flagged))
    .where(User.username == username),
    [Message.author, Message.text, Message.pub_date, Message.flagged]))

_claim_tweet = Prepared(lambda latest, username: TweetKey.insert_from(
    User.select(Value(latest), User.user_id).where(User.username == username),
    [TweetKey.latest, TweetKey.author_id]))


# A user page's user, and whether the viewer follows them: building this
# query cost a page more than its two queries took to run.
_profile = Prepared(lambda viewer_id, username: User.select(
    User, fn.EXISTS(Follower.select(Follower.id).where(
        (Follower.who == viewer_id) & (Follower.whom == User.user_id))))
    .where(User.username == username))


_register = Prepared(lambda username, email, pw_hash: User.insert(
    username=username, email=email, pw_hash=pw_hash))


def _once(query):
    """An INSERT of a follower row that leaves a pair followed already as it
    is, and counts it as one row: 0 rows means there was nobody to follow.

    An update of the duplicate to what it holds, not an ignore: on SQLite an
    ignored row counts 0, and on InnoDB INSERT IGNORE share-locks a
    duplicate and then wants it exclusively, so that clients following one
    pair at once deadlock; the update locks it exclusively at once, and
    they queue instead. (MySQL counts it because the drivers connect with
    FOUND_ROWS: database/mysql.py.)
    """
    return upsert(query, [Follower.who, Follower.whom],
                  {Follower.who: Follower.who})


def _user_id(username):
    return User.select(User.user_id).where(User.username == username)


def _follow_names(who, whom):
    followed = User.alias('followed')
    pair = (User.select(User.user_id, followed.user_id)
            .join(followed, JOIN.CROSS)
            .where((User.username == who) & (followed.username == whom)))
    return _once(Follower.insert_from(pair, [Follower.who, Follower.whom]))


_follow = Prepared(lambda who, whom: _once(Follower.insert(who=who, whom=whom)))
_follow_by_names = Prepared(_follow_names)
_unfollow = Prepared(lambda who, whom: Follower.delete().where(
    (Follower.who == who) & (Follower.whom == whom)))
_unfollow_by_names = Prepared(lambda who, whom: Follower.delete().where(
    (Follower.who == _user_id(who)) & (Follower.whom == _user_id(whom))))
LATEST_SHARDS = 64
LATEST_SHARD = random.randrange(1, LATEST_SHARDS + 1)
_latest = Prepared(lambda: Latest.select(fn.MAX(Latest.value)))


def _store_latest(row_id, value):
    """This process's row of `latest`, created the first time."""
    query = Latest.insert(id=row_id, value=value)
    if is_mysql():  # ON DUPLICATE KEY: MySQL takes no conflict target
        return query.on_conflict(update={Latest.value: fn.VALUES(Latest.value)})
    return query.on_conflict(conflict_target=[Latest.id],
                             update={Latest.value: EXCLUDED.value})


_set_latest = Prepared(_store_latest)

# The API's listings, compiled once (False: not flagged, as visible() binds).
_newest = Prepared(lambda flagged, size: Message.visible().limit(size)
                   .select(Message.text, Message.pub_date, User.username))
_newest_of = Prepared(lambda flagged, author_id, size: Message.visible()
                      .where(Message.author == author_id).limit(size)
                      .select(Message.text, Message.pub_date, User.username))

PageRow = namedtuple('PageRow', 'message_id text pub_date username email')


class Timeline:
    """The pages of one kind of timeline, their SQL compiled once per
    database for each of the two shapes a page has (the first; one after
    `before`): building and compiling the query cost a page about as much
    as the rest of it on SQLite. `ids(*leading)` builds the query of the
    timeline's message ids from its leading parameters."""

    def __init__(self, ids):
        # Message.page binds: the leading parameters, False (not flagged),
        # `before`'s pub_date twice and its message_id, then the size.
        self.first = Prepared(
            lambda *p: Message.page(ids(*p[:-2]), None, p[-1]))
        self.later = Prepared(
            lambda *p: Message.page(ids(*p[:-5]), (p[-4], p[-2]), p[-1]))

    def page(self, leading, before, size):
        """Message.page's rows for these leading parameters."""
        if before is None:
            rows = self.first.rows(*leading, False, size)
        else:
            pub_date, message_id = before
            rows = self.later.rows(*leading, False, pub_date, pub_date,
                                   message_id, size)
        return [PageRow(*row) for row in rows]


def _home_ids(user_id, follower_id):
    """The ids of a home timeline (User.timeline says why it is built so):
    the user's own, then those of the users `follower_id` (the same user)
    follows."""
    authors = (Select(columns=[Value(user_id).alias('author')]) |
               Follower.select(Follower.whom.alias('author'))
               .where(Follower.who == follower_id)).alias('authors')
    return (Message.select(Message.message_id).from_(authors)
            .join(Message, JOIN.CROSS)
            .where(Message.author == authors.c.author))


_PUBLIC = Timeline(lambda: Message.select(Message.message_id))
_OWN = Timeline(lambda user_id: Message.select(Message.message_id)
                .where(Message.author == user_id))
_HOME = Timeline(_home_ids)


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
