"""MiniTwit's web UI: ITU-MiniTwit for people.

A Bottle app, WSGI callable `minitwit:app` (port 5000), with the original's
URLs, forms and words. It shares models.py and the database with the
simulator API, so a user registered there signs in here, and a message
posted there shows here at once.

What every request goes through: pipeline.py's body cap, path check,
database connection and 503, and here the signed-in user and the refusal
of requests that change something on another site's behalf
(`web_request`). Errors are Bottle's abort(), shown by `error_page`.

Cross-site requests are told apart as browsers say them (Sec-Fetch-Site,
else Origin), not with tokens in forms: the course's scripts post plain
forms and follow the original's GET links, as they did with the original.

Sessions are a cookie holding the user id, when it was issued and the
user's sign-out count (signing out ends every session), with an HMAC made
here with hmac and hashlib (not Bottle's signed cookies, which unpickle
what they read). The key is MINITWIT_SECRET_KEY; with MINITWIT_ENV=production the app
refuses to start without one.
"""
import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import os
import re
import time
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

import bottle
from bottle import (
    Bottle,
    HTTPError,
    HTTPResponse,
    abort,
    redirect,
    request,
    response,
    static_file,
)
from peewee import IntegrityError

import database
import models
import observability
import passwords
from models import Message, Session, SignInFailure, User
from pipeline import Pipeline

ROOT = os.path.dirname(os.path.abspath(__file__))
# Absolute, so the app finds its files whatever folder it is started from.
VIEWS = [os.path.join(ROOT, 'views')]
STATIC = os.path.join(ROOT, 'static')

PER_PAGE = 30
SESSION_LIFETIME = 30 * 24 * 3600  # seconds; then sign in again
# Failed sign-ins allowed a minute, per user name and per client address
# (several people may share one), before a 429: a password guesser gets
# 5 guesses a minute at one account.
NAME_FAILURES = 5
ADDRESS_FAILURES = 20
MIN_SECRET = 32
DEVELOPMENT_SECRET = 'minitwit-development-secret-never-use-in-production'  # noqa: S105 (production refuses it)

# No inline script or style anywhere, and no framing: the policy says so.
SECURITY_HEADERS = {
    'Content-Security-Policy': (
        "default-src 'none'; style-src 'self'; "
        "img-src 'self' https://www.gravatar.com; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"),
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    # Gravatar need not learn which pages people read.
    'Referrer-Policy': 'same-origin',
}


def secret_key():
    """The key that signs cookies: MINITWIT_SECRET_KEY, or a development
    default that MINITWIT_ENV=production refuses, as it refuses any key too
    short to be random (a placeholder such as CHANGE-ME)."""
    secret = os.environ.get('MINITWIT_SECRET_KEY', '')
    if os.environ.get('MINITWIT_ENV') == 'production' and \
            (secret == DEVELOPMENT_SECRET or len(secret) < MIN_SECRET):
        raise RuntimeError(
            'MINITWIT_ENV=production needs MINITWIT_SECRET_KEY: at least %d '
            'random characters, not the development default; make one with '
            'python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
            % MIN_SECRET)
    return (secret or DEVELOPMENT_SECRET).encode('utf-8')


SECRET_KEY = secret_key()
app = Bottle()


# --- signed values: the session and flashes -------------------------------------

def signature(purpose, value):
    """An HMAC-SHA256 of `value`; `purpose` keeps a signature made for one
    thing (a session) from passing for another (a flash)."""
    mac = hmac.new(SECRET_KEY, purpose.encode('ascii') + b'\0' +
                   value.encode('utf-8'), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b'=').decode('ascii')


def sign(purpose, value):
    """`value.signature`, for a cookie."""
    return '%s.%s' % (value, signature(purpose, value))


def unsign(purpose, token):
    """The value of a `sign`ed token, or None when it was tampered with."""
    value, _, given = (token or '').rpartition('.')
    if value and hmac.compare_digest(
            given.encode('utf-8'), signature(purpose, value).encode('ascii')):
        return value
    return None


def https():
    """Whether the browser reached us over HTTPS (nginx in front says so
    in X-Forwarded-Proto)."""
    return request.urlparts.scheme == 'https'


def set_cookie(name, value, max_age=None):
    """Set a cookie no script can read and no other site's request sends
    along, except when following a link here."""
    lifetime = {} if max_age is None else {'max_age': max_age}
    response.set_cookie(name, value, path='/', httponly=True,
                        samesite='lax', secure=https(), **lifetime)


def delete_cookie(name):
    """Remove a cookie set by `set_cookie`."""
    response.delete_cookie(name, path='/', httponly=True, samesite='lax',
                           secure=https())


def current_user():
    """The signed-in User, or None."""
    return request.environ.get('minitwit.user')


def session_value(user_id, issued=None, generation=0):
    """What a session cookie signs: the user id, when it was issued, and
    how many times the user had signed out then (models.Session)."""
    return '%d:%d:%d' % (user_id, time.time() if issued is None else issued,
                         generation)


def signed_in_user():
    """The User the session cookie names, if its signature holds, it was
    issued less than SESSION_LIFETIME ago (a stolen cookie does not last)
    and the user has not signed out since."""
    value = unsign('session', request.get_cookie('session'))
    match = re.fullmatch(r'(\d{1,18}):(\d{1,18}):(\d{1,18})', value or '')
    if match is None:
        return None
    age = time.time() - int(match.group(2))
    if not -60 < age < SESSION_LIFETIME:
        return None
    user, generation = Session.user(int(match.group(1)))
    if generation != int(match.group(3)):
        return None
    return user


def sign_in(user):
    """Make this browser `user`'s: the session cookie holds only the id,
    when it was issued and the user's sign-out count, for SESSION_LIFETIME."""
    generation = Session.user(user.user_id)[1]
    set_cookie('session', sign('session', session_value(
        user.user_id, generation=generation)), max_age=SESSION_LIFETIME)


def flash(message):
    """Show `message` on the next page this browser renders."""
    messages = request.environ.setdefault('minitwit.flashes', [])
    messages.append(message)
    data = base64.urlsafe_b64encode(json.dumps(messages).encode('utf-8'))
    set_cookie('flash', sign('flash', data.decode('ascii')))


def pop_flashes():
    """The messages flashed for this page, which will not show again."""
    data = unsign('flash', request.get_cookie('flash'))
    if request.get_cookie('flash') is not None:
        delete_cookie('flash')
    return json.loads(base64.urlsafe_b64decode(data)) if data else []


# --- pages -------------------------------------------------------------------

# A timeline page calls the three below for each of its 30 messages, and
# most pages show authors and messages that other pages showed a moment
# ago: computed afresh, they were about a tenth of a page's time.
TEMPLATE_CACHE = 4096


@functools.lru_cache(TEMPLATE_CACHE)
def user_url(username):
    """The URL of a user's timeline, for any name: every character that is
    not safe in one path segment is quoted ('/' and '\\' too), so the link
    stays on this site and reaches that user. Names that a browser or a
    fixed route would read otherwise ('..', 'public') are marked with a
    leading '!', which quoting never leaves in a name (see user_name)."""
    segment = quote(username, safe='')
    if username in ('.', '..') or username in fixed_segments():
        segment = '!' + segment
    return '/' + segment


def user_name(segment):
    """The user name that a segment of a user_url stands for."""
    return unquote(segment.removeprefix('!'))


@functools.cache
def fixed_segments():
    """The first path segments of the fixed routes (/public, /login...)."""
    return {route.rule.split('/')[1] for route in app.routes
            if '<' not in route.rule.split('/')[1]}


@functools.lru_cache(TEMPLATE_CACHE)
def gravatar(email, size=48):
    """The Gravatar of `email`, twice `size` for sharp high-DPI screens."""
    digest = hashlib.sha256(email.strip().lower().encode('utf-8')).hexdigest()
    return 'https://www.gravatar.com/avatar/%s?d=identicon&s=%d' % (
        digest, size * 2)


@functools.lru_cache(TEMPLATE_CACHE)
def format_datetime(timestamp):
    """A pub_date as the original shows it: 2024-01-31 @ 13:37 (UTC)."""
    return time.strftime('%Y-%m-%d @ %H:%M', time.gmtime(timestamp))


def escape(text):
    """HTML-escape `text` as the original's templates (Jinja) did: quotes
    as &#34; and &#39;, so pages and flashes read as the original's."""
    return (str(text).replace('&', '&amp;').replace('<', '&lt;')
            .replace('>', '&gt;').replace('"', '&#34;').replace("'", '&#39;'))


class Template(bottle.SimpleTemplate):
    """Bottle's templates with `escape`, in the layout they rebase on too."""

    def prepare(self, **options):
        super().prepare(**dict(options, escape_func=escape))


def render(name, **values):
    """A page from views/, with what the layout needs."""
    return bottle.template(
        name, template_adapter=Template, template_lookup=VIEWS,
        user=current_user(), flashes=pop_flashes(), user_url=user_url,
        gravatar=gravatar, format_datetime=format_datetime, **values)


# Error pages' titles, where the status's own name would not say it.
TITLES = {429: 'Too many tries'}


def error_page(error):
    """Every error, as a page that says what went wrong: abort()'s and
    Bottle's own (no such route, wrong method, 500). It is shown after the
    request's connection is closed, so it reads no database."""
    request.environ.setdefault('minitwit.user', None)
    return render('error.tpl', message=error.body or error.status_line,
                  title=TITLES.get(error.status_code, error.status_line[4:]),
                  confirm=None)


app.default_error_handler = error_page


def form(name):
    """A form field as text; '' when missing or not UTF-8."""
    return request.forms.getunicode(name, default='')


def before_key():
    """The `before` parameter of an older page: (pub_date, message_id)."""
    raw = request.query.get('before')
    if raw is None:
        return None
    match = re.fullmatch(r'([0-9]{1,18})\.([0-9]{1,18})', raw)
    if not match:
        abort(400, 'This link to older messages is broken: "before" must '
              'look like 1700000000.42.')
    return int(match.group(1)), int(match.group(2))


def timeline_page(title, timeline, status=200, **values):
    """A timeline page: `timeline(before, size)` is one of the models'
    paged timelines. One row more than a page says whether there is an
    older page, which starts after the last message shown."""
    messages = list(timeline(before_key(), PER_PAGE + 1))
    older = None
    if len(messages) > PER_PAGE:
        messages = messages[:PER_PAGE]
        older = '%d.%d' % (messages[-1].pub_date, messages[-1].message_id)
    values.setdefault('profile', None)
    values.setdefault('error', None)
    values.setdefault('text', '')
    response.status = status
    return render('timeline.tpl', title=title, messages=messages,
                  older=older, first_page=request.query.get('before') is None,
                  **values)


def my_timeline(status=200, **values):
    """The signed-in user's home timeline."""
    user = current_user()
    return timeline_page('My Timeline', user.timeline, status=status,
                         endpoint='timeline', **values)


def client_address():
    """The address of the client: behind nginx on this host (a loopback
    peer), the one nginx says in X-Real-IP, which it always sets."""
    peer = request.environ.get('REMOTE_ADDR', '')
    try:
        proxied = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        proxied = False
    return request.environ.get('HTTP_X_REAL_IP', peer) if proxied else peer


def sign_in_subjects(username):
    """The SignInFailure subjects of a sign-in as `username` from this
    client: hashed, so that what people type as a name (a password, at
    times) is not kept, and any name fits the column."""
    return ['%s:%s' % (kind, hashlib.sha256(value.encode('utf-8')).hexdigest())
            for kind, value in (('name', username), ('addr', client_address()))]


def signed_in_or_401(action):
    """The signed-in user; anyone else gets a 401 page."""
    user = current_user()
    if user is None:
        abort(401, 'You have to sign in to %s.' % action)
    return user


def user_or_404(user, username):
    """`user`, found by `username`; a 404 page when there is none."""
    if user is None:
        abort(404, 'There is no user called "%s".' % username)
    return user


# --- what every request goes through ------------------------------------------

DEFAULT_PORTS = {'http': 80, 'https': 443}


def origin(url):
    """(scheme, host, port) of a URL; ValueError for a malformed one."""
    parts = urlsplit(url)
    return (parts.scheme.lower(), (parts.hostname or '').lower(),
            parts.port or DEFAULT_PORTS.get(parts.scheme.lower()))


def cross_site():
    """Whether the browser says another site's page sent this request.

    Browsers say where a request comes from: Sec-Fetch-Site, or (older
    ones) Origin, compared with our own origin as the browser sees it
    (behind nginx, X-Forwarded-Proto and Host). A request with neither
    comes from a script or an old browser, not from another site's page
    in a browser that could carry this user's cookie: it goes through,
    as with the original (and Go's CrossOriginProtection)."""
    # From the environ: Bottle's get_header fails on a value not UTF-8.
    fetch_site = request.environ.get('HTTP_SEC_FETCH_SITE')
    if fetch_site is not None:
        return fetch_site not in ('same-origin', 'none')
    sender = request.environ.get('HTTP_ORIGIN')
    if sender is None:
        return False
    try:
        # 'null' (a sandboxed or privacy-sensitive page) is no origin of ours.
        return origin(sender) != origin(request.url)
    except ValueError:
        return True  # a malformed one (a port that is no number)


def changes(route):
    """Whether the request changes something: a POST, or one of the
    original's GET links (the routes that say changes=True)."""
    return request.method == 'POST' or route.config.get('changes', False)


def refuse_cross_site():
    """Refuse a change asked for by another site's page; a GET gets a
    button that does it from our own."""
    if changes(request.route) and cross_site():
        raise HTTPResponse(render(
            'error.tpl', title='Not from MiniTwit', message='This request '
            'came from another site, so MiniTwit did nothing. If you meant '
            'it, do it here.',
            confirm=request.path if request.method == 'GET' else None), 403)


def web_request(callback):
    """Each view, on pipeline.py's connection: the signed-in user first."""
    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        request.environ['minitwit.user'] = signed_in_user()
        refuse_cross_site()
        return callback(*args, **kwargs)
    return wrapper


def must_read_writes(route):
    """A write, or the page right after one (its flash is on the way),
    must see what this browser wrote, whichever database node took it."""
    return changes(route) or request.get_cookie('flash') is not None


app.install(Pipeline(
    {400: 'That address is not valid UTF-8.',
     413: 'That was more than a form can hold.',
     503: 'MiniTwit cannot reach its database right now. Please try again '
          'in a moment.'},
    causal=must_read_writes))
app.install(web_request)


def sent_path():
    """The path as the client sent it, still quoted, from waitress's
    REQUEST_URI; None without one (then PATH_INFO, unquoted, is all)."""
    raw = request.environ.get('REQUEST_URI')
    if not raw:
        return None
    # Absolute in a request to a proxy; '//x' is a path here, not a host.
    return raw.partition('?')[0] if raw.startswith('/') else urlsplit(raw).path


@app.hook('before_request')
def route_on_sent_path():
    """Route on the path as the client sent it, each segment quoted alike,
    so that a user called 'a/follow' (/a%2Ffollow) is not read as the
    follow link of 'a' (/a/follow). (pipeline.py has refused a path that
    is not UTF-8, before this.)"""
    sent = sent_path()
    segments = []
    for segment in (sent or request.environ['bottle.raw_path']).split('/'):
        marker = '!' if segment.startswith('!') else ''  # user_url's mark
        data = segment.removeprefix(marker).encode('latin-1')
        if sent:
            data = unquote_to_bytes(data)
        segments.append(marker + quote(data, safe=''))
    request.environ['PATH_INFO'] = '/'.join(segments)


@app.hook('after_request')
def security_headers():
    """Sent with every answer, errors and redirects included."""
    for name, value in SECURITY_HEADERS.items():
        response.set_header(name, value)


# --- the UI ------------------------------------------------------------------
# Fixed paths come first: `/<username:path>` takes whatever is left.

@app.get('/static/<filename:path>', skip=True)
def static(filename):
    """The stylesheet and the icon."""
    return static_file(filename, root=STATIC,
                       headers={'Cache-Control': 'public, max-age=3600'})


@app.get('/healthz', skip=True)
def healthz():
    """200 when this process can reach the database, else 503 (for
    deploys and load balancers): only that, to anybody. Which database
    node it uses, the API's /healthz tells the simulator's credentials."""
    response.content_type = 'application/json'
    try:
        database.causal(False)
        with database.connection():
            database.status()
    except database.UNAVAILABLE_ERRORS:
        response.status = 503
        response.set_header('Retry-After', '1')
        return json.dumps({'status': 'unavailable'})
    return json.dumps({'status': 'ok'})


@app.get('/')
def timeline():
    """My timeline; visitors who are not signed in see the public one."""
    if current_user() is None:
        redirect('/public')
    return my_timeline()


@app.get('/public')
def public_timeline():
    """Everybody's messages, newest first."""
    return timeline_page('Public Timeline', Message.public_timeline,
                         endpoint='public_timeline')


@app.route('/register', method=['GET', 'POST'])
def register():
    """Sign up; a signed-in user is sent to their timeline instead."""
    if current_user() is not None:
        redirect('/')
    error = None
    if request.method == 'POST':
        username, email = form('username'), form('email')
        password, password2 = form('password'), form('password2')
        error = models.registration_error(username, email, password)
        if error is None and password != password2:
            error = 'The two passwords do not match'
        elif error is None and User.by_name(username) is not None:
            error = 'The username is already taken'
        if error is None:
            # Hash first: the slow part never holds the write lock.
            pw_hash = passwords.hash_password(password)
            try:
                User.register(username, email, pw_hash)
            except IntegrityError:
                error = 'The username is already taken'  # by a racing sign-up
            else:
                flash('You were successfully registered and can login now')
                redirect('/login')
        response.status = 400
    return render('register.tpl', title='Sign Up', error=error,
                  username=form('username'), email=form('email'))


@app.route('/login', method=['GET', 'POST'])
def login():
    """Sign in; the original's hashes are upgraded on the way."""
    if current_user() is not None:
        redirect('/')
    error = None
    if request.method == 'POST':
        name, address = sign_in_subjects(form('username'))
        wait = SignInFailure.wait({name: NAME_FAILURES,
                                   address: ADDRESS_FAILURES})
        if wait:
            raise HTTPError(429, 'Too many failed sign-ins. Please wait %d '
                            'seconds, then try again.' % wait,
                            **{'Retry-After': str(wait)})
        user = User.by_name(form('username'))
        if user is None:
            error = 'Invalid username'
        elif not user.check_password(form('password')):
            error = 'Invalid password'
        if error is None:
            SignInFailure.clear(name)
            sign_in(user)
            flash('You were logged in')
            redirect('/')
        with database.db.atomic():
            SignInFailure.add([name, address])
        response.status = 400
    return render('login.tpl', title='Sign In', error=error,
                  username=form('username'))


@app.route('/logout', method=['GET', 'POST'], changes=True)
def logout():
    """Sign out: the original's link, or the button in the navigation.
    It ends every session of the user, a cookie copied before included."""
    if current_user() is not None:
        with database.db.atomic():
            Session.end_all(current_user().user_id)
    delete_cookie('session')
    flash('You were logged out')
    redirect('/public')


@app.post('/add_message')
def add_message():
    """Post a message as the signed-in user."""
    user = signed_in_or_401('post a message')
    text = form('text')
    error = models.message_error(text)
    if error is not None:
        return my_timeline(status=400, error=error, text=text)
    user.post(text)
    flash('Your message was recorded')
    redirect('/')


@app.route('/<username:path>/follow', method=['GET', 'POST'], changes=True)
def follow_user(username):
    """Follow `username`: the original's link, or the button on their page."""
    user = signed_in_or_401('follow someone')
    name = user_name(username)
    other = user_or_404(User.by_name(name), name)
    user.follow(other)
    flash('You are now following "%s"' % other.username)
    redirect(user_url(other.username))


@app.route('/<username:path>/unfollow', method=['GET', 'POST'], changes=True)
def unfollow_user(username):
    """Stop following `username`."""
    user = signed_in_or_401('unfollow someone')
    name = user_name(username)
    other = user_or_404(User.by_name(name), name)
    user.unfollow(other)
    flash('You are no longer following "%s"' % other.username)
    redirect(user_url(other.username))


@app.get('/<username:path>')
def user_timeline(username):
    """One user's messages, with follow or unfollow for the signed-in."""
    viewer = current_user()
    name = user_name(username)
    profile = user_or_404(User.profile(name, viewer and viewer.user_id), name)
    return timeline_page(
        "%s's Timeline" % profile.username,
        functools.partial(Message.user_timeline, profile.user_id),
        endpoint='user_timeline', profile=profile)


observability.install(app, 'web')
