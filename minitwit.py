"""MiniTwit's web UI: ITU-MiniTwit for people, with the original's URLs, forms
and words. A Bottle app, WSGI `minitwit:app` (port 5000), on the models and
database of the simulator API. Every view runs on pipeline.py's connection,
after `web_request` found the signed-in user and refused a change that another
site's page asked for (sessions.py): no tokens, so scripts post plain forms."""
import functools
import hashlib
import json
import os
import re
import time
from urllib.parse import quote, unquote, unquote_to_bytes, urlsplit

import bottle
from bottle import Bottle, HTTPError, HTTPResponse, abort, redirect, request, response, static_file
from peewee import IntegrityError

import database
import observability
import passwords
import pipeline
import sessions
from models import NEWEST, Message, User
from pipeline import Pipeline
from sessions import current_user, flash

ROOT = os.path.dirname(os.path.abspath(__file__))  # whatever folder we start in
VIEWS = [os.path.join(ROOT, 'views')]
STATIC = os.path.join(ROOT, 'static')
PER_PAGE = 30
# Failed sign-ins a minute before a 429, per name and per client address.
NAME_FAILURES = 5
ADDRESS_FAILURES = 20
# No script or inline style at all, no framing, and Gravatar learns no page.
SECURITY_HEADERS = {
    'Content-Security-Policy': (
        "default-src 'none'; style-src 'self'; "
        "img-src 'self' https://www.gravatar.com; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"),
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'same-origin',
}

app = Bottle()


# --- pages -------------------------------------------------------------------
# Remembered: a timeline calls them for its 30 messages, mostly on what pages before showed.

@functools.lru_cache(4096)
def user_url(username):
    """A user's timeline: the name quoted as one path segment ('/' too), and
    marked with '!' when a browser or a fixed route would read it otherwise
    ('..', 'public'); quoting never leaves a '!' in a name."""
    segment = quote(username, safe='')
    if username in ('.', '..') or username in fixed_segments():
        segment = '!' + segment
    return '/' + segment


def user_name(segment):
    """The user name a segment of a user_url stands for."""
    return unquote(segment.removeprefix('!'))


@functools.cache
def fixed_segments():
    """The first segments of the fixed routes: public, login, metrics..."""
    firsts = (route.rule.split('/')[1] for route in app.routes)
    return {first for first in firsts if '<' not in first}


@functools.lru_cache(4096)
def gravatar(email, size=48):
    """The Gravatar of `email`, at twice `size` for high-DPI screens."""
    digest = hashlib.sha256(email.strip().lower().encode('utf-8')).hexdigest()
    return 'https://www.gravatar.com/avatar/%s?d=identicon&s=%d' % (digest, size * 2)


@functools.lru_cache(4096)
def format_datetime(timestamp):
    """A pub_date as the original shows it: 2024-01-31 @ 13:37 (UTC)."""
    return time.strftime('%Y-%m-%d @ %H:%M', time.gmtime(timestamp))


def escape(text):
    """HTML-escape as the original's Jinja did, quotes as &#34; and &#39;."""
    return (str(text).replace('&', '&amp;').replace('<', '&lt;')
            .replace('>', '&gt;').replace('"', '&#34;').replace("'", '&#39;'))


class Template(bottle.SimpleTemplate):
    """Bottle's templates with `escape`, in the layout they rebase on too."""

    defaults = dict(user_url=user_url, gravatar=gravatar, format_datetime=format_datetime)

    def prepare(self, **options):
        super().prepare(**dict(options, escape_func=escape))


def render(name, **values):
    """A page from views/, with the signed-in user and the flashes."""
    return bottle.template(name, template_adapter=Template, template_lookup=VIEWS,
                           user=current_user(), flashes=sessions.pop_flashes(), **values)


def error_page(error):
    """Every error (abort()'s, Bottle's 404, 405, 500) as a page, made without the database."""
    title = 'Too many tries' if error.status_code == 429 else error.status_line[4:]
    return render('error.tpl', title=title, message=error.body or error.status_line,
                  confirm=None)


app.default_error_handler = error_page  # for every status


def form(name):
    """A form field as text; '' when missing or not UTF-8."""
    return request.forms.getunicode(name, default='')


def timeline_page(title, timeline, endpoint, profile=None, error=None, text=''):
    """A page of `timeline(pub_date, message_id, size)`, older than ?before=pub_date.message_id.
    A row more than a page says there is an older one, after the last shown."""
    before, older_than = request.query.get('before'), NEWEST
    if before is not None:
        match = re.fullmatch(r'([0-9]{1,18})\.([0-9]{1,18})', before)
        if not match:
            abort(400, 'This link to older messages is broken: "before" must '
                  'look like 1700000000.42.')
        older_than = int(match[1]), int(match[2])
    messages = timeline(*older_than, PER_PAGE + 1)
    older = None
    if len(messages) > PER_PAGE:
        messages = messages[:PER_PAGE]
        older = '%d.%d' % (messages[-1].pub_date, messages[-1].message_id)
    return render('timeline.tpl', title=title, messages=messages, older=older,
                  first_page=before is None, endpoint=endpoint,
                  profile=profile, error=error, text=text)


def signed_in_or_401(action):
    user = current_user()
    if user is None:
        abort(401, 'You have to sign in to %s.' % action)
    return user


def user_or_404(user, name):
    if user is None:
        abort(404, 'There is no user called "%s".' % name)
    return user


# --- what every request goes through ------------------------------------------

def web_request(callback):
    """Plugin: the signed-in user, and a 403 page for a change asked for by
    another site's page; a GET's has a button that does it from ours."""
    @functools.wraps(callback)
    def wrapper(*args, **kwargs):
        request.environ['minitwit.user'] = sessions.signed_in_user()
        if sessions.changes(request.route) and sessions.cross_site():
            confirm = request.path if request.method == 'GET' else None
            raise HTTPResponse(render(
                'error.tpl', title='Not from MiniTwit', confirm=confirm,
                message='This request came from another site, so MiniTwit did '
                        'nothing. If you meant it, do it here.'), 403)
        return callback(*args, **kwargs)
    return wrapper


# A write, and the page after one (its flash is on the way), must see what
# this browser wrote, whichever database node took it (causal).
app.install(Pipeline(
    {400: 'That address is not valid UTF-8.',
     413: 'That was more than a form can hold.',
     503: 'MiniTwit cannot reach its database right now. Please try again in a moment.'},
    causal=lambda route: sessions.changes(route) or request.get_cookie('flash') is not None))
app.install(web_request)


@app.hook('before_request')  # after pipeline.py's, which refuses a path not UTF-8
def route_on_sent_path():
    """Route on the path as sent (waitress's REQUEST_URI, else PATH_INFO), each
    segment quoted alike: the user 'a/follow' (/a%2Ffollow) is no follow link."""
    sent, path = request.environ.get('REQUEST_URI'), request.environ['bottle.raw_path']
    if sent:  # absolute in a request to a proxy; '//x' is a path, not a host
        path = sent.partition('?')[0] if sent.startswith('/') else urlsplit(sent).path
    segments = []
    for segment in path.split('/'):
        mark = '!' if segment.startswith('!') else ''  # user_url's
        data = segment.removeprefix(mark).encode('latin-1')
        segments.append(mark + quote(unquote_to_bytes(data) if sent else data, safe=''))
    request.environ['PATH_INFO'] = '/'.join(segments)


@app.hook('after_request')
def security_headers():
    """On every answer, errors and redirects too."""
    response.headers.update(SECURITY_HEADERS)


# --- the views -----------------------------------------------------------------
# Fixed paths first: `/<username:path>` takes whatever is left.

@app.get('/static/<filename:path>', skip=True)
def static(filename):
    """The stylesheet and the icon."""
    return static_file(filename, root=STATIC, headers={'Cache-Control': 'public, max-age=3600'})


@app.get('/healthz', skip=True)
def healthz():
    """200 when this process reaches the database, else 503; nothing more."""
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
    """My timeline; a visitor is sent to the public one."""
    if current_user() is None:
        redirect('/public')
    return timeline_page('My Timeline', current_user().timeline, 'timeline')


@app.get('/public')
def public_timeline():
    """Everybody's messages, newest first."""
    return timeline_page('Public Timeline', Message.public_timeline, 'public_timeline')


@app.route('/register', method=['GET', 'POST'])
def register():
    """Sign up; a signed-in user is sent to their timeline."""
    if current_user() is not None:
        redirect('/')
    error = None
    if request.method == 'POST':
        username, email, password = form('username'), form('email'), form('password')
        error = pipeline.registration_error(username, email, password)
        if error is None and password != form('password2'):
            error = 'The two passwords do not match'
        elif error is None and User.by_name(username) is not None:
            error = 'The username is already taken'
        elif error is None:
            pw_hash = passwords.hash_password(password)  # slow: not in the transaction
            try:
                User.register(username, email, pw_hash)
            except IntegrityError:  # a sign-up that raced this one
                error = 'The username is already taken'
            else:
                flash('You were successfully registered and can login now')
                redirect('/login')
        response.status = 400
    return render('register.tpl', title='Sign Up', error=error,
                  username=form('username'), email=form('email'))


@app.route('/login', method=['GET', 'POST'])
def login():
    """Sign in; the original's password hashes are upgraded on the way."""
    if current_user() is not None:
        redirect('/')
    error = None
    if request.method == 'POST':
        name, address = sessions.sign_in_subjects(form('username'))
        wait = sessions.SignInFailure.wait({name: NAME_FAILURES, address: ADDRESS_FAILURES})
        if wait:
            raise HTTPError(429, 'Too many failed sign-ins. Please wait %d seconds, then '
                            'try again.' % wait, **{'Retry-After': str(wait)})
        user = User.by_name(form('username'))
        if user is None:
            error = 'Invalid username'
        elif not user.check_password(form('password')):
            error = 'Invalid password'
        else:
            sessions.SignInFailure.clear(name)
            sessions.sign_in(user)
            flash('You were logged in')
            redirect('/')
        sessions.SignInFailure.add([name, address])
        response.status = 400
    return render('login.tpl', title='Sign In', error=error, username=form('username'))


@app.route('/logout', method=['GET', 'POST'], changes=True)
def logout():
    """Sign out (link or button), ending all the user's sessions, copied cookies too."""
    sessions.sign_out(current_user())
    flash('You were logged out')
    redirect('/public')


@app.post('/add_message')
def add_message():
    """Post a message as the signed-in user."""
    user = signed_in_or_401('post a message')
    text = form('text')
    error = pipeline.message_error(text)
    if error is not None:
        response.status = 400
        return timeline_page('My Timeline', user.timeline, 'timeline', error=error, text=text)
    user.post(text)
    flash('Your message was recorded')
    redirect('/')


@app.route('/<username:path>/follow', method=['GET', 'POST'], changes=True)
def follow_user(username):
    """Follow a user: the original's link, or the button on their page."""
    user, name = signed_in_or_401('follow someone'), user_name(username)
    other = user_or_404(User.by_name(name), name)
    user.follow(other)
    flash('You are now following "%s"' % other.username)
    redirect(user_url(other.username))


@app.route('/<username:path>/unfollow', method=['GET', 'POST'], changes=True)
def unfollow_user(username):
    """Stop following a user."""
    user, name = signed_in_or_401('unfollow someone'), user_name(username)
    other = user_or_404(User.by_name(name), name)
    user.unfollow(other)
    flash('You are no longer following "%s"' % other.username)
    redirect(user_url(other.username))


@app.get('/<username:path>')
def user_timeline(username):
    """A user's messages, with follow or unfollow for the signed-in."""
    viewer, name = current_user(), user_name(username)
    profile = user_or_404(User.profile(name, viewer.user_id if viewer else 0), name)
    return timeline_page("%s's Timeline" % profile.username,
                         functools.partial(Message.user_timeline, profile.user_id),
                         'user_timeline', profile=profile)


observability.install(app, 'web')
