"""The floor with the database, for `scripts/bench/bench.py --db-floor`: only what a
simulator write on MariaDB cannot do without (docs/benchmarks.md), and nothing else."""
import json
import time
from urllib.parse import parse_qs

from peewee import IntegrityError

import database
import passwords
from models import Follower, Latest, Message, User
from scripts.bench import floor_app

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
    """A POST does its write; anything else is the floor's."""
    if environ['REQUEST_METHOD'] != 'POST':
        return floor_app.app(environ, start_response)
    body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
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
