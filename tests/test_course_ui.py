"""The course's own check of the web UI, in the shape of its
`minitwit_tests.py` for the refactored MiniTwit: plain `requests` against a
live server, forms posted as a script posts them (no token, no Origin, no
Sec-Fetch-Site), `GET /logout`, `GET /<user>/follow` and `/unfollow` as
links, and the flashes escaped as the original's Jinja escaped them.

Each test gets its own `waitress-serve minitwit:app` on a new, empty
database of its backend, so the course's fixed user names never collide.
"""
import pytest
import requests

pytestmark = pytest.mark.slow

BASE_URL = None  # the live server of the running test: see `server` below
TIMEOUT = 30  # seconds, for every request


@pytest.fixture(autouse=True)
def server(start_server, make_db_url, monkeypatch):
    """MiniTwit's web UI on a fresh database; BASE_URL points at it."""
    web = start_server('minitwit:app', make_db_url())
    monkeypatch.setitem(globals(), 'BASE_URL', web.url)
    return web


# --- helpers, as the course's test has them ---------------------------------

def register(username, password, password2=None, email=None):
    """Sign up through the form; the page it ends on."""
    if password2 is None:
        password2 = password
    if email is None:
        email = username + '@example.com'
    return requests.post(BASE_URL + '/register', data={
        'username': username, 'password': password, 'password2': password2,
        'email': email}, allow_redirects=True, timeout=TIMEOUT)


def login(username, password):
    """Sign in through the form: (the page it ends on, the session)."""
    http_session = requests.Session()
    r = http_session.post(BASE_URL + '/login', data={
        'username': username, 'password': password},
        allow_redirects=True, timeout=TIMEOUT)
    return r, http_session


def register_and_login(username, password):
    register(username, password)
    return login(username, password)


def logout(http_session):
    return http_session.get(BASE_URL + '/logout', allow_redirects=True,
                            timeout=TIMEOUT)


def add_message(http_session, text):
    r = http_session.post(BASE_URL + '/add_message', data={'text': text},
                          allow_redirects=True, timeout=TIMEOUT)
    if text:
        assert 'Your message was recorded' in r.text
    return r


# --- the tests ---------------------------------------------------------------

def test_register():
    r = register('user1', 'default')
    assert 'You were successfully registered and can login now' in r.text
    assert r.status_code == 200 and r.url == BASE_URL + '/login'
    r = register('user1', 'default')
    assert 'The username is already taken' in r.text
    r = register('', 'default')
    assert 'You have to enter a username' in r.text
    r = register('meh', '')
    assert 'You have to enter a password' in r.text
    r = register('meh', 'x', 'y')
    assert 'The two passwords do not match' in r.text
    r = register('meh', 'foo', email='broken')
    assert 'You have to enter a valid email address' in r.text


def test_login_logout():
    r, http_session = register_and_login('user1', 'default')
    assert 'You were logged in' in r.text
    assert r.status_code == 200 and r.url == BASE_URL + '/'
    # A session cookie, and nothing of the old CSRF scheme.
    assert 'session' in http_session.cookies
    assert 'csrf' not in http_session.cookies
    assert 'csrf_token' not in r.text
    r = logout(http_session)
    assert 'You were logged out' in r.text
    assert r.status_code == 200 and r.url == BASE_URL + '/public'
    assert 'session' not in http_session.cookies
    r, _ = login('user1', 'wrongpassword')
    assert 'Invalid password' in r.text
    r, _ = login('user2', 'wrongpassword')
    assert 'Invalid username' in r.text


def test_message_recording():
    _, http_session = register_and_login('foo', 'default')
    add_message(http_session, 'test message 1')
    add_message(http_session, '<test message 2>')
    r = requests.get(BASE_URL + '/', timeout=TIMEOUT)  # a visitor: /public
    assert r.url == BASE_URL + '/public'
    assert 'test message 1' in r.text
    assert '&lt;test message 2&gt;' in r.text
    assert '<test message 2>' not in r.text


def test_timelines():
    _, http_session = register_and_login('foo', 'default')
    add_message(http_session, 'the message by foo')
    logout(http_session)
    _, http_session = register_and_login('bar', 'default')
    add_message(http_session, 'the message by bar')
    r = http_session.get(BASE_URL + '/public', timeout=TIMEOUT)
    assert 'the message by foo' in r.text
    assert 'the message by bar' in r.text

    # bar's timeline shows only bar's message
    r = http_session.get(BASE_URL + '/', timeout=TIMEOUT)
    assert 'the message by foo' not in r.text
    assert 'the message by bar' in r.text

    # follow foo, by a plain link
    r = http_session.get(BASE_URL + '/foo/follow', allow_redirects=True,
                         timeout=TIMEOUT)
    assert 'You are now following &#34;foo&#34;' in r.text
    assert r.url == BASE_URL + '/foo'

    # now both messages are on bar's timeline
    r = http_session.get(BASE_URL + '/', timeout=TIMEOUT)
    assert 'the message by foo' in r.text
    assert 'the message by bar' in r.text

    # each user's page shows only their own
    r = http_session.get(BASE_URL + '/bar', timeout=TIMEOUT)
    assert 'the message by foo' not in r.text
    assert 'the message by bar' in r.text
    r = http_session.get(BASE_URL + '/foo', timeout=TIMEOUT)
    assert 'the message by foo' in r.text
    assert 'the message by bar' not in r.text

    # unfollow foo, by a plain link, and foo's message is gone from home
    r = http_session.get(BASE_URL + '/foo/unfollow', allow_redirects=True,
                         timeout=TIMEOUT)
    assert 'You are no longer following &#34;foo&#34;' in r.text
    assert r.url == BASE_URL + '/foo'
    r = http_session.get(BASE_URL + '/', timeout=TIMEOUT)
    assert 'the message by foo' not in r.text
    assert 'the message by bar' in r.text
