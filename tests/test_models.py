"""The data layer's own promises: how URLs become databases, SQLite's
settings, the checkpointer, and compiled statements."""
import os
from urllib.parse import urlparse

import pytest
from conftest import MARIADB_URL
from playhouse.pool import PooledSqliteDatabase
from serving import fresh_mariadb, wait_until, with_option
from webtest import TestApp

import database
import models
import sim_api
from database.compiled import compiled


def pragma(target, name):
    return target.execute_sql('PRAGMA %s' % name).fetchone()[0]


def test_sqlite_settings(tmp_path):
    target = database.make_database('sqlite:///%s/a.db' % tmp_path)
    assert isinstance(target, PooledSqliteDatabase)
    target.connect()
    assert pragma(target, 'journal_mode') == 'wal'
    assert pragma(target, 'foreign_keys') == 1
    assert pragma(target, 'synchronous') == 1  # NORMAL
    assert pragma(target, 'busy_timeout') == 2000
    target.close()
    durable = database.make_database('sqlite:///%s/b.db?synchronous=full'
                                   % tmp_path)
    durable.connect()
    assert pragma(durable, 'synchronous') == 2  # FULL
    durable.close()


def test_mysql_urls_become_pools_with_utf8mb4():
    target = database.make_database(
        'mysql://mt:p%40ss@db.example:3307/minitwit?max_connections=4')
    assert isinstance(target, database.MySQLPool)
    assert target.database == 'minitwit'
    params = target.connect_params
    assert target.order == [('db.example', 3307)]
    assert (params['user'], params['password']) == ('mt', 'p@ss')
    assert params['charset'] == 'utf8mb4'
    assert target.max_connections == 4


@pytest.mark.parametrize('url', ['postgres://x/y', 'minitwit.db', '',
                                 'sqlite:///x.db?cache_size=1',
                                 'mysql://root@h/db?charset=latin1'])
def test_unknown_urls_are_refused_clearly(url):
    with pytest.raises(ValueError, match='DATABASE_URL'):
        database.make_database(url)


def test_the_checkpointer_keeps_the_database_file_current(tmp_path):
    path = tmp_path / 'c.db'
    database.configure('sqlite:///%s' % path)
    database.create_schema()
    with database.connection():
        user = models.User.register('w', 'w@x', 'h')
        with database.db.atomic():
            for n in range(2000):
                user.post('message %d' % n)
    # The apps' connections are still open, so SQLite itself has not copied
    # the log back; the background checkpointer does, within a moment.
    wait_until(lambda: os.path.getsize(path) >= 100_000,
               'the log to be copied into the file', 10)
    database.db.obj.close_all()


def test_a_compiled_query_must_be_built_from_its_arguments_alone(fresh_db):
    """@compiled runs one SQL for every call of a shape, so a query that
    binds a value computed from an argument is refused at its first use."""
    class Computed(models.User):
        @compiled
        def longer_than(cls, name):
            return cls.select().where(cls.user_id > len(name))
    with pytest.raises(TypeError, match='more than its arguments'):
        Computed.longer_than('ann')


def test_a_unix_socket_reaches_one_server_only():
    with pytest.raises(ValueError, match='unix_socket'):
        database.make_database('mysql://root@db1,db2/minitwit'
                               '?unix_socket=/run/mysqld/mysqld.sock')


@pytest.mark.skipif(not MARIADB_URL, reason='TEST_MARIADB_URL is not set')
@pytest.mark.parametrize('driver', ['mysqlclient', 'pymysql'])
def test_mariadb_through_its_unix_socket(driver, mariadb_socket_url):
    """The apps work over a server's socket file, and really use it."""
    if driver == 'mysqlclient':
        pytest.importorskip('MySQLdb', reason='mysqlclient: make install-mysql')
    with fresh_mariadb(mariadb_socket_url,
                       'minitwit_socket_%s' % driver) as url:
        try:
            target = database.configure(with_option(url, 'driver', driver))
            assert urlparse(url).query.split('=', 1)[1] in \
                database.describe(target)
            database.create_schema()
            api = TestApp(sim_api.app)
            auth = {'Authorization': 'Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh'}
            api.post_json('/register?latest=1', {
                'username': 'sock', 'email': 's@x', 'pwd': 'p'}, status=204)
            api.post_json('/msgs/sock?latest=2', {'content': 'via the socket'},
                          headers=auth, status=204)
            assert [m['content'] for m in
                    api.get('/msgs', headers=auth).json] == ['via the socket']
            assert api.get('/latest').json == {'latest': 2}
            with database.connection():
                [(host,)] = database.db.execute_sql(
                    'SELECT host FROM information_schema.processlist '
                    'WHERE id = CONNECTION_ID()').fetchall()
            assert host == 'localhost'  # over TCP it says the client's port
        finally:
            database.db.obj.close_all()
