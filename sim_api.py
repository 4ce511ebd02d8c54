"""The simulator API: ITU-MiniTwit's HTTP interface for the course simulator.

A Bottle app, WSGI callable `sim_api:app` (port 5001), to the letter of the
course's spec: /latest, /register, /msgs, /msgs/<user>, /fllws/<user>.
Every answer is JSON (with `X-Content-Type-Options: nosniff`); every error
is {"status": N, "error_msg": "..."}.

What every request goes through: pipeline.py's body cap, path check and
database connection, and here the Basic credentials and the `latest`
parameter (`check_simulator`), then `latest` stored after the view
(`store_latest`). Errors are Bottle's abort(), shown by `json_error`.
`latest` is stored in the same transaction as the action it came with
(`record`), or on its own when the action wrote nothing, so it is never
ahead of or behind the data. A write looks nobody up first (the models'
writes find their users by name themselves), but for a register, which
makes sure its name is free before it hashes the password.

Every write is safe to send again (a 503 may come after its commit): a
follow or unfollow done already changes nothing, a register of a taken name
is refused, and a tweet with `latest` stores its key (`TweetKey`, the
author and `latest`) in its own transaction, so that the same tweet sent
again with the same `latest` is stored once.
"""
import base64
import binascii
import functools
import hmac
import json
import os
import time

from bottle import Bottle, HTTPResponse, abort, request, response, static_file
from peewee import IntegrityError

import database
import observability
import passwords
import pipeline
from models import Follower, Latest, Message, TweetKey, User
from pipeline import MAX_BODY, Pipeline

app = Bottle()

SIMULATOR_USERNAME = os.environ.get('SIM_API_USERNAME', 'simulator')
SIMULATOR_PASSWORD = os.environ.get('SIM_API_PASSWORD', 'super_safe!')
EXPECTED_CREDENTIALS = ('%s:%s' % (SIMULATOR_USERNAME, SIMULATOR_PASSWORD)
                        ).encode('utf-8')
NOT_AUTHORIZED = 'You are not authorized to use this resource!'

DEFAULT_NO = 100
# The most messages or follows one answer lists: a larger `no` gets this many,
# as the original and every paging API do.
MAX_NO = int(os.environ.get('SIM_API_MAX_NO', 10000))


# Every JSON answer's: a browser must never take one for a page or script.
JSON_HEADERS = {'Content-Type': 'application/json',
                'X-Content-Type-Options': 'nosniff'}


def json_response(data, status=200):
    return HTTPResponse(json.dumps(data, ensure_ascii=False), status,
                        headers=JSON_HEADERS)


def no_content():
    return HTTPResponse(status=204)


# --- what every request goes through ------------------------------------------

def authorized():
    """Whether the request carries the simulator's Basic credentials."""
    scheme, _, value = request.get_header('Authorization', '').partition(' ')
    if scheme.lower() != 'basic':
        return False
    try:
        given = base64.b64decode(value.strip().encode('latin-1'),
                                 validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, EXPECTED_CREDENTIALS)


def query_int(name, default=None):
    """The query parameter `name` as a non-negative int, or `default`."""
    raw = request.query.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() alone takes '²' and other scripts'.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        abort(400, '%s must be a non-negative integer' % name)
    return int(raw)


def check_simulator(route):
    """Before a connection is taken: the simulator's credentials (unless
    the route says auth=False) and its `latest` (unless latest=False)."""
    if route.config.get('auth', True) and not authorized():
        abort(403, NOT_AUTHORIZED)
    request.environ['minitwit.latest'] = query_int('latest') \
        if route.config.get('latest', True) else None


def store_latest(callback):
    """Store the request's `latest` after the view has answered, refusals
    (abort) included, unless the view stored it with its write (`record`).
    A view that failed (the database) stores nothing: `latest` must not
    get ahead of the data."""
    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        try:
            answer = callback(*args, **kwargs)
        except HTTPResponse as refusal:
            answer = refusal
        if request.environ['minitwit.latest'] is not None and \
                not request.environ.get('minitwit.latest_stored'):
            record()
        return answer
    return wrapper


# The simulator's next request may need what its last one wrote, through
# another app host and database node: every request is causal but those
# that say causal=False.
app.install(Pipeline(
    {400: 'The path is not valid UTF-8',
     413: 'The request body can be at most %d bytes' % MAX_BODY,
     503: 'The database is unavailable right now; try again in a moment'},
    causal=lambda route: route.config.get('causal', True),
    check=check_simulator))
app.install(store_latest)


def record(*writes):
    """Run `writes` (statements) and store this request's `latest` in one
    transaction: the last write's row count."""
    latest = request.environ.get('minitwit.latest')
    statements = list(writes)
    if latest is not None:
        statements.append(Latest.set_value.statement(latest))
    counts = database.transaction(*statements) if statements else []
    request.environ['minitwit.latest_stored'] = True
    return counts[len(writes) - 1] if writes else None


def json_object():
    """The request body as a JSON object (a dict)."""
    try:
        data = json.loads(request.body.read())
    except (ValueError, RecursionError):
        abort(400, 'The request body must be valid JSON')
    if not isinstance(data, dict):
        abort(400, 'The request body must be a JSON object')
    return data


def string_field(data, name):
    value = data.get(name)
    if not isinstance(value, str):
        abort(400, '%s must be a string' % name)
    return value


def unknown_user(username):
    return 'There is no user called %s' % username


def existing_user(username):
    user = User.by_name(username)
    if user is None:
        abort(404, unknown_user(username))
    return user


def limit():
    """How many to list: `no`, at most MAX_NO."""
    return min(query_int('no', DEFAULT_NO), MAX_NO)


def message_list(rows):
    """(text, pub_date, username) rows as the API shows messages."""
    return json_response([{'content': text, 'pub_date': pub_date,
                           'user': username}
                          for text, pub_date, username in rows])


# --- the API ---------------------------------------------------------------

@app.get('/latest', auth=False, latest=False)
def get_latest():
    """The id of the latest simulator action processed; -1 before any."""
    return json_response({'latest': Latest.get_value()})


@app.post('/register', auth=False)
def register():
    """Sign a user up: 204, or 400 with the original's message."""
    data = json_object()
    username, email, password = (data.get('username'), data.get('email'),
                                 data.get('pwd'))
    error = pipeline.registration_error(username, email, password)
    if error is None and User.by_name(username) is not None:
        # Before the hash (~16 ms of CPU), not after: a taken name costs a
        # lookup. The unique index still decides between two at once.
        error = 'The username is already taken'
    if error is None:
        pw_hash = passwords.hash_password(password)
        try:
            record(User.new.statement(username, email, pw_hash))
        except IntegrityError:
            error = 'The username is already taken'
    if error is not None:
        abort(400, error)
    return no_content()


@app.get('/msgs')
def messages():
    """The newest unflagged messages of everybody, `no` of them."""
    return message_list(Message.newest(limit()))


@app.get('/msgs/<username:path>')
def messages_of(username):
    """The newest unflagged messages of one user, `no` of them."""
    no = limit()
    user = existing_user(username)
    return message_list(Message.newest_by(user.user_id, no))


@app.post('/msgs/<username:path>')
def post_message(username):
    """Record a message by `username`: 204, or 404 for an unknown user.
    Sent again with the same `latest`, it is stored once (TweetKey)."""
    content = json_object().get('content')
    error = pipeline.message_error(content)
    if error is not None:
        abort(400, error)
    latest = request.environ['minitwit.latest']
    post = Message.post.statement(username, content, int(time.time()))
    try:
        posted = record(post) if latest is None else \
            record(TweetKey.claim.statement(latest, username), post)
    except IntegrityError:
        # Its key is taken: this very tweet was stored, `latest` with it.
        request.environ['minitwit.latest_stored'] = True
        return no_content()
    if posted != 1:
        abort(404, unknown_user(username))
    return no_content()


@app.get('/fllws/<username:path>')
def follows_of(username):
    """The names of the users `username` follows, `no` of them."""
    no = limit()
    user = existing_user(username)
    return json_response({'follows': [u.username for u in
                                      user.following().limit(no)]})


@app.post('/fllws/<username:path>')
def follow_or_unfollow(username):
    """{"follow": name} or {"unfollow": name}: 204, or 404 for an unknown
    user on either side. Repeating either is harmless."""
    data = json_object()
    if ('follow' in data) == ('unfollow' in data):
        abort(400, 'Send either "follow" or "unfollow" with a '
                       'username')
    verb = 'follow' if 'follow' in data else 'unfollow'
    other_name = string_field(data, verb)
    write = Follower.follow if verb == 'follow' else Follower.unfollow
    if record(write.statement(username, other_name)) != 1:
        # A user is unknown, or (an unfollow) the pair was not followed.
        # Only now is it worth a lookup.
        users = {u.username for u in User.by_names((username, other_name))}
        for name in (username, other_name):
            if name not in users:
                abort(404, unknown_user(name))
    return no_content()


@app.get('/openapi.json', skip=True)
def openapi():
    """This API in OpenAPI 3: openapi.json, beside this file."""
    return static_file('openapi.json',
                       root=os.path.dirname(os.path.abspath(__file__)),
                       headers={'X-Content-Type-Options': 'nosniff'})


@app.get('/healthz', auth=False, latest=False, causal=False)
def healthz():
    """200 when this process can reach the database, else 503. Which node
    it uses (on a Galera cluster, the cluster's size and the node's state)
    only to the simulator's credentials: anybody may ask whether it is up,
    not learn the database's layout."""
    status = database.status()
    if not authorized():
        return json_response({'status': 'ok'})
    return json_response({'status': 'ok', 'database': status})


def json_error(error):
    """Every error, as JSON: abort()'s and Bottle's own (no such route,
    wrong method, 500)."""
    for name, value in JSON_HEADERS.items():
        response.set_header(name, value)
    return json.dumps({'status': error.status_code,
                       'error_msg': error.body or error.status_line},
                      ensure_ascii=False)


app.default_error_handler = json_error
observability.install(app, 'api')
