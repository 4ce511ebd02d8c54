"""What every request to either app goes through, a Bottle plugin both install
first: 413 for a body larger than a form or message can be, 400 for a path not
UTF-8 (Bottle would drop those bytes and could find another user), then the view
on a database connection of its own; 503 (`Retry-After: 1`) when the database is down."""
import functools

from bottle import HTTPError, abort, request

import database

MAX_BODY = 64 * 1024


class Pipeline:
    """`messages`: the app's words for 400, 413 and 503. `causal(route)`: must
    the request see every write made before it, whichever Galera node took it?
    `check(route)`, if given, runs before a connection is taken."""

    name, api = 'pipeline', 2

    def __init__(self, messages, causal, check=lambda route: None):
        self.messages, self.causal, self.check = messages, causal, check

    def setup(self, app):
        app.add_hook('before_request', self.check_path)

    def check_path(self):
        try:
            request.environ['bottle.raw_path'].encode('latin-1').decode('utf-8')
        except UnicodeError:
            abort(400, self.messages[400])

    def apply(self, callback, route):
        @functools.wraps(callback)
        def wrapper(*args, **kwargs):
            if request.content_length > MAX_BODY:
                abort(413, self.messages[413])
            self.check(route)
            database.causal(self.causal(route))
            try:
                with database.connection():
                    return callback(*args, **kwargs)
            except database.UNAVAILABLE_ERRORS:
                raise HTTPError(503, self.messages[503], **{'Retry-After': '1'}) from None
        return wrapper
