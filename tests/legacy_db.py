"""Databases of the original ITU-MiniTwit for the tests, and the operators' tools'
command lines.

`build_from_scenario` replays a generated scenario the way the original
system stored it (werkzeug hashes, a follower row per follow even when it
repeats, unfollow deleting them all); `write_mysqldump` writes such a
database as mysqldump would dump it from MySQL, and `write_course_dump` in
the format of the course's itu_minitwit_legacy.sql, so the tests need neither
the course's data nor the original code.
"""
import os
import sqlite3
import subprocess
import sys

from serving import ROOT
from sim_client import AUTH, path
from werkzeug.security import generate_password_hash

import database
from scripts.ops.import_legacy import create_legacy

# The two formats the original's werkzeug wrote, alternately.
HASH_METHODS = ('pbkdf2:sha256:150000', 'scrypt:32768:8:1')


def database_url():
    """The URL of the database the models point at (`fresh_db` fixture's)."""
    name = database.db.obj.database
    if database.is_mysql():
        return '%s/%s' % (os.environ['TEST_MARIADB_URL'].rstrip('/'), name)
    return 'sqlite:///%s' % name


def run_tool(name, *args, database_url):
    """Run `python -m scripts.ops.NAME` on `database_url`, as an operator does; a
    CompletedProcess with text."""
    return subprocess.run(
        [sys.executable, '-m', 'scripts.ops.' + name, *(str(arg) for arg in args)],
        cwd=ROOT, env=dict(os.environ, DATABASE_URL=database_url),
        capture_output=True, text=True, timeout=300)


def build_from_scenario(path, actions, flag_every=7):
    """Write at `path` what the original system held after `actions`, with
    every `flag_every`th message flagged by a moderator; returns
    {username: password}."""
    conn = create_legacy(path)
    ids, passwords = {}, {}
    for action_id, command, fields in actions:
        user = fields[0]
        if command == 'register':
            pw_hash = generate_password_hash(
                fields[2], HASH_METHODS[len(ids) % len(HASH_METHODS)])
            ids[user] = conn.execute(
                'INSERT INTO user (username, email, pw_hash) VALUES (?, ?, ?)',
                (user, fields[1], pw_hash)).lastrowid
            passwords[user] = fields[2]
        elif command == 'tweet':
            # Two actions a second: some messages share a pub_date.
            conn.execute('INSERT INTO message (author_id, text, pub_date, '
                         'flagged) VALUES (?, ?, ?, 0)',
                         (ids[user], fields[1], 1580989428 + action_id // 2))
        elif command == 'follow':
            conn.execute('INSERT INTO follower (who_id, whom_id) VALUES (?, ?)',
                         (ids[user], ids[fields[1]]))
        else:
            conn.execute('DELETE FROM follower WHERE who_id = ? AND whom_id = ?',
                         (ids[user], ids[fields[1]]))
    conn.execute('UPDATE message SET flagged = 1 WHERE message_id % ? = 0',
                 (flag_every,))
    conn.commit()
    conn.close()
    return passwords


# The course's dump's own statements: its database and the original's
# tables in MySQL, as itu_minitwit_legacy.sql writes them.
CREATE_TABLES = """\
CREATE DATABASE minitwit;

USE minitwit;

CREATE TABLE user (
  user_id integer primary key auto_increment,
  username varchar(100) not null,
  email varchar(200) null,
  pw_hash varchar(200) not null
);

CREATE TABLE follower (
  who_id integer,
  whom_id integer
);

CREATE TABLE message (
  message_id integer primary key auto_increment,
  author_id integer not null,
  text varchar(500) not null,
  pub_date integer,
  flagged integer
);

"""
# mysqldump's start: a comment header, as mysqldump writes one, then those.
DUMP_HEAD = """\
-- MySQL dump of the original ITU-MiniTwit's database, written by
-- tests/legacy_db.py as mysqldump writes one
-- ------------------------------------------------------

/*!40101 SET NAMES utf8mb4 */;

""" + CREATE_TABLES
# The course's file starts with a blank line.
COURSE_HEAD = '\n' + CREATE_TABLES
# What each style escapes in a string; every other character, tabs, newlines
# and unicode included, is written as it is, in UTF-8. mysqldump's are
# mysql_real_escape_string's. The course's file doubles a quote and has no
# backslash, CR or NULL at all: a backslash is doubled here because MySQL,
# and so the importer, would read a lone one as an escape.
ESCAPES = {
    'mysqldump': {'\0': '\\0', '\n': '\\n', '\r': '\\r', '\\': '\\\\',
                  "'": "\\'", '"': '\\"', '\x1a': '\\Z'},
    'course': {"'": "''", '\\': '\\\\'},
}
# mysqldump starts a new INSERT when one reaches its buffer's size: a few
# statements a table, as in a real dump.
ROWS_PER_INSERT = 500
# The blank lines the course's file has after each table's rows.
COURSE_GAPS = {'user': '\n', 'follower': '\n\n', 'message': ''}


def sql_value(value, style='mysqldump'):
    """A value as a dump of `style` writes it: NULL, a number, or a quoted
    string."""
    if value is None:
        return 'NULL'
    elif isinstance(value, int):
        return str(value)
    escapes = ESCAPES[style]
    return "'%s'" % ''.join(escapes.get(char, char) for char in value)


def sql_row(row, style='mysqldump'):
    """A row's values as a dump of `style` writes them: (1,'a',NULL)."""
    return '(%s)' % ','.join(sql_value(value, style) for value in row)


def insert_statement(table, rows):
    """One of mysqldump's extended INSERTs: all `rows` in one statement."""
    return 'INSERT INTO `%s` VALUES\n%s;\n' % (
        table, ',\n'.join(sql_row(row) for row in rows))


def course_insert(table, row):
    """One row's INSERT as the course's file writes it, a line."""
    return 'INSERT INTO %s VALUES%s;\n' % (table, sql_row(row, 'course'))


def dump_tables(legacy_path):
    """[(table, rows)] of the original's SQLite database at `legacy_path`, in
    the order both dumps write them."""
    conn = sqlite3.connect(legacy_path)
    # Follower rows in the order they were written: the order of follows.
    tables = [(table, conn.execute('SELECT * FROM %s ORDER BY %s'  # noqa: S608
                                   % (table, order)).fetchall())
              for table, order in (('user', 'user_id'), ('follower', 'rowid'),
                                   ('message', 'message_id'))]
    conn.close()
    return tables


def write_mysqldump(legacy_path, dump_path):
    """Write the original's SQLite database at `legacy_path` as the MySQL
    dump the original's MySQL server would have given, at `dump_path`."""
    with open(dump_path, 'w', encoding='utf-8', newline='\n') as out:
        out.write(DUMP_HEAD)
        for table, rows in dump_tables(legacy_path):
            out.write('LOCK TABLES `%s` WRITE;\n' % table)
            for start in range(0, len(rows), ROWS_PER_INSERT):
                out.write(insert_statement(
                    table, rows[start:start + ROWS_PER_INSERT]))
            out.write('UNLOCK TABLES;\n\n')


def write_course_dump(legacy_path, dump_path):
    """Write the original's SQLite database at `legacy_path` at `dump_path`
    in the course's itu_minitwit_legacy.sql's format: its head, then one
    single-row INSERT a line, quotes doubled."""
    with open(dump_path, 'w', encoding='utf-8', newline='\n') as out:
        out.write(COURSE_HEAD)
        for table, rows in dump_tables(legacy_path):
            out.writelines(course_insert(table, row) for row in rows)
            out.write(COURSE_GAPS[table])


def legacy_rows(path):
    """{table: every row} of a legacy database, in the order written."""
    conn = sqlite3.connect(path)
    rows = {table: conn.execute('SELECT * FROM %s ORDER BY rowid'  # noqa: S608
                                % table).fetchall()
            for table in ('user', 'follower', 'message')}
    conn.close()
    return rows


def legacy_texts(path):
    """{username: the texts of all their messages, flagged too, newest
    first}: what the scenario that made the database implies."""
    conn = sqlite3.connect(path)
    texts = {}
    for name, text in conn.execute(
            'SELECT username, text FROM user JOIN message ON author_id = '
            'user_id ORDER BY pub_date DESC, message_id DESC'):
        texts.setdefault(name, []).append(text)
    conn.close()
    return texts


def original_view(path):
    """{username: (messages, follows)} as the original's data says the API
    must show them: unflagged (text, pub_date) newest first, and the names
    followed, each once, in the order first followed."""
    conn = sqlite3.connect(path)
    view = {}
    for user_id, name in conn.execute('SELECT user_id, username FROM user'):
        messages = conn.execute(
            'SELECT text, pub_date FROM message WHERE author_id = ? AND '
            'flagged = 0 ORDER BY pub_date DESC, message_id DESC',
            (user_id,)).fetchall()
        follows = [row[0] for row in conn.execute(
            'SELECT username FROM user JOIN (SELECT whom_id, min(rowid) AS '
            'first FROM follower WHERE who_id = ? GROUP BY whom_id) '
            'ON whom_id = user_id ORDER BY first', (user_id,))]
        view[name] = (messages, follows)
    conn.close()
    return view


def api_view(api, names):
    """{username: (messages, follows)} as the simulator API shows them."""
    view = {}
    for name in names:
        messages = api.get(path('msgs', name, no=10000), headers=AUTH).json
        assert {m['user'] for m in messages} <= {name}
        follows = api.get(path('fllws', name, no=10000),
                          headers=AUTH).json['follows']
        view[name] = ([(m['content'], m['pub_date']) for m in messages],
                      follows)
    return view
