"""The web UI's sessions: signed cookies for the signed-in user and the
flashes, sign-in and sign-out with their tables of sign-out counts
(`Session`) and failed sign-ins (`SignInFailure`), and which requests are
the session's own, not sent by another site's page (`cross_site`).

A session cookie holds the user id, when it was issued and the user's
sign-out count (`Session`: signing out ends every session), with an
HMAC made here (Bottle's signed cookies unpickle what they read), keyed by
MINITWIT_SECRET_KEY; with MINITWIT_ENV=production the app refuses to start
without a real one.
"""
import base64
import hashlib
import hmac
import ipaddress
import json
import os
import re
import time
from urllib.parse import urlsplit

from bottle import request, response
from peewee import JOIN, SQL, BigIntegerField, Case, CharField, IntegerField, fn

import database
from database.compiled import compiled
from models import BaseModel, User, upsert

SESSION_LIFETIME = 30 * 24 * 3600  # seconds; then sign in again
DEVELOPMENT_SECRET = 'minitwit-development-secret-never-use-in-production'  # noqa: S105 (production refuses it)


class Session(BaseModel):
    """How often a user signed out (no row: 0): a session cookie is good
    while the count it names is, so signing out ends every session."""
    user_id = IntegerField(primary_key=True)
    generation = IntegerField()

    class Meta:
        table_name = 'user_session'

    @compiled(one=True)
    def signed_in(cls, user_id):
        """The User `user_id` with `.generation`, or None."""
        return (User.select(User, fn.COALESCE(cls.generation, SQL('0'))
                            .alias('generation'))
                .join(cls, JOIN.LEFT_OUTER, on=(cls.user_id == User.user_id))
                .where(User.user_id == user_id))

    @compiled
    def end_all(cls, user_id):
        """End every session of the user `user_id`."""
        return upsert(cls.insert(user_id=user_id, generation=1), [cls.user_id],
                      update={cls.generation: cls.generation + 1})


class SignInFailure(BaseModel):
    """Failed sign-ins of a name or address (hashed) in a window of WINDOW
    seconds from `since`: in the database, so that all processes count."""
    subject = CharField(max_length=80, primary_key=True)
    failures = IntegerField()
    since = BigIntegerField()

    WINDOW = 60

    class Meta:
        table_name = 'sign_in_failure'
        # Windows that are over are an index range, for add() to remove.
        indexes = ((('since',), False),)

    @classmethod
    def wait(cls, limits, now=None):
        """How many seconds until `limits` ({subject: most failures}) allow
        another try: 0 when they do now."""
        now = time.time() if now is None else now
        rows = cls.select().where(cls.subject.in_(list(limits)))
        return max([0] + [int(row.since + cls.WINDOW - now) + 1 for row in rows
                          if row.failures >= limits[row.subject] and
                          row.since + cls.WINDOW > now])

    @classmethod
    def add(cls, subjects, now=None):
        """Count a failure of each of `subjects`, in the current window or a
        new one. Windows that are over go: guessing names leaves no rows."""
        now = int(time.time() if now is None else now)
        database.transaction(cls.expire.statement(now - cls.WINDOW), *(
            cls.count.statement(subject, now, now - cls.WINDOW)
            for subject in subjects))

    @compiled
    def expire(cls, start):
        return cls.delete().where(cls.since <= start)

    @compiled
    def count(cls, subject, now, start):
        # MySQL sets these in order, so `failures` is decided on the
        # window as it was, before `since` moves.
        current = cls.since > start
        return upsert(cls.insert(subject=subject, failures=1, since=now),
                      [cls.subject],
                      update={cls.failures: Case(None, [(current, cls.failures + 1)], 1),
                              cls.since: Case(None, [(current, cls.since)], now)})

    @compiled
    def clear(cls, subject):
        return cls.delete().where(cls.subject == subject)


MODELS = (Session, SignInFailure)

secret = os.environ.get('MINITWIT_SECRET_KEY') or DEVELOPMENT_SECRET
if os.environ.get('MINITWIT_ENV') == 'production' and \
        (secret == DEVELOPMENT_SECRET or len(secret) < 32):
    raise RuntimeError('MINITWIT_ENV=production needs MINITWIT_SECRET_KEY: at least 32 random '
                       'characters, not the development default; make one with python3 -c '
                       '"import secrets; print(secrets.token_urlsafe(32))"')
SECRET_KEY = secret.encode('utf-8')


def signature(purpose, value):
    """An HMAC of `value` (ours: Bottle's signed cookies unpickle what they read);
    `purpose` keeps a session's from passing for a flash's."""
    mac = hmac.new(SECRET_KEY, purpose.encode('ascii') + b'\0' + value.encode('utf-8'),
                   hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode('ascii')


def sign(purpose, value):
    return '%s.%s' % (value, signature(purpose, value))


def unsign(purpose, token):
    """The value of a `sign`ed token, or None when it was tampered with."""
    value, _, given = (token or '').rpartition('.')
    if value and hmac.compare_digest(given.encode('utf-8'), signature(purpose, value).encode()):
        return value
    return None


def cookie_options():
    """No script reads our cookies; no other site's request sends them (but links)."""
    return {'path': '/', 'httponly': True, 'samesite': 'lax',
            'secure': request.urlparts.scheme == 'https'}


def session_value(user_id, issued=None, generation=0):
    """What a session cookie signs: the user, when, and their sign-out count."""
    return '%d:%d:%d' % (user_id, time.time() if issued is None else issued, generation)


def signed_in_user():
    """The User of an intact session cookie, younger than SESSION_LIFETIME, since sign-out."""
    value = unsign('session', request.get_cookie('session'))
    match = re.fullmatch(r'(\d{1,18}):(\d{1,18}):(\d{1,18})', value or '')
    if match is None or not -60 < time.time() - int(match[2]) < SESSION_LIFETIME:
        return None
    user = Session.signed_in(int(match[1]))
    return user if user and user.generation == int(match[3]) else None


def current_user():
    return request.environ.get('minitwit.user')


def flash(message):
    """Show `message` on the next page this browser renders."""
    messages = request.environ.setdefault('minitwit.flashes', [])
    messages.append(message)
    data = base64.urlsafe_b64encode(json.dumps(messages).encode('utf-8'))
    response.set_cookie('flash', sign('flash', data.decode('ascii')), **cookie_options())


def pop_flashes():
    """The messages flashed for this page, which will not show again."""
    token = request.get_cookie('flash')
    if token is not None:
        response.delete_cookie('flash', **cookie_options())
    data = unsign('flash', token)
    return json.loads(base64.urlsafe_b64decode(data)) if data else []


def sign_in_subjects(username):
    """What failed sign-ins count against: the name and the client address
    (behind nginx, a loopback peer, its X-Real-IP), hashed (names may be passwords)."""
    address = request.environ.get('REMOTE_ADDR', '')
    try:
        if ipaddress.ip_address(address).is_loopback:
            address = request.environ.get('HTTP_X_REAL_IP', address)
    except ValueError:
        pass
    return ['%s:%s' % (kind, hashlib.sha256(value.encode('utf-8')).hexdigest())
            for kind, value in (('name', username), ('addr', address))]


def sign_in(user):
    """Make this browser `user`'s for SESSION_LIFETIME."""
    value = session_value(user.user_id,
                          generation=Session.signed_in(user.user_id).generation)
    response.set_cookie('session', sign('session', value), max_age=SESSION_LIFETIME,
                        **cookie_options())


def sign_out(user):
    """End every session of `user` (copied cookies too), and this browser's."""
    if user is not None:
        Session.end_all(user.user_id)
    response.delete_cookie('session', **cookie_options())


def origin(url):
    """(scheme, host, port) of a URL; ValueError for a malformed one."""
    parts = urlsplit(url)
    port = parts.port or {'http': 80, 'https': 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or '').lower(), port


def cross_site():
    """Whether the browser says (Sec-Fetch-Site, else Origin) that another site's
    page sent this request. Scripts send neither: they go through, as with the original."""
    # The environ's: Bottle's get_header fails on a value not UTF-8.
    fetch_site = request.environ.get('HTTP_SEC_FETCH_SITE')
    if fetch_site is not None:
        return fetch_site not in ('same-origin', 'none')
    sender = request.environ.get('HTTP_ORIGIN')
    try:
        return sender is not None and origin(sender) != origin(request.url)
    except ValueError:  # a port that is no number
        return True


def changes(route):
    """A POST, or one of the original's GET links (routes with changes=True)."""
    return request.method == 'POST' or route.config.get('changes', False)
