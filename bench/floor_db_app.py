"""The floor with the database: the least a simulator write can cost on
MariaDB, for `bench/bench.py --db-floor`.

bench/floor_app.py is what the HTTP stack alone costs. This WSGI app does,
besides, only what each of the API's writes cannot do without: it reads the
JSON body, hashes a new user's password, and sends the action and its
`latest` to the server as sim_api does, in one packet (BEGIN; the write;
latest; COMMIT) with the same statements (models.py) through the same
driver, on a connection of its thread's own. Nothing else: no Bottle, no
pool, no check of the input or the credentials, no lookup when nothing
changed, no metrics, no log. It answers every write 204 and every read an
empty list, as the no-op floor does; what the database then holds is not
checked (bench.py verifies the apps, not the floors).

    DATABASE_URL=mysql://... waitress-serve bench.floor_db_app:app
"""
import json
import threading
from urllib.parse import parse_qs

import database
import passwords
from database.mysql import DriverDatabase
from models import Latest, User

database.configure()
database.create_schema()
DB = database.db.obj
_local = threading.local()


def _connection():
    """This thread's connection, opened once, outside the pool."""
    conn = getattr(_local, 'conn', None)
    if conn is None:
        conn = _local.conn = DriverDatabase._connect(DB)
    return conn


def _write(path, data):
    """The statement of the action at `path` with the JSON `data`."""
    if path == '/register':
        return User.register_statement(data['username'], data['email'],
                                       passwords.hash_password(data['pwd']))
    username = path.split('/', 2)[2]
    if path.startswith('/msgs/'):
        return User.post_as_statement(username, data['content'])
    if 'follow' in data:
        return User.follow_statement(username, data['follow'])
    return User.unfollow_statement(username, data['unfollow'])


def app(environ, start_response):
    body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
    if environ['REQUEST_METHOD'] != 'POST':
        start_response('200 OK', [('Content-Type', 'application/json'),
                                  ('Content-Length', '2')])
        return [b'[]']
    latest = int(parse_qs(environ['QUERY_STRING'])['latest'][0])
    statements = [_write(environ['PATH_INFO'], json.loads(body)),
                  Latest.set_statement(latest)]
    conn = _connection()
    try:
        DB.driver.run_batch(conn, 'BEGIN;\n%s;\nCOMMIT' % ';\n'.join(
            sql for sql, _ in statements), [p for _, ps in statements
                                           for p in ps])
        status = '204 No Content'
    except DB.driver.load().IntegrityError:  # a name taken: the API's 400
        DB.driver.run_batch(conn, 'ROLLBACK', [])
        status = '400 Bad Request'
    start_response(status, [('Content-Length', '0')])
    return [b'']
