"""What every request to either app goes through: a Bottle plugin that both
install first, so it wraps their own.

It refuses a body larger than a form or a message can be (413) and a path
that is not UTF-8 (400: Bottle would drop those bytes and could look up
another name), then runs the view on a database connection of its own,
answering 503 with `Retry-After: 1` when the database cannot be reached.
Errors are Bottle's: a check or a view calls abort(status, message), and
each app's error handler shows it, the web UI as a page, the API as JSON.
"""
import functools

from bottle import HTTPError, abort, request

import database

MAX_BODY = 64 * 1024


class Pipeline:
    """The plugin. `messages` are the app's words for 400, 413 and 503;
    `causal(route)` says whether a request must see every write made before
    it (on a Galera cluster: whichever node took them); `check(route)`, if
    given, runs before a connection is taken."""

    name = 'pipeline'
    api = 2

    def __init__(self, messages, causal, check=None):
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
            if self.check is not None:
                self.check(route)
            database.causal(self.causal(route))
            try:
                with database.connection():
                    return callback(*args, **kwargs)
            except database.UNAVAILABLE_ERRORS:
                raise HTTPError(503, self.messages[503],
                                **{'Retry-After': '1'}) from None
        return wrapper
