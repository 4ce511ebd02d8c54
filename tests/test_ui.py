"""The web UI under WebTest: the original MiniTwit's test suite, case by
case, and what ours adds (cross-site requests, sessions, escaping,
pagination, legacy hashes, headers); on SQLite and, with TEST_MARIADB_URL,
on MariaDB."""
import base64
import os
import subprocess
import sys
import time

import pytest
from serving import ROOT
from sim_client import register as api_register
from sim_client import tweet
from statement_log import StatementCounter
from ui_client import (
    add_message,
    browser,
    follow,
    login,
    logout,
    register,
    register_and_login,
    submit,
    texts,
    unfollow,
    user_path,
)
from webob import Request
from werkzeug.security import generate_password_hash

import database
import minitwit
import models
import sessions
from models import Follower, Message, User


@pytest.fixture
def ui(fresh_db):
    """The web UI under WebTest: one browser, with its cookies."""
    return browser(minitwit.app)


def post_message_as(username, text, pub_date):
    """A message written straight into the database, dated `pub_date`."""
    with database.connection():
        Message.create(author=User.by_name(username).user_id, text=text,
                       pub_date=pub_date)


# --- the original's test suite -------------------------------------------------

def test_register(ui):
    res = register(ui, 'user1', 'default', status=200)
    assert 'You were successfully registered and can login now' in res
    assert res.request.path == '/login'
    res = register(ui, 'user1', 'default', status=400)
    assert 'The username is already taken' in res
    res = register(ui, '', 'default', status=400)
    assert 'You have to enter a username' in res
    res = register(ui, 'meh', '', status=400)
    assert 'You have to enter a password' in res
    res = register(ui, 'meh', 'x', 'y', status=400)
    assert 'The two passwords do not match' in res
    res = register(ui, 'meh', 'foo', email='broken', status=400)
    assert 'You have to enter a valid email address' in res
    with database.connection():
        assert [u.username for u in User.select()] == ['user1']


def test_a_refused_sign_up_keeps_what_was_typed_but_not_passwords(ui):
    res = register(ui, 'meh', 'x', 'y', email='meh@example.com', status=400)
    form = res.forms[0]
    assert form['username'].value == 'meh'
    assert form['email'].value == 'meh@example.com'
    assert form['password'].value == '' and form['password2'].value == ''


def test_login_logout(ui):
    res = register_and_login(ui, 'user1', 'default')
    assert 'You were logged in' in res
    assert res.request.path == '/'
    res = logout(ui)
    assert 'You were logged out' in res
    assert res.request.path == '/public'
    res = login(ui, 'user1', 'wrongpassword', status=400)
    assert 'Invalid password' in res
    res = login(ui, 'user2', 'wrongpassword', status=400)
    assert 'Invalid username' in res


def test_message_recording(ui):
    register_and_login(ui, 'foo', 'default')
    res = add_message(ui, 'test message 1')
    assert 'Your message was recorded' in res
    add_message(ui, '<test message 2>')
    res = ui.get('/')
    assert 'test message 1' in res
    assert '&lt;test message 2&gt;' in res.text
    assert texts(res) == ['<test message 2>', 'test message 1']


def test_timelines(ui):
    register_and_login(ui, 'foo', 'default')
    add_message(ui, 'the message by foo')
    logout(ui)
    register_and_login(ui, 'bar', 'default')
    add_message(ui, 'the message by bar')
    res = ui.get('/public')
    assert 'the message by foo' in res
    assert 'the message by bar' in res

    # bar's timeline should just show bar's message
    res = ui.get('/')
    assert 'the message by foo' not in res
    assert 'the message by bar' in res

    # now let's follow foo
    res = follow(ui, 'foo')
    assert 'You are now following &#34;foo&#34;' in res.text
    assert 'You are currently following this user.' in res

    # we should now see foo's message
    res = ui.get('/')
    assert 'the message by foo' in res
    assert 'the message by bar' in res

    # but on the user's page we only want the user's message
    res = ui.get('/bar')
    assert 'the message by foo' not in res
    assert 'the message by bar' in res
    assert 'This is you!' in res
    res = ui.get('/foo')
    assert 'the message by foo' in res
    assert 'the message by bar' not in res

    # now unfollow and check if that worked
    res = unfollow(ui, 'foo')
    assert 'You are no longer following &#34;foo&#34;' in res.text
    assert 'You are not yet following this user.' in res
    res = ui.get('/')
    assert 'the message by foo' not in res
    assert 'the message by bar' in res


# --- pages and their details ---------------------------------------------------

def test_anonymous_visitors_of_my_timeline_go_to_the_public_one(ui):
    res = ui.get('/', status=302)
    assert res.headers['Location'].endswith('/public')


def test_empty_timelines_say_so(ui):
    assert "There's no message so far." in ui.get('/public')
    register_and_login(ui, 'foo')
    assert "There's no message so far." in ui.get('/')
    assert "There's no message so far." in ui.get('/foo')


def test_messages_show_author_gravatar_and_date(ui):
    register_and_login(ui, 'foo')
    post_message_as('foo', 'dated', 1700000000)
    li = ui.get('/public').html.select_one('ul.messages li')
    assert li.img['src'].startswith('https://www.gravatar.com/avatar/')
    assert li.a['href'] == '/foo' and li.a.text == 'foo'
    assert li.small.text == '\u2014 2023-11-14 @ 22:13'


def test_the_form_field_order_the_course_selenium_test_relies_on(ui):
    """It types into the first four inputs and presses return on the fifth."""
    inputs = ui.get('/register').html.select('input')
    assert [i.get('name') for i in inputs[:4]] == [
        'username', 'email', 'password', 'password2']
    assert inputs[4]['type'] == 'submit'
    assert inputs[4].parent.get('class') == ['actions']
    assert inputs[5:] == []


def test_a_forged_flash_is_not_shown(ui):
    fake = base64.urlsafe_b64encode(b'["You won a prize"]').decode()
    ui.set_cookie('flash', fake + '.' + 'A' * 43)
    assert 'You won a prize' not in ui.get('/public')


def test_flashes_are_shown_once(ui):
    register_and_login(ui, 'foo')
    res = add_message(ui, 'hello')
    assert res.html.select_one('ul.flashes li').text == \
        'Your message was recorded'
    assert ui.get('/').html.select_one('ul.flashes') is None


def test_unknown_users_are_404(ui):
    res = ui.get('/nobody', status=404)
    assert 'There is no user called &#34;nobody&#34;' in res.text
    register_and_login(ui, 'foo')
    for action in ('follow', 'unfollow'):
        ui.post('/nobody/' + action, status=404)
        ui.get('/nobody/' + action, status=404)


@pytest.mark.parametrize('name', ['Åse Ørsted', 'a/b slash', 'x/follow',
                                  '李 小龍', 'what?#100%', '<b>bold</b>'])
def test_any_username_has_a_working_page(ui, name):
    register(ui, name, status=200)
    register_and_login(ui, 'reader')
    res = follow(ui, name)
    assert 'You are currently following this user.' in res
    assert res.html.select_one('ul.flashes li').text == \
        'You are now following "%s"' % name
    assert res.html.h2.text == "%s's Timeline" % name
    post_message_as(name, 'hello from ' + name, 1700000000)
    res = ui.get('/')
    assert texts(res) == ['hello from ' + name]
    assert ui.get(res.html.select_one('ul.messages a')['href']).html.h2.text \
        == "%s's Timeline" % name
    res = unfollow(ui, name)
    assert 'You are not yet following this user.' in res


def test_a_path_that_is_not_utf8_is_refused(fresh_db):
    # Straight to the app: WebTest's cookie jar cannot store cookies for
    # such a URL.
    res = Request.blank('/%FF%FE').get_response(minitwit.app)
    assert res.status_int == 400
    assert 'not valid UTF-8' in res.text


def test_message_errors_are_400_with_the_reason(ui):
    register_and_login(ui, 'foo')
    res = add_message(ui, '   ', status=400)
    assert 'You have to enter a message' in res
    res = add_message(ui, 'x' * (models.MAX_MESSAGE + 1), status=400)
    assert 'A message can be at most 1000 characters' in res
    assert res.html.select_one('input[name=text]')['value'] == \
        'x' * (models.MAX_MESSAGE + 1)
    add_message(ui, 'y' * models.MAX_MESSAGE)
    with database.connection():
        assert [len(m.text) for m in Message.select()] == [models.MAX_MESSAGE]


def test_only_signed_in_users_post_and_follow(ui):
    register(ui, 'foo', status=200)
    assert 'sign in to post' in ui.post(
        '/add_message', {'text': 'x'}, status=401)
    for action in ('follow', 'unfollow'):
        ui.post('/foo/' + action, status=401)
        ui.get('/foo/' + action, status=401)
    with database.connection():
        assert Message.select().count() == 0


def test_signed_in_users_are_sent_from_the_forms_to_their_timeline(ui):
    register_and_login(ui, 'foo')
    assert ui.get('/register', status=302).headers['Location'].endswith('/')
    assert ui.get('/login', status=302).headers['Location'].endswith('/')


def test_the_original_get_links_sign_out_follow_and_unfollow(ui):
    register(browser(minitwit.app), 'bar', status=200)
    register_and_login(ui, 'foo')
    res = ui.get('/bar/follow', status=302)
    assert res.headers['Location'].endswith('/bar')
    assert 'You are now following &#34;bar&#34;' in res.follow().text
    assert 'You are currently following this user.' in ui.get('/bar')
    res = ui.get('/bar/unfollow', status=302).follow()
    assert 'You are no longer following &#34;bar&#34;' in res.text
    assert 'You are not yet following this user.' in res
    res = ui.get('/logout', status=302)
    assert res.headers['Location'].endswith('/public')
    assert 'You were logged out' in res.follow()
    ui.get('/', status=302)
    # The original signs out whoever asks, signed in or not.
    assert 'You were logged out' in ui.get('/logout', status=302).follow()


def test_the_sign_out_button_posts(ui):
    register_and_login(ui, 'foo')
    res = submit(ui, '/public', '/logout', status=200)
    assert 'You were logged out' in res
    ui.get('/', status=302)


# --- the simulator API and the UI share one database ----------------------------

def test_api_users_sign_in_and_api_messages_show_at_once(ui, api):
    assert api_register(api, 'from api', pwd='api-secret').status_int == 204
    register(ui, 'webby', status=200)
    res = login(ui, 'from api', 'api-secret', status=200)
    assert 'You were logged in' in res
    assert tweet(api, 'from api', 'posted via the API').status_int == 204
    assert texts(ui.get('/')) == ['posted via the API']
    assert texts(ui.get('/public')) == ['posted via the API']
    assert texts(ui.get(user_path('from api'))) == ['posted via the API']


# --- cross-site requests ------------------------------------------------------
# Browsers say where a request comes from; scripts and old browsers say
# nothing, and are served as the original served them.

CROSS_SITE = [{'Sec-Fetch-Site': 'cross-site'}, {'Sec-Fetch-Site': 'same-site'},
              {'Origin': 'http://evil.example'}, {'Origin': 'null'},
              {'Origin': 'http://localhost:8080'},
              {'Origin': 'https://localhost'},
              # Sec-Fetch-Site decides when a browser sends both.
              {'Sec-Fetch-Site': 'cross-site', 'Origin': 'http://localhost'}]
SAME_SITE = [{}, {'Sec-Fetch-Site': 'same-origin'}, {'Sec-Fetch-Site': 'none'},
             {'Origin': 'http://localhost'}, {'Origin': 'http://localhost:80'},
             {'Sec-Fetch-Site': 'same-origin', 'Origin': 'null'}]


def changes(ui, headers):
    """Every change a page can ask for, as `headers` say it was asked."""
    return [ui.post('/add_message', {'text': 'forged'}, headers=headers,
                    status='*'),
            ui.post('/bar/follow', headers=headers, status='*'),
            ui.get('/bar/follow', headers=headers, status='*'),
            ui.post('/register', {'username': 'x', 'email': 'x@x',
                                  'password': 'x', 'password2': 'x'},
                    headers=headers, status='*'),
            ui.post('/login', {'username': 'bar', 'password': 'default'},
                    headers=headers, status='*'),
            ui.get('/logout', headers=headers, status='*'),
            ui.post('/logout', headers=headers, status='*')]


@pytest.mark.parametrize('headers', CROSS_SITE)
def test_a_cross_site_change_is_refused_and_changes_nothing(ui, headers):
    register_and_login(ui, 'foo')
    register(browser(minitwit.app), 'bar', status=200)
    for res in changes(ui, headers):
        assert res.status_int == 403, (res.request.url, res.status)
        assert 'This request came from another site' in res
    with database.connection():
        assert Message.select().count() == 0
        assert Follower.select().count() == 0
        assert User.select().count() == 2
    assert 'foo' in ui.get('/').html.nav.text  # still signed in, as foo


@pytest.mark.parametrize('headers', SAME_SITE)
def test_the_same_changes_from_our_pages_or_a_script_work(ui, headers):
    register_and_login(ui, 'foo')
    register(browser(minitwit.app), 'bar', status=200)
    answers = changes(ui, headers)
    assert [res.status_int for res in answers] == [
        302, 302, 302, 302, 302, 302, 302]
    with database.connection():
        assert [m.text for m in Message.select()] == ['forged']
        assert Follower.select().count() == 1
    ui.get('/', status=302)  # signed out
    # Signed out, signing up and in work the same way.
    ui.post('/register', {'username': 'x', 'email': 'x@x', 'password': 'x',
                          'password2': 'x'}, headers=headers, status=302)
    ui.post('/login', {'username': 'x', 'password': 'x'}, headers=headers,
            status=302)
    assert 'x' in ui.get('/').html.nav.text


def test_the_origin_behind_a_proxy_is_the_forwarded_one(ui):
    register_and_login(ui, 'foo')
    proxied = {'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'minitwit.example'}
    ui.post('/add_message', {'text': 'from the site'}, status=302, headers=dict(
        proxied, Origin='https://minitwit.example'))
    ui.post('/add_message', {'text': 'over http'}, status=403, headers=dict(
        proxied, Origin='http://minitwit.example'))
    with database.connection():
        assert [m.text for m in Message.select()] == ['from the site']


def test_a_cross_site_link_gets_a_button_that_does_it_here(ui):
    register_and_login(ui, 'foo')
    register(browser(minitwit.app), 'bar', status=200)
    res = ui.get('/bar/follow', headers={'Sec-Fetch-Site': 'cross-site'},
                 status=403)
    button = res.html.select_one('main form')
    assert (button['method'], button['action']) == ('post', '/bar/follow')
    res = next(form for form in res.forms.values()
               if form.action == '/bar/follow').submit(
        headers={'Sec-Fetch-Site': 'same-origin'}, status=302)
    assert 'You are now following &#34;bar&#34;' in res.follow()
    res = ui.get('/bar/unfollow', headers={'Sec-Fetch-Site': 'cross-site'},
                 status=403)
    res = next(form for form in res.forms.values()
               if form.action == '/bar/unfollow').submit(headers={'Sec-Fetch-Site': 'same-origin'}, status=302)
    assert 'You are no longer following &#34;bar&#34;' in res.follow()
    res = ui.post('/bar/follow', headers={'Origin': 'http://evil.example'},
                  status=403)
    assert res.html.select_one('main form') is None  # no button for a POST


def test_a_plain_script_signs_up_in_posts_and_follows_without_a_token(ui):
    """As the course's requests-based tests do: form fields, nothing else."""
    ui.post('/register', {'username': 'bar', 'email': 'b@x',
                          'password': 'p', 'password2': 'p'}, status=302)
    ui.post('/register', {'username': 'foo', 'email': 'f@x',
                          'password': 'p', 'password2': 'p'}, status=302)
    ui.post('/login', {'username': 'foo', 'password': 'p'}, status=302)
    ui.post('/add_message', {'text': 'scripted'}, status=302)
    ui.get('/bar/follow', status=302)
    with database.connection():
        assert [m.text for m in Message.select()] == ['scripted']
        assert Follower.select().count() == 1


def test_a_visitor_reading_timelines_or_forms_gets_no_cookie(ui):
    register(ui, 'foo', status=200)
    ui.reset()
    for page in ('/public', '/foo', '/login', '/register'):
        assert 'Set-Cookie' not in ui.get(page).headers


# --- sessions --------------------------------------------------------------------

def user_id_of(username):
    with database.connection():
        return User.by_name(username).user_id


def session_cookie(ui):
    return next(c for c in ui.cookiejar if c.name == 'session')


def test_the_session_cookie_is_httponly_samesite_and_holds_only_the_id(ui):
    register(ui, 'foo', status=200)
    form = ui.get('/login').forms[0]
    form['username'], form['password'] = 'foo', 'default'
    res = form.submit(status=302)
    header = next(h for h in res.headers.getall('Set-Cookie')
                  if h.startswith('session='))
    assert 'HttpOnly' in header and 'SameSite=lax' in header
    assert 'Secure' not in header
    user_id = user_id_of('foo')
    user_part, issued, generation = \
        session_cookie(ui).value.split('.')[0].split(':')
    assert user_part == str(user_id)
    assert abs(int(issued) - time.time()) < 3600
    assert generation == '0'  # never signed out
    assert 'Max-Age=%d' % sessions.SESSION_LIFETIME in header


def test_the_session_cookie_is_secure_behind_https(ui):
    register(ui, 'foo', status=200)
    https = {'X-Forwarded-Proto': 'https'}
    form = ui.get('/login', headers=https).forms[0]
    form['username'], form['password'] = 'foo', 'default'
    res = form.submit(headers=https, status=302)
    assert all('Secure' in h for h in res.headers.getall('Set-Cookie'))


def other_user(cookie, user_id):
    """`cookie` (user_id:issued.signature) with its user id swapped."""
    return '%d:%s' % (user_id, cookie.split(':', 1)[1])


@pytest.mark.parametrize('forge', [
    lambda value, other_id: other_user(value, other_id),
    lambda value, other_id: other_user(value, other_id).rpartition('.')[0] + '.',
    lambda value, other_id: str(other_id),
    lambda value, other_id: value[:-2] + ('AA' if value[-2:] != 'AA' else 'BB'),
    lambda value, other_id: other_user(value, other_id).rpartition('.')[0] +
    '.' + 'x' * 43,
    lambda value, other_id: 'ö' * 10,
], ids=['swapped id', 'no signature', 'bare id', 'tampered signature',
        'made-up signature', 'garbage'])
def test_a_tampered_or_forged_session_signs_nobody_in(ui, forge):
    register(ui, 'victim', status=200)
    register_and_login(ui, 'foo')
    add_message(ui, 'by foo')
    victim_id = user_id_of('victim')
    forged = forge(session_cookie(ui).value, victim_id)
    ui.set_cookie('session', forged)
    res = ui.get('/', status=302)
    assert res.headers['Location'].endswith('/public')
    res = ui.get('/public')
    assert 'sign in' in res.html.nav.text and 'victim' not in res.html.nav.text


def test_a_session_signed_with_another_secret_signs_nobody_in(ui):
    """Made by the same code as the app's, but with a key we did not set."""
    register(ui, 'foo', status=200)
    user_id = user_id_of('foo')
    code = ('import sessions; print(sessions.sign("session", '
            'sessions.session_value(%d)))' % user_id)
    env = dict(os.environ, MINITWIT_SECRET_KEY='some-other-secret')
    forged = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env,
                            capture_output=True, text=True, check=True)
    ui.set_cookie('session', forged.stdout.strip())
    ui.get('/', status=302)


def test_a_signature_made_for_a_flash_is_no_session(ui):
    register(ui, 'foo', status=200)
    user_id = user_id_of('foo')
    value = sessions.session_value(user_id)
    ui.set_cookie('session', sessions.sign('flash', value))
    ui.get('/', status=302)
    ui.set_cookie('session', sessions.sign('session', value))
    assert 'My Timeline' in ui.get('/', status=200)


@pytest.mark.parametrize('issued', [
    lambda now: now - sessions.SESSION_LIFETIME - 1,  # expired
    lambda now: now + 3600,  # from the future
    lambda now: 'x',  # the id alone, as an older cookie would be
])
def test_an_expired_or_malformed_session_signs_nobody_in(ui, issued):
    register(ui, 'foo', status=200)
    user_id = user_id_of('foo')
    fresh = sessions.session_value(user_id, time.time() - 3600)
    ui.set_cookie('session', sessions.sign('session', fresh))
    assert 'My Timeline' in ui.get('/', status=200)
    when = issued(int(time.time()))
    value = str(user_id) if when == 'x' else sessions.session_value(user_id, when)
    ui.set_cookie('session', sessions.sign('session', value))
    ui.get('/', status=302)


def test_a_session_of_a_deleted_user_signs_nobody_in(ui):
    register_and_login(ui, 'foo')
    with database.connection():
        User.delete().execute()
    ui.get('/', status=302)


# --- secrets --------------------------------------------------------------------

def import_app(**env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ('MINITWIT_SECRET_KEY', 'MINITWIT_ENV')}
    environment.update(env)
    return subprocess.run([sys.executable, '-c', 'import minitwit'],
                          cwd=ROOT, env=environment, capture_output=True,
                          text=True)


@pytest.mark.parametrize('secret', [None, '', 'default', 'CHANGE-ME',
                                    'x' * 31])
def test_production_refuses_to_start_without_a_secret(secret):
    env = {'MINITWIT_ENV': 'production'}
    if secret is not None:
        env['MINITWIT_SECRET_KEY'] = \
            sessions.DEVELOPMENT_SECRET if secret == 'default' else secret
    result = import_app(**env)
    assert result.returncode != 0
    assert 'MINITWIT_SECRET_KEY' in result.stderr.splitlines()[-1]


def test_production_starts_with_a_secret_and_development_without():
    assert import_app(MINITWIT_ENV='production',
                      MINITWIT_SECRET_KEY='x' * 32).returncode == 0
    assert import_app().returncode == 0


# --- escaping and headers ---------------------------------------------------------

def test_user_content_is_escaped_everywhere(ui):
    script = '<script>alert("x")</script>'
    register_and_login(ui, script)
    res = add_message(ui, script)
    assert script not in res.text
    assert '&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;' in res.text
    assert texts(res) == [script]
    assert res.html.find('script') is None
    register(browser(minitwit.app), 'plain', status=200)
    follow(ui, 'plain')
    res = ui.get(user_path(script))
    assert res.html.find('script') is None
    assert res.html.h2.text == "%s's Timeline" % script


def test_security_headers_on_pages_errors_and_redirects(ui):
    register(ui, 'foo', status=200)
    answers = [ui.get('/public'), ui.get('/nobody', status=404),
               ui.get('/', status=302), ui.post('/public', status=405),
               ui.post('/add_message', status=401),
               ui.post('/add_message', headers={'Origin': 'null'}, status=403),
               ui.get('/static/style.css')]
    for res in answers:
        policy = res.headers['Content-Security-Policy']
        directives = dict(d.strip().partition(' ')[::2]
                          for d in policy.split(';'))
        assert directives['frame-ancestors'] == "'none'"
        assert directives['default-src'] == "'none'"
        assert 'script-src' not in directives  # so none: default-src
        assert 'unsafe-inline' not in policy
        assert res.headers['X-Content-Type-Options'] == 'nosniff'


def test_pages_have_no_inline_script_or_style(ui):
    register_and_login(ui, 'foo')
    add_message(ui, 'hi')
    for path in ['/', '/public', '/foo', '/login', '/register', '/logout']:
        html = ui.get(path, status='*').html
        assert html.find('script') is None
        assert html.find('style') is None
        assert html.find(style=True) is None


def test_static_files_and_nothing_outside_them(ui):
    assert ui.get('/static/style.css').content_type == 'text/css'
    ui.get('/static/../models.py', status=403)
    ui.get('/static/%2E%2E/models.py', status=403)
    ui.get('/static/nothing.css', status=404)


# --- legacy password hashes -----------------------------------------------------

@pytest.mark.parametrize('method', ['pbkdf2:sha256:150000', 'scrypt:32768:8:1'])
def test_legacy_hashes_sign_in_and_are_upgraded(ui, method):
    legacy = generate_password_hash('old secret', method=method)
    assert legacy.startswith(method + '$')
    with database.connection():
        User.register('oldtimer', 'old@example.com', legacy)
    res = login(ui, 'oldtimer', 'wrong', status=400)
    assert 'Invalid password' in res
    with database.connection():
        assert User.by_name('oldtimer').pw_hash == legacy
    res = login(ui, 'oldtimer', 'old secret', status=200)
    assert 'You were logged in' in res
    with database.connection():
        upgraded = User.by_name('oldtimer').pw_hash
    assert upgraded.startswith('$argon2id$')
    logout(ui)
    assert 'You were logged in' in login(ui, 'oldtimer', 'old secret',
                                         status=200)


# --- pagination -----------------------------------------------------------------

def older_link(res):
    link = res.html.select_one('a.older')
    return link['href'] if link else None


def read_all_pages(ui, path):
    pages = []
    res = ui.get(path)
    while True:
        pages.append(texts(res))
        link = older_link(res)
        if link is None:
            return pages
        res = ui.get(path + link)


def test_pagination_goes_through_every_message_once(ui):
    """65 messages, many in the same second (as they are when posted
    quickly): pages of 30, 30 and 5, newest first, none twice or lost."""
    register(ui, 'foo', status=200)
    register_and_login(ui, 'bar')
    follow(ui, 'foo')
    expected = []
    for n in range(65):
        author = 'foo' if n % 2 else 'bar'
        post_message_as(author, 'message %d' % n, 1700000000 + n // 7)
        expected.insert(0, 'message %d' % n)
    for path, wanted in [
            ('/public', expected), ('/', expected),
            ('/foo', [t for t in expected if int(t.split()[1]) % 2])]:
        pages = read_all_pages(ui, path)
        assert [len(p) for p in pages] == \
            [30] * (len(wanted) // 30) + [len(wanted) % 30]
        assert sum(pages, []) == wanted


def test_an_older_page_shows_a_link_back_to_the_newest(ui):
    register_and_login(ui, 'foo')
    for n in range(31):
        post_message_as('foo', 'm%d' % n, 1700000000 + n)
    res = ui.get('/public')
    assert res.html.select_one('a.newest') is None
    res = ui.get('/public' + older_link(res))
    assert texts(res) == ['m0']
    assert res.html.select_one('a.newest')['href'] == '?'
    assert older_link(res) is None
    res = ui.get('/public?before=1600000000.1')
    assert 'There are no older messages.' in res


@pytest.mark.parametrize('before', ['abc', '1.', '-1.2', '1700000000',
                                    '1' * 19 + '.1', '1.2.3', ''])
def test_a_broken_page_link_is_400(ui, before):
    res = ui.get('/public', {'before': before}, status=400)
    assert 'link to older messages is broken' in res


def test_flagged_messages_do_not_show(ui):
    register_and_login(ui, 'foo')
    add_message(ui, 'visible')
    add_message(ui, 'flagged')
    with database.connection():
        Message.update(flagged=True).where(Message.text == 'flagged').execute()
    for path in ['/', '/public', '/foo']:
        assert texts(ui.get(path)) == ['visible']


# --- speed: a page is a fixed number of queries, however long the timeline ------

@pytest.mark.parametrize('path', ['/', '/public', '/foo', '/bar'])
def test_a_timeline_page_is_one_query_plus_two_small_ones(
        ui, monkeypatch, path):
    register(ui, 'foo', status=200)
    register(ui, 'baz', status=200)
    register_and_login(ui, 'bar')
    follow(ui, 'foo')
    follow(ui, 'baz')
    for n in range(93):
        post_message_as(['foo', 'bar', 'baz'][n % 3], 'm%d' % n, 1700000000)
    ui.get(path)  # schema and templates are ready
    counter = StatementCounter(monkeypatch)
    res = ui.get(path)
    assert len(texts(res)) == 30
    assert len(counter.statements) <= 3, counter.statements
    message_queries = [s for s in counter.statements if 'message' in s]
    assert len(message_queries) == 1


# --- the database going away ----------------------------------------------------

def test_an_unreachable_database_is_a_503_page(tmp_path):
    database.configure('sqlite:///%s/no/such/folder/minitwit.db' % tmp_path)
    ui = browser(minitwit.app)
    try:
        for path in ['/public', '/', '/foo', '/login']:
            res = ui.get(path, status=503)
            assert 'cannot reach its database' in res
            assert res.headers['Retry-After'] == '1'
        assert ui.get('/healthz', status=503).json == {
            'status': 'unavailable'}
    finally:
        database.db.obj.close_all()


def test_healthz_answers_ok_when_the_database_does(ui):
    # Only that: no database path or node name for anybody.
    assert ui.get('/healthz').json == {'status': 'ok'}
