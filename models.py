"""MiniTwit's data: the models, their queries and writes as model methods,
and what the apps accept as input. Both apps and every tool share them; how
they reach the database is database/; schema.sql creates the tables
(tests/test_schema.py keeps the two in step)."""
import time

from peewee import (
    JOIN,
    AutoField,
    BigIntegerField,
    BooleanField,
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
    def by_names(cls, names):
        """The users of those of `names` that exist, in one query."""
        return cls.select().where(cls.username.in_(names))

    @classmethod
    def register(cls, username, email, pw_hash):
        """The new User; IntegrityError when the name is taken. It takes the
        hash: the slow part never holds the write lock."""
        database.transaction(cls.new.statement(username, email, pw_hash))
        return cls.by_name(username)

    @compiled
    def new(cls, username, email, pw_hash):
        return cls.insert(username=username, email=email, pw_hash=pw_hash)

    @compiled(one=True)
    def profile(cls, username, viewer_id):
        """The user `username`, `.followed` by `viewer_id` (0: nobody) or not; or None."""
        followed = Follower.select().where((Follower.who == viewer_id) &
                                           (Follower.whom == cls.user_id))
        return (cls.select(cls, fn.EXISTS(followed).alias('followed'))
                .where(cls.username == username))

    def check_password(self, password):
        """Whether `password` is right; upgrades an old hash when it is."""
        ok, stale = passwords.verify_password(self.pw_hash, password)
        if ok and stale:
            self.pw_hash = passwords.hash_password(password)
            database.transaction(User.rehash.statement(self.pw_hash, self.user_id))
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
        database.transaction(Message.post.statement(self.username, text, int(time.time())))

    def follow(self, other):
        database.transaction(Follower.follow.statement(self.username, other.username))

    def unfollow(self, other):
        database.transaction(Follower.unfollow.statement(self.username, other.username))

    def timeline(self, pub_date, message_id, size):
        return Message.home_timeline(self.user_id, pub_date, message_id, size)


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
        """A message by the user `username`: 1, or 0 for no such user."""
        author = User.select(User.user_id, Value(text), Value(pub_date),
                             Value(False)).where(User.username == username)
        return cls.insert_from(author, [cls.author, cls.text, cls.pub_date,
                                        cls.flagged])

    @classmethod
    def visible(cls):
        """Unflagged messages with their authors, newest first (a tie on
        pub_date, whole seconds, by id: the same on every node)."""
        return (cls.select(cls, User)
                .join(User, on=(cls.author == User.user_id))
                .where(cls.flagged == False)  # noqa: E712 (SQL, not Python)
                .order_by(cls.pub_date.desc(), cls.message_id.desc()))

    @compiled(tuples=True)
    def newest(cls, size):
        """(text, pub_date, username) of the `size` newest."""
        return cls.visible().select(cls.text, cls.pub_date, User.username).limit(size)

    @compiled(tuples=True)
    def newest_by(cls, author_id, size):
        """(text, pub_date, username) of `author_id`'s `size` newest."""
        return (cls.visible().select(cls.text, cls.pub_date, User.username)
                .where(cls.author == author_id).limit(size))

    @classmethod
    def page(cls, ids, pub_date, message_id, size):
        """The `size` newest visible messages among `ids` (a query of ids)
        older than (`pub_date`, `message_id`), the last one seen (NEWEST for
        the first page): so page 100 is one index range like page 1. The ids
        come from the index alone; only their rows are read.
        docs/architecture.md says why it is spelled so."""
        ids = ids.where((cls.flagged == False) &  # noqa: E712 (SQL, not Python)
                        (cls.pub_date <= pub_date) &
                        ((cls.pub_date < pub_date) | (cls.message_id < message_id)))
        page = (ids.order_by(cls.pub_date.desc(), cls.message_id.desc())
                .limit(size).alias('page'))
        return (cls.select(cls.message_id, cls.text, cls.pub_date,
                           User.username, User.email).from_(page)
                .join(cls, JOIN.CROSS)
                .join(User, on=(cls.author == User.user_id))
                .where(cls.message_id == page.c.message_id)
                .order_by(cls.pub_date.desc(), cls.message_id.desc()))

    @compiled
    def public_timeline(cls, pub_date, message_id, size):
        """A page of everybody's messages."""
        return cls.page(cls.select(cls.message_id), pub_date, message_id, size)

    @compiled
    def user_timeline(cls, user_id, pub_date, message_id, size):
        """A page of `user_id`'s messages."""
        return cls.page(cls.select(cls.message_id).where(cls.author == user_id),
                        pub_date, message_id, size)

    @compiled
    def home_timeline(cls, user_id, pub_date, message_id, size):
        """A page of `user_id`'s and their followees' messages: from the
        authors' side, an index range each (CROSS JOIN: never reordered);
        UNION: a user who follows themself sees a message once."""
        authors = (Select(columns=[Value(user_id).alias('author')]) |
                   Follower.select(Follower.whom.alias('author'))
                   .where(Follower.who == user_id)).alias('authors')
        return cls.page(cls.select(cls.message_id).from_(authors)
                        .join(cls, JOIN.CROSS)
                        .where(cls.author == authors.c.author), pub_date, message_id, size)


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
        """`who` follows `whom` (names): 1, now or already; 0 when either
        does not exist. A duplicate is updated to itself, not ignored: an
        ignored row counts 0 on SQLite, and INSERT IGNORE deadlocks two
        InnoDB clients following one pair (MySQL counts the row: FOUND_ROWS)."""
        followed = User.alias('followed')
        pair = (User.select(User.user_id, followed.user_id)
                .join(followed, JOIN.CROSS)
                .where((User.username == who) & (followed.username == whom)))
        return upsert(cls.insert_from(pair, [cls.who, cls.whom]),
                      [cls.who, cls.whom], update={cls.who: cls.who})

    @compiled
    def unfollow(cls, who, whom):
        """`who` stops following `whom` (names): 1, or 0 if it did not."""
        def user_id(name):
            return User.select(User.user_id).where(User.username == name)
        return cls.delete().where((cls.who == user_id(who)) &
                                  (cls.whom == user_id(whom)))


class Latest(BaseModel):
    """The id of the last simulator action processed: a row (on a Galera
    cluster a row per node, `latest_row`: one row written through two nodes
    is a certification failure), the highest the latest; -1 at first."""
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
    """The key of a simulator tweet, `latest` and author, stored with it: the
    same tweet sent again (a retry after a 503 that did commit) fails on it."""
    latest = BigIntegerField()
    author_id = IntegerField()  # no foreign key: see schema.sql

    class Meta:
        table_name = 'tweet_key'
        primary_key = CompositeKey('latest', 'author_id')

    @compiled
    def claim(cls, latest, username):
        """Before the message; IntegrityError when it was stored already."""
        author = User.select(Value(latest), User.user_id).where(
            User.username == username)
        return cls.insert_from(author, [cls.latest, cls.author_id])


class RowCount(BaseModel):
    """The rows of user, message and follower, counted by schema.sql's
    triggers in 64 shards a table: /metrics reads these at any size."""
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


MODELS = (User, Message, Follower, Latest, TweetKey, RowCount)
NEWEST = (10 ** 18, 10 ** 18)  # a timeline's first page is older than this


# --- what the apps accept ----------------------------------------------------

MAX_USERNAME = 100
MAX_EMAIL = 254
MAX_PASSWORD = 1024
MAX_MESSAGE = 1000


def unusable_text(value):
    """Whether a string holds NUL or a lone surrogate (JSON's \\ud800): no
    column can store those."""
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        return True
    return '\x00' in value
