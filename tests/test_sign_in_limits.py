"""Sessions end at sign-out, everywhere, and password guessing is slowed:
tried over real HTTP against the web UI under waitress, as a thief with a
copied cookie and a password guesser would."""
import pytest
import requests

import database
import minitwit
from sessions import SignInFailure


def sign_up(web, name, password='right'):
    res = requests.post(web.url + '/register', timeout=10, data={
        'username': name, 'email': name + '@x', 'password': password,
        'password2': password})
    assert 'You were successfully registered' in res.text


def sign_in(web, name, password='right', headers=None):
    """A browser (requests.Session) after signing in; and the answer."""
    browser = requests.Session()
    res = browser.post(web.url + '/login', timeout=10, headers=headers,
                       data={'username': name, 'password': password})
    return browser, res


def signed_in_as(web, cookie):
    """Who the page says is signed in with this session cookie, or None."""
    res = requests.get(web.url + '/', cookies={'session': cookie},
                       allow_redirects=False, timeout=10)
    if res.status_code != 200:
        return None
    return res.text.split('sign out [', 1)[1].split(']', 1)[0]


@pytest.fixture
def web(start_server, make_db_url):
    server = start_server('minitwit:app', make_db_url())
    sign_up(server, 'foo')
    return server


def test_signing_out_ends_every_session_issued_before(web):
    laptop, _ = sign_in(web, 'foo')
    phone, _ = sign_in(web, 'foo')
    copied = laptop.cookies['session']
    assert signed_in_as(web, copied) == 'foo'
    assert 'You were logged out' in laptop.get(web.url + '/logout',
                                               timeout=10).text
    # The copy made before, and the other browser's session: both over.
    assert signed_in_as(web, copied) is None
    assert signed_in_as(web, phone.cookies['session']) is None
    assert phone.get(web.url + '/', timeout=10).url == web.url + '/public'

    # Signing in again works, and the old copy stays dead.
    again, res = sign_in(web, 'foo')
    assert 'You were logged in' in res.text
    assert signed_in_as(web, again.cookies['session']) == 'foo'
    assert signed_in_as(web, copied) is None
    # The sign-out button ends sessions too.
    copied = again.cookies['session']
    again.post(web.url + '/logout', timeout=10)
    assert signed_in_as(web, copied) is None


def test_signing_out_ends_only_that_users_sessions(web):
    sign_up(web, 'bar')
    foo, _ = sign_in(web, 'foo')
    bar, _ = sign_in(web, 'bar')
    foo.get(web.url + '/logout', timeout=10)
    assert signed_in_as(web, bar.cookies['session']) == 'bar'


def guess(web, name, password='wrong', address=None):
    headers = {'X-Real-IP': address} if address else None
    return sign_in(web, name, password, headers)[1]


def test_a_password_guesser_gets_a_429_after_a_few_tries(web):
    for _ in range(minitwit.NAME_FAILURES):
        res = guess(web, 'foo')
        assert res.status_code == 400 and 'Invalid password' in res.text
    res = guess(web, 'foo', 'right')  # even the right password, for now
    assert res.status_code == 429
    assert 'Too many failed sign-ins' in res.text
    assert 0 < int(res.headers['Retry-After']) <= SignInFailure.WINDOW + 1
    assert 'session' not in res.cookies
    metrics = requests.get(web.url + '/metrics', timeout=10).text
    assert 'minitwit_rejections_total{app="web",cause="too_many_sign_ins",' \
        'route="/login"} 1.0' in metrics
    # From another address too: the limit is the account's.
    assert guess(web, 'foo', 'right', address='203.0.113.9').status_code == 429
    # Another user is not held up by it.
    sign_up(web, 'bar')
    assert 'You were logged in' in guess(web, 'bar', 'right').text


def test_one_address_guessing_many_names_is_limited(web):
    names = ['nobody%d' % n for n in range(minitwit.ADDRESS_FAILURES)]
    for name in names:
        assert guess(web, name, address='198.51.100.7').status_code == 400
    res = guess(web, 'foo', 'right', address='198.51.100.7')
    assert res.status_code == 429 and 'Retry-After' in res.headers
    # Other clients sign in as ever.
    assert 'You were logged in' in guess(web, 'foo', 'right',
                                         address='198.51.100.8').text


def test_a_success_resets_the_name_count(web):
    for _ in range(minitwit.NAME_FAILURES - 1):
        assert guess(web, 'foo').status_code == 400
    assert 'You were logged in' in guess(web, 'foo', 'right').text
    for _ in range(minitwit.NAME_FAILURES - 1):
        assert guess(web, 'foo').status_code == 400
    assert 'You were logged in' in guess(web, 'foo', 'right').text


def test_the_count_is_shared_by_every_process(web, start_server):
    other = start_server('minitwit:app', web.env['DATABASE_URL'])
    for server in [web, other] * minitwit.NAME_FAILURES:
        res = guess(server, 'foo')
    assert res.status_code == 429
    assert guess(other, 'foo', 'right').status_code == 429
    assert guess(web, 'foo', 'right').status_code == 429


def test_a_window_ends_a_minute_after_its_first_failure(fresh_db):
    limits = {'name:x': 2}
    with database.connection():
        SignInFailure.add(['name:x'], now=1000)
        assert SignInFailure.wait(limits, now=1001) == 0
        SignInFailure.add(['name:x'], now=1030)
        assert SignInFailure.wait(limits, now=1030) == 31
        assert SignInFailure.wait(limits, now=1059) == 2
        assert SignInFailure.wait(limits, now=1060) == 0
        # A failure after the window starts a new one, at one failure.
        SignInFailure.add(['name:x'], now=1061)
        assert SignInFailure.wait(limits, now=1062) == 0
        SignInFailure.add(['name:x'], now=1062)
        assert SignInFailure.wait(limits, now=1062) == 60


def test_windows_that_are_over_leave_no_rows(fresh_db):
    """Guessing many names must not grow the table for good."""
    with database.connection():
        SignInFailure.add(['name:%d' % n for n in range(50)], now=1000)
        SignInFailure.add(['name:late'], now=1059)
        assert SignInFailure.select().count() == 51
        SignInFailure.add(['name:new'], now=1060)
        assert sorted(f.subject for f in SignInFailure.select()) == [
            'name:late', 'name:new']


def test_the_stored_subjects_are_hashed(web):
    guess(web, 'my-password-typed-as-name')
    database.configure(web.env['DATABASE_URL'])
    try:
        with database.connection():
            subjects = [row.subject for row in SignInFailure.select()]
    finally:
        database.db.obj.close_all()
    assert len(subjects) == 2
    assert not any('password' in subject for subject in subjects)
    assert sorted(s.split(':')[0] for s in subjects) == ['addr', 'name']
