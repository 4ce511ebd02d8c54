"""The floor with the database: the least a simulator write can cost on
MariaDB, for `scripts/bench/bench.py --db-floor`.

    DATABASE_URL=mysql://... waitress-serve scripts.bench.floor_db_app:app

Only what a write cannot do without: read the JSON, hash a new user's password, run sim_api's
statements through database.transaction on a connection its thread keeps. Nothing else.
"""
import json
import time
from urllib.parse import parse_qs

from peewee import IntegrityError

import database
import passwords
from models import Follower, Latest, Message, User

database.configure()
database.create_schema()


def _write(path, data):
    """The statement of the action at `path` with the JSON `data`."""
    if path == '/register':
        return User.new.statement(data['username'], data['email'],
                                  passwords.hash_password(data['pwd']))
    username = path.split('/', 2)[2]
    if path.startswith('/msgs/'):
        return Message.post.statement(username, data['content'], int(time.time()))
    if 'follow' in data:
        return Follower.follow.statement(username, data['follow'])
    return Follower.unfollow.statement(username, data['unfollow'])


def app(environ, start_response):
    body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
    if environ['REQUEST_METHOD'] != 'POST':
        start_response('200 OK', [('Content-Type', 'application/json'),
                                  ('Content-Length', '2')])
        return [b'[]']
    latest = int(parse_qs(environ['QUERY_STRING'])['latest'][0])
    write = _write(environ['PATH_INFO'], json.loads(body))
    database.db.connect(reuse_if_open=True)  # this thread's, never returned
    try:
        database.transaction(write, Latest.set_value.statement(latest))
        status = '204 No Content'
    except IntegrityError:  # a name taken: the API's 400
        status = '400 Bad Request'
    start_response(status, [('Content-Length', '0')])
    return [b'']
