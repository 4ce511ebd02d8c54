"""Databases of the original ITU-MiniTwit for the tests, and the operators' tools'
command lines.

`build_from_scenario` replays a generated scenario the way the original
system stored it (werkzeug hashes, a follower row per follow even when it
repeats, unfollow deleting them all), so the tests need neither the course's
data nor the original code.
"""
import os
import sqlite3
import subprocess
import sys

from sim_client import AUTH, path
from werkzeug.security import generate_password_hash

import database
from bench.serving import ROOT
from ops.import_legacy import create_legacy

DATA = os.path.join(ROOT, '..', 'shared', 'data')
# The two formats the original's werkzeug wrote, alternately.
HASH_METHODS = ('pbkdf2:sha256:150000', 'scrypt:32768:8:1')


def database_url():
    """The URL of the database the models point at (`fresh_db` fixture's)."""
    name = database.db.obj.database
    if database.is_mysql():
        return '%s/%s' % (os.environ['TEST_MARIADB_URL'].rstrip('/'), name)
    return 'sqlite:///%s' % name


def run_tool(name, *args, database_url):
    """Run `python -m ops.NAME` on `database_url`, as an operator does; a
    CompletedProcess with text."""
    return subprocess.run(
        [sys.executable, '-m', 'ops.' + name, *(str(arg) for arg in args)],
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
