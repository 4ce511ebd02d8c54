"""What every request to either app goes through, a Bottle plugin both install
first: 413 for a body larger than a form or message can be, 400 for a path not
UTF-8 (Bottle would drop those bytes and could find another user), then the view
on a database connection of its own; 503 (`Retry-After: 1`) when the database is down.
And what both apps accept in a sign-up and a message."""
import functools

from bottle import HTTPError, abort, request

import database
from models import MAX_EMAIL, MAX_MESSAGE, MAX_PASSWORD, MAX_USERNAME, unusable_text

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


def registration_error(username, email, password):
    """What is wrong with a sign-up, in the original's words, or None
    (whether the name is free, the unique index says)."""
    if not isinstance(username, str) or not username.strip():
        return 'You have to enter a username'
    elif not isinstance(email, str) or '@' not in email:
        return 'You have to enter a valid email address'
    elif not isinstance(password, str) or not password:
        return 'You have to enter a password'
    elif any(unusable_text(f) for f in (username, email, password)):
        return 'Names, addresses and passwords cannot contain NUL or unpaired surrogate characters'
    elif len(username) > MAX_USERNAME:
        return 'The username can be at most %d characters' % MAX_USERNAME
    elif len(email) > MAX_EMAIL:
        return 'The email address can be at most %d characters' % MAX_EMAIL
    elif len(password) > MAX_PASSWORD:
        return 'The password can be at most %d characters' % MAX_PASSWORD
    return None


def message_error(text):
    """What is wrong with a message's text, or None."""
    if not isinstance(text, str) or not text.strip():
        return 'You have to enter a message'
    elif unusable_text(text):
        return 'A message cannot contain NUL or unpaired surrogate characters'
    elif len(text) > MAX_MESSAGE:
        return 'A message can be at most %d characters' % MAX_MESSAGE
    return None
