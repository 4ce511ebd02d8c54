"""Attacks: SQL injection in every field and path segment, script in
everything the UI shows, forged session cookies, oversized bodies, and
credentials checked by a constant-time comparison alone."""
import hmac
import http.client

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_client import AUTH, WRONG_AUTH, follow, path, register, tweet
from ui_client import add_message, browser, login, register_and_login, texts, user_path
from ui_client import follow as ui_follow
from ui_client import register as ui_register

import database
import minitwit
import sessions
from models import Follower, Latest, Message, User

SQL_INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE user; --",
    '"; DELETE FROM message; --',
    "x' UNION SELECT user_id, username, pw_hash FROM user -- x",
    "Robert'); DROP TABLE follower;--",
    "1 OR 1=1; UPDATE latest SET value = 0",
    "\\'; SELECT SLEEP(5); -- x",
    "%' AND 1=0 /*",
]

XSS = [
    '<script>alert(1)</script>',
    '<img src=x onerror=alert(1)>',
    '"><svg onload=alert(1)>',
    "' onmouseover='alert(1)",
    '</textarea><iframe src="javascript:alert(1)">',
    '{{7*7}}<b>% end</b>',
]


def row_counts():
    """(users, messages, follows, latest rows that hold an id): every table
    is still there, holding exactly what was written."""
    with database.connection():
        return tuple(model.select().count() for model in
                     (User, Message, Follower)) + \
            (Latest.select().where(Latest.value != -1).count(),)


# --- SQL injection ---------------------------------------------------------------

def test_sql_in_every_api_field_and_path_segment_is_just_text(api):
    for n, sql in enumerate(SQL_INJECTIONS):
        assert register(api, sql, email=sql + '@x', pwd=sql,
                        latest=n).status_int == 204
        assert tweet(api, sql, sql).status_int == 204
    for who, whom in zip(SQL_INJECTIONS, SQL_INJECTIONS[1:], strict=False):
        assert follow(api, who, whom).status_int == 204
    for sql in SQL_INJECTIONS:
        shown = api.get(path('msgs', sql), headers=AUTH).json
        assert [(m['user'], m['content']) for m in shown] == [(sql, sql)]
        answer = api.get(path('msgs', sql + 'x'), headers=AUTH, status=404)
        assert answer.json['error_msg'] == 'There is no user called %sx' % sql
        # In the query string too: not a number, so refused.
        for name in ('latest', 'no'):
            api.get(path('msgs', **{name: sql}), headers=AUTH, status=400)
    assert api.get(path('fllws', SQL_INJECTIONS[0]), headers=AUTH).json == {
        'follows': [SQL_INJECTIONS[1]]}
    assert len(api.get('/msgs', headers=AUTH).json) == len(SQL_INJECTIONS)
    assert api.get('/latest').json == {'latest': len(SQL_INJECTIONS) - 1}
    n = len(SQL_INJECTIONS)
    assert row_counts() == (n, n, n - 1, 1)


def test_sql_in_every_ui_field_and_path_segment_is_just_text(fresh_db):
    ui = browser(minitwit.app)
    ui_register(ui, 'plain', status=200)
    for sql in SQL_INJECTIONS:
        ui = browser(minitwit.app)
        ui_register(ui, sql, password=sql, email=sql + '@x', status=200)
        res = login(ui, sql, password=sql, status=200)
        assert res.html.h2.text == 'My Timeline'
        assert texts(add_message(ui, sql)) == [sql]
        ui_follow(ui, 'plain')
        page = ui.get(user_path(sql))
        assert page.html.h2.text == "%s's Timeline" % sql
        missing = ui.get(user_path(sql + 'x'), status=404)
        assert 'There is no user called "%sx"' % sql in missing.html.text
        ui.get('/public?before=' + path(sql)[1:], status=400)
    assert len(texts(ui.get('/public'))) == len(SQL_INJECTIONS)
    n = len(SQL_INJECTIONS)
    assert row_counts() == (n + 1, n, n, 0)  # the web UI stores no latest


# --- script in what the UI shows -------------------------------------------------

def assert_inert(res, payload):
    """The payload shows as text: no element or attribute came of it."""
    for tag in res.html.find_all(True):
        assert tag.name not in ('script', 'svg', 'iframe', 'b'), tag
        assert not [a for a in tag.attrs if a.startswith('on')], tag
        assert not str(tag.get('href', '')).startswith('javascript:'), tag
    assert payload in res.html.text or \
        payload in [i.get('value') for i in res.html.find_all('input')]


@pytest.mark.parametrize('payload', XSS)
def test_script_shows_as_text_wherever_the_ui_shows_input(fresh_db, payload):
    other = browser(minitwit.app)
    ui_register(other, payload, email=payload + '@x', status=200)
    login(other, payload, status=200)
    # Its messages, name and page, as everybody sees them.
    assert_inert(add_message(other, payload), payload)
    ui = browser(minitwit.app)
    register_and_login(ui, 'reader')
    assert_inert(ui.get('/public'), payload)
    assert_inert(ui_follow(ui, payload), payload)  # and the flash
    assert_inert(ui.get('/'), payload)
    assert_inert(ui.get(user_path(payload + 'x'), status=404), payload + 'x')
    # Forms refilled after an error.
    assert_inert(add_message(ui, payload + ' ' * 1000, status=400), payload)
    visitor = browser(minitwit.app)
    assert_inert(ui_register(visitor, payload, status=400), payload)
    assert_inert(login(visitor, payload, 'wrong', status=400), payload)


# --- session cookies -------------------------------------------------------------

@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_forged_session_cookie_signs_anyone_in(fresh_db, data):
    """A real session cookie with anything changed, added or cut, or any
    made-up value at all, signs nobody in."""
    with database.connection():
        if not User.select().exists():
            User.register('victim', 'v@x', 'h')
        victim = User.by_name('victim').user_id
    value = sessions.session_value(victim)
    real = sessions.sign('session', value)
    issued, signature = value.split(':')[1], real.rpartition('.')[2]
    position = data.draw(st.integers(0, len(real)))
    forged = data.draw(st.one_of(
        st.builds(lambda c, n: real[:position] + c + real[position + n:],
                  st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                                exclude_characters=';,'),
                  st.integers(0, 1)),
        st.just(real[:position]),
        st.builds(lambda other: '%d:%s.%s' % (other, issued, signature),
                  st.integers(0, 1000)),
        st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7e,
                              exclude_characters=';,'))))
    ui = browser(minitwit.app)
    # The cookie everything is forged from does sign the victim in.
    assert ui.get('/', headers={'Cookie': 'session=%s' % real}).status_int == 200
    if forged == real:
        return
    answer = ui.get('/', headers={'Cookie': 'session=%s' % forged},
                    expect_errors=True)
    assert answer.status_int == 302
    assert answer.headers['Location'].endswith('/public')


# --- body size caps --------------------------------------------------------------

def test_the_ui_refuses_a_body_bigger_than_a_form(fresh_db):
    ui = browser(minitwit.app)
    register_and_login(ui, 'ann')
    body = 'text=%s' % ('x' * 70_000)
    answer = ui.post('/add_message', body, headers={
        'Content-Type': 'application/x-www-form-urlencoded'}, status=413)
    assert 'more than a form can hold' in answer.html.text
    with database.connection():
        assert Message.select().count() == 0


@pytest.mark.slow
@pytest.mark.parametrize('app', ['sim_api:app', 'minitwit:app'])
def test_waitress_refuses_a_body_over_1_mib_before_the_app(
        app, make_db_url, start_server):
    server = start_server(app, make_db_url())
    for chunked in (False, True):
        conn = http.client.HTTPConnection('127.0.0.1', server.port,
                                          timeout=30)
        conn.putrequest('POST', '/register')
        if chunked:  # no length announced: waitress counts as it reads
            conn.putheader('Transfer-Encoding', 'chunked')
            conn.endheaders()
            for _ in range(20):
                conn.send(b'10000\r\n' + b'x' * 0x10000 + b'\r\n')
            conn.send(b'0\r\n\r\n')
        else:
            conn.putheader('Content-Length', str(2 * 1024 * 1024))
            conn.endheaders()
        answer = conn.getresponse()
        assert answer.status == 413
        # waitress's own page: the app never saw the request.
        assert answer.getheader('X-Request-Id') is None
        conn.close()


# --- constant-time comparison ----------------------------------------------------

@pytest.fixture
def comparisons(monkeypatch):
    """Record every hmac.compare_digest; answer what `verdict` says."""
    calls, verdict = [], {}
    real = hmac.compare_digest

    def compare(a, b):
        calls.append((a, b))
        return verdict.get('answer', real(a, b))

    monkeypatch.setattr(hmac, 'compare_digest', compare)
    return calls, verdict


def test_the_api_compares_credentials_in_constant_time_only(api, comparisons):
    calls, verdict = comparisons
    api.get('/msgs', headers=WRONG_AUTH, status=403)
    assert calls == [(b'simulator:wrong', b'simulator:super_safe!')]
    # Whatever compare_digest says is the verdict: nothing else compares.
    verdict['answer'] = True
    api.get('/msgs', headers=WRONG_AUTH, status=200)
    verdict['answer'] = False
    api.get('/msgs', headers=AUTH, status=403)


def test_the_ui_checks_signatures_in_constant_time_only(fresh_db, comparisons):
    calls, verdict = comparisons
    ui = browser(minitwit.app)
    register_and_login(ui, 'ann')
    with database.connection():
        ann = User.by_name('ann').user_id
    verdict['answer'] = True  # any signature passes now ...
    ui.set_cookie('session', '%s.not-a-signature' % sessions.session_value(ann))
    assert ui.get('/').html.h2.text == 'My Timeline'
    verdict['answer'] = False  # ... and none does, not even the real one
    ui.set_cookie('session', sessions.sign('session',
                                           sessions.session_value(ann)))
    ui.get('/', status=302)
    assert any(b'not-a-signature' in a for a, _ in calls)
    # The flash cookie too: signed, and checked the same way.
    del verdict['answer']
    ui = browser(minitwit.app)
    login(ui, 'ann', status=200)
    ui.post('/add_message', {'text': 'hi'}, status='3*')
    flash = ui.cookies['flash'].strip('"')  # WebTest keeps Bottle's quotes
    verdict['answer'] = False
    page = ui.get('/public')  # the session is refused too now
    assert 'Your message was recorded' not in page.text
    assert page.html.find(class_='flashes') is None
    signature = flash.rpartition('.')[2]
    assert signature.encode() in [given for given, _ in calls]
    del verdict['answer']  # the same cookie, checked for real, shows
    ui.set_cookie('flash', flash)
    assert 'Your message was recorded' in ui.get('/').html.find(class_='flashes').text
