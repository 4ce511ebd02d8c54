"""schema.sql and models.py describe the same tables, on SQLite and MariaDB.

One database is built by running schema.sql (what the apps and `make initdb`
do), another by peewee from the models; their catalogues must agree column
by column, index by index and foreign key by foreign key.
"""
import os
import re

import pytest
from conftest import MARIADB_URL
from peewee import IntegrityError

import database
import models
import sessions


def sqlite_affinity(declared):
    """SQLite's type affinity for a declared type (its own rules, section
    3.1 of "Datatypes In SQLite"); booleans are stored as integers."""
    declared = declared.upper()
    if 'INT' in declared or declared == 'BOOLEAN':
        return 'INTEGER'
    if re.search('CHAR|CLOB|TEXT', declared):
        return 'TEXT'
    return declared


def catalogue(url, build):
    database.configure(url)
    with database.db.connection_context():
        build()
        target = database.db.obj
        normalise = sqlite_affinity if url.startswith('sqlite') else str
        tables = {}
        for table in sorted(target.get_tables()):
            tables[table] = {
                'columns': [(c.name, normalise(c.data_type), c.null,
                             c.primary_key)
                            for c in target.get_columns(table)],
                'indexes': sorted((i.name, tuple(i.columns), i.unique)
                                  for i in target.get_indexes(table)),
                'foreign_keys': sorted((f.column, f.dest_table, f.dest_column)
                                       for f in target.get_foreign_keys(table)),
            }
    database.db.obj.close_all()
    return tables


def test_schema_sql_matches_the_models(make_db_url):
    from_sql = catalogue(make_db_url(), database.create_schema)
    from_models = catalogue(make_db_url(),
                            lambda: database.db.create_tables(models.MODELS + sessions.MODELS))
    assert set(from_sql) == {'user', 'message', 'follower', 'latest',
                             'tweet_key', 'user_session', 'sign_in_failure',
                             'row_count'}
    assert from_sql == from_models


def counted():
    return {table: models.RowCount.totals()[table]
            for table in ('users', 'messages', 'follows')}


def actual():
    return {'users': models.User.select().count(),
            'messages': models.Message.select().count(),
            'follows': models.Follower.select().count()}


def test_the_row_counts_follow_every_insert_and_delete(fresh_db):
    with database.connection():
        assert counted() == actual() == {'users': 0, 'messages': 0,
                                         'follows': 0}
        names = ['u%d' % n for n in range(150)]  # ids past 64: every shard
        for name in names:
            database.transaction(models.User.new.statement(name, 'e', 'h'))
        for name in names[:100]:
            models.User.by_name(name).post('hello')
            database.transaction(models.Follower.follow.statement(name, 'u0'))
        assert counted() == actual() == {'users': 150, 'messages': 100,
                                         'follows': 100}
        models.Follower.delete().where(models.Follower.id % 3 == 0).execute()
        models.Message.delete().where(models.Message.message_id > 90).execute()
        assert counted() == actual()
        assert models.RowCount.select().count() == 3 * 64


def test_a_database_from_before_the_counts_gets_them_right(make_db_url):
    url = make_db_url()
    database.configure(url)
    with database.connection():  # created from schema.sql, then made old:
        for name in ('ann', 'bob'):
            database.transaction(models.User.new.statement(name, 'e', 'h'))
        models.User.by_name('ann').post('hi')
        models.User.by_name('ann').follow(models.User.by_name('bob'))
        for trigger in ('user_added', 'user_removed', 'message_added',
                        'message_removed', 'follow_added', 'follow_removed'):
            database.db.execute_sql('DROP TRIGGER %s' % trigger)
        database.db.execute_sql('DROP TABLE row_count')
    database.configure(url)  # a new release starts on it
    with database.connection():
        assert counted() == actual() == {'users': 2, 'messages': 1,
                                         'follows': 1}


def test_a_database_from_before_the_tweet_keys_gets_them_at_start(
        make_db_url):
    """A database made by the schema.sql before tweet_key gains the table
    when a new release first reaches it, and with it retries stored once."""
    url = make_db_url()
    database.configure(url)
    with database.connection():
        database.transaction(models.User.new.statement('ann', 'e', 'h'))
        database.db.execute_sql('DROP TABLE tweet_key')
    database.configure(url)  # a new release starts on it
    with database.connection():
        def tweet():
            database.transaction(models.TweetKey.claim.statement(7, 'ann'),
                                 models.Message.post.statement('ann', 'hi', 1))
        tweet()
        with pytest.raises(IntegrityError):  # the same again: its key is taken
            tweet()
        assert models.Message.select().count() == 1
        assert [(k.latest, k.author_id) for k in models.TweetKey.select()] \
            == [(7, models.User.by_name('ann').user_id)]


def test_schema_sql_is_idempotent_and_seeds_latest_once(make_db_url):
    database.configure(make_db_url())
    for _ in range(2):
        database.create_schema()
        database._schema_ready = False  # run the file again, as a restart does
    with database.connection():
        assert models.Latest.select().count() == 1
        assert models.Latest.get_value() == -1


@pytest.mark.skipif(not MARIADB_URL, reason='needs TEST_MARIADB_URL: what '
                    'is sent to MySQL')
def test_a_complete_schema_sends_no_ddl_to_mysql(mariadb_admin, monkeypatch):
    """On Galera every DDL statement is replicated to every node in total
    order, even a CREATE ... IF NOT EXISTS that changes nothing, and a
    CREATE TRIGGER while other nodes write can hang one: a restart (or a
    deploy's initdb) on a complete schema sends none."""
    name = 'minitwit_test_ddl_%d' % os.getpid()
    with mariadb_admin.cursor() as cur:
        cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
    database.configure('%s/%s' % (MARIADB_URL, name))
    try:
        sent = schema_run_twice(monkeypatch)
    finally:
        database.db.obj.close_all()
        with mariadb_admin.cursor() as cur:
            cur.execute('DROP DATABASE %s' % name)
    assert sent and not [sql for sql in sent if sql.lstrip().startswith('CREATE')]


def schema_run_twice(monkeypatch):
    """Run schema.sql on a new database, then again; what the second run
    sent."""
    database.create_schema()
    sent = []
    target = database.db.obj
    cursor = target.cursor

    class Recording:
        def __init__(self, real):
            self.real = real

        def execute(self, sql, *args):
            sent.append(sql)
            return self.real.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.real, name)

    monkeypatch.setattr(target, 'cursor', lambda *a: Recording(cursor(*a)))
    database._schema_ready = False
    database.create_schema()
    return sent
