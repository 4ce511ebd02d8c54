"""Another site cannot act for a browser that is signed in to MiniTwit.

MiniTwit's forms carry no token: what keeps another site from posting them
is the browser's word on where a request comes from. A state-changing
request (any POST, and GET /logout, /<user>/follow, /<user>/unfollow) is
refused with a 403 when its `Sec-Fetch-Site` is anything but `same-origin`
or `none`, or, without Sec-Fetch-Site, when its `Origin` is not MiniTwit's
own (behind nginx: X-Forwarded-Proto and the host). Neither header: let
through, as a script or the course's test sends.

- In a real browser (Debian's headless Chromium): an "attacker" origin, a
  tiny http.server on another port of 127.0.0.1, serves pages that submit a
  form to MiniTwit by script as soon as they load, or load one of its URLs
  as an image. Both origins are on 127.0.0.1, so they are the same *site*:
  the browser sends the SameSite=Lax session cookie along, with
  `Sec-Fetch-Site: same-site`; only the header rule stands in the way. Each
  attack must land on a 403 and change nothing; then the same actions from
  MiniTwit's own pages (and links typed into the address bar) work.
- With `requests`, each header rule on its own, against a live server.
"""
import html
import http.server
import os
import re
import shlex
import threading
from urllib.parse import quote, urlsplit

import chromium
import pytest
import requests
from bs4 import BeautifulSoup
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait
from serving import ROOT

from scripts.simulator.simulate import Client

pytestmark = pytest.mark.slow
IN_CHROMIUM = pytest.mark.needs('chromium', 'chromedriver')

browser = chromium.browser  # the fixture: headless Chromium
WAIT = 10  # seconds, for anything the browser does
TIMEOUT = 30  # seconds, for every request sent with requests
USERS = ('victim', 'mallory', 'target', 'friend')


def password(username):
    return username + '-password'


@pytest.fixture
def seeded(make_db_url, start_server):
    """(URL of a fresh database holding USERS and a message by `target` and
    by `friend`, a client of the API on it)."""
    url = make_db_url()
    api = Client(start_server('sim_api:app', url).url, timeout=TIMEOUT)
    for name in USERS:
        assert api.send('POST', '/register', {
            'username': name, 'email': name + '@example.com',
            'pwd': password(name)})[0] == 204
    for name in ('target', 'friend'):
        assert api.send('POST', '/msgs/' + name, {
            'content': 'a message by ' + name})[0] == 204
    return url, api


@pytest.fixture
def minitwit(seeded, start_server):
    """(the web UI on the seeded database, the API client)."""
    url, api = seeded
    return start_server('minitwit:app', url), api


def messages_of(api, username):
    return [m['content'] for m in api.get_json('/msgs/%s?no=1000' % quote(username))]


def follows_of(api, username):
    return api.get_json('/fllws/%s?no=1000' % quote(username))['follows']


def stored(api):
    """(the victim's messages, whom the victim follows, whether a user
    `newcomer` exists): what an attack must not change."""
    newcomer = api.send('GET', '/msgs/newcomer')[0]
    assert newcomer in (200, 404)
    return messages_of(api, 'victim'), follows_of(api, 'victim'), newcomer == 200


# --- the other origin -----------------------------------------------------------

class AttackerSite:
    """http://127.0.0.1:<another port>: pages that make the browser send a
    request to MiniTwit the moment they load."""

    def __init__(self):
        self.pages = {}
        pages = self.pages

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = WAIT  # no connection holds a thread for longer

            def do_GET(self):  # noqa: N802 (http.server's name)
                body = pages.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                data = body.encode('utf-8')
                self.send_response(200)
                self.send_header('Content-Type', 'text/html; charset=utf-8')
                self.send_header('Content-Length', str(len(data)))
                self.send_header('Cache-Control', 'no-store')
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        self.url = 'http://127.0.0.1:%d' % self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={'poll_interval': 0.1}, daemon=True)
        self.thread.start()

    def page(self, body):
        """The URL of a new page holding `body`."""
        path = '/page-%d' % (len(self.pages) + 1)
        self.pages[path] = '<!doctype html><meta charset="utf-8">' \
            '<title>You won a prize!</title>' + body
        return self.url + path

    def form(self, method, action, fields):
        """A page that submits a form to `action` once loaded, by script."""
        inputs = ''.join('<input type="hidden" name="%s" value="%s">' % (
            html.escape(name), html.escape(value)) for name, value in fields.items())
        return self.page(
            '<form method="%s" action="%s">%s</form>'
            '<script>window.addEventListener("load", function () '
            '{ document.forms[0].submit(); });</script>'
            % (method.lower(), html.escape(action), inputs))

    def image(self, src):
        """A page that loads `src` as an image; its title says when it has."""
        return self.page(
            '<img src="%s" alt="" onload="document.title = \'done\'" '
            'onerror="document.title = \'done\'">' % html.escape(src))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(WAIT)


@pytest.fixture
def attacker():
    site = AttackerSite()
    yield site
    site.close()


# --- the browser ------------------------------------------------------------------

def wait(driver, condition, what):
    return WebDriverWait(driver, WAIT, poll_frequency=0.05,
                         ignored_exceptions=(WebDriverException,)).until(
        condition, 'gave up after %d s waiting for %s' % (WAIT, what))


def arrive(driver, origin):
    """Wait until the browser shows a page of `origin`, loaded."""
    wait(driver, lambda d: d.current_url.startswith(origin + '/') and
         d.execute_script('return document.readyState') == 'complete',
         'a page of %s' % origin)


def status_of_page(driver):
    """The HTTP status of the page the browser shows."""
    return driver.execute_script(
        "var entry = performance.getEntriesByType('navigation')[0];"
        'return entry ? entry.responseStatus : null;')


def here(driver):
    return urlsplit(driver.current_url).path


def attack(driver, site, web, method, path, fields=None):
    """Open the other site's page that submits `method path` to MiniTwit;
    (where the browser lands on MiniTwit, that page's status)."""
    driver.get(site.form(method, web.url + path, fields or {}))
    arrive(driver, web.url)
    return here(driver), status_of_page(driver)


def image_attack(driver, site, web, path):
    """Open the other site's page that loads MiniTwit's `path` as an image."""
    driver.get(site.image(web.url + path))
    wait(driver, lambda d: d.title == 'done', 'the image to load or fail')


def offered_form(driver, web, path):
    """The form of this page that POSTs to `path` (a refused GET offers
    one), or None."""
    for form in driver.find_elements(By.TAG_NAME, 'form'):
        # The properties: the method lower-cased, the action absolute.
        if form.get_property('method') == 'post' and \
                form.get_property('action').split('?')[0] == web.url + path:
            return form
    return None


def signed_in_as(driver, web):
    """Whom MiniTwit's home page says this browser is signed in as; None
    when it sends the browser to the public timeline."""
    driver.get(web.url + '/')
    if here(driver) == '/public':
        return None
    assert status_of_page(driver) == 200
    navigation = driver.find_element(By.CLASS_NAME, 'navigation').text
    return re.search(r'sign out \[(.*)\]', navigation).group(1)


def flashes(driver):
    found = wait(driver, lambda d: d.find_elements(By.CLASS_NAME, 'flashes'),
                 'the flash messages')
    return found[0].text


def click(driver, text, within='//'):
    """Click the button, link or submit input that says `text`."""
    driver.find_element(By.XPATH, ' | '.join(
        '%s%s[contains(normalize-space(%s), "%s")]' % (within, tag, what, text)
        for tag, what in (('button', '.'), ('a', '.'),
                          ("input[@type='submit']", '@value')))).click()


def sign_in(driver, web, username):
    """Through MiniTwit's sign-in form, typing, as a person does."""
    driver.get(web.url + '/login')
    driver.find_element(By.NAME, 'username').send_keys(username)
    field = driver.find_element(By.NAME, 'password')
    field.send_keys(password(username))
    field.send_keys(Keys.RETURN)
    assert flashes(driver) == 'You were logged in'


@IN_CHROMIUM
def test_another_site_cannot_act_for_a_signed_in_browser(browser, minitwit, attacker):
    web, api = minitwit
    sign_in(browser, web, 'victim')
    assert signed_in_as(browser, web) == 'victim'
    before = stored(api)
    assert before == ([], [], False)

    attacks = [
        ('POST', '/add_message', {'text': 'posted by another site'}),
        ('POST', '/target/follow', {}),
        ('GET', '/target/follow', {}),
        ('POST', '/logout', {}),
        ('GET', '/logout', {}),
        # Login CSRF: the browser would be signed in as the attacker.
        ('POST', '/login', {'username': 'mallory', 'password': password('mallory')}),
        ('POST', '/register', {'username': 'newcomer', 'email': 'n@example.com',
                               'password': 'x', 'password2': 'x'}),
    ]
    for method, path, fields in attacks:
        assert attack(browser, attacker, web, method, path, fields) == (path, 403), \
            (method, path)
        if method == 'GET':  # the refusal offers a button that POSTs it
            assert offered_form(browser, web, path) is not None, (method, path)
        assert stored(api) == before, (method, path)
        assert signed_in_as(browser, web) == 'victim', (method, path)
    for path in ('/target/follow', '/logout'):  # <img src=...>: no form at all
        image_attack(browser, attacker, web, path)
        assert stored(api) == before, path
        assert signed_in_as(browser, web) == 'victim', path

    # MiniTwit's own pages do all of it.
    browser.get(web.url + '/')
    field = browser.find_element(By.NAME, 'text')
    field.send_keys('posted on MiniTwit')
    field.send_keys(Keys.RETURN)
    assert flashes(browser) == 'Your message was recorded'
    assert messages_of(api, 'victim') == ['posted on MiniTwit']
    browser.get(web.url + '/target')
    click(browser, 'Follow user')
    assert flashes(browser) == 'You are now following "target"'
    assert follows_of(api, 'victim') == ['target']

    # ... which another site cannot undo either.
    for method in ('POST', 'GET'):
        assert attack(browser, attacker, web, method, '/target/unfollow') == \
            ('/target/unfollow', 403), method
        assert follows_of(api, 'victim') == ['target'], method
    image_attack(browser, attacker, web, '/target/unfollow')
    assert follows_of(api, 'victim') == ['target']

    # The button the refusal offers is MiniTwit's own: it works.
    attack(browser, attacker, web, 'GET', '/target/unfollow')
    offered_form(browser, web, '/target/unfollow').find_element(
        By.CSS_SELECTOR, 'button, input[type=submit]').click()
    assert flashes(browser) == 'You are no longer following "target"'
    assert follows_of(api, 'victim') == []

    # A link typed into the address bar (Sec-Fetch-Site: none) works.
    browser.get(web.url + '/target/follow')
    assert flashes(browser) == 'You are now following "target"'
    assert here(browser) == '/target'
    assert follows_of(api, 'victim') == ['target']
    browser.get(web.url + '/target/unfollow')
    assert flashes(browser) == 'You are no longer following "target"'
    assert follows_of(api, 'victim') == []

    # Signing out from the navigation.
    browser.get(web.url + '/')
    click(browser, 'sign out', within='//nav//')
    assert flashes(browser) == 'You were logged out'
    assert here(browser) == '/public'
    assert signed_in_as(browser, web) is None

    # Login CSRF on a signed-out browser: still nobody. Nor a sign-up.
    assert attack(browser, attacker, web, 'POST', '/login', {
        'username': 'mallory', 'password': password('mallory')}) == ('/login', 403)
    assert signed_in_as(browser, web) is None
    assert attack(browser, attacker, web, 'POST', '/register', {
        'username': 'newcomer', 'email': 'n@example.com', 'password': 'x',
        'password2': 'x'}) == ('/register', 403)
    assert stored(api)[2] is False

    # Signing in again, then out by a typed /logout.
    sign_in(browser, web, 'victim')
    assert signed_in_as(browser, web) == 'victim'
    browser.get(web.url + '/logout')
    assert flashes(browser) == 'You were logged out'
    assert here(browser) == '/public'
    assert signed_in_as(browser, web) is None
    assert stored(api) == (['posted on MiniTwit'], [], False)
    assert messages_of(api, 'mallory') == []


# --- the header rules, one by one, with requests -----------------------------------

def plain_session(web, username):
    """A requests session signed in by a plain form POST (no headers)."""
    session = requests.Session()
    answer = session.post(web.url + '/login', data={
        'username': username, 'password': password(username)},
        allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code in (302, 303), answer.text
    assert 'session' in session.cookies
    return session


def is_signed_in(session, web):
    answer = session.get(web.url + '/', allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code in (200, 302, 303)
    return answer.status_code == 200


def set_cookies(answer):
    return answer.raw.headers.getlist('Set-Cookie')


def offers_a_post_of(answer, web, path):
    """Whether a refusal page holds a form that POSTs to `path`."""
    for form in BeautifulSoup(answer.text, 'html.parser').find_all('form'):
        action = form.get('action', '').split('?')[0]
        if (form.get('method') or '').lower() == 'post' and \
                action in (path, web.url + path):
            return True
    return False


def refused_requests():
    """(method, path, fields, signed in): what another site may try."""
    return [
        ('POST', '/add_message', {'text': 'refused message'}, True),
        ('POST', '/target/follow', {}, True),
        ('GET', '/target/follow', {}, True),
        ('POST', '/friend/unfollow', {}, True),
        ('GET', '/friend/unfollow', {}, True),
        ('POST', '/logout', {}, True),
        ('GET', '/logout', {}, True),
        ('POST', '/login', {'username': 'mallory', 'password': password('mallory')}, False),
        ('POST', '/register', {'username': 'newcomer', 'email': 'n@example.com',
                               'password': 'x', 'password2': 'x'}, False),
    ]


def cross_site_headers(web):
    port = urlsplit(web.url).port
    return {
        'Sec-Fetch-Site: cross-site': {'Sec-Fetch-Site': 'cross-site'},
        'Sec-Fetch-Site: same-site': {'Sec-Fetch-Site': 'same-site'},
        'Sec-Fetch-Site: cross-site, Origin: own': {'Sec-Fetch-Site': 'cross-site',
                                                    'Origin': web.url},
        'Origin: http://evil.example': {'Origin': 'http://evil.example'},
        'Origin: null': {'Origin': 'null'},
        'Origin: another port': {'Origin': 'http://127.0.0.1:%d' % (port + 1)},
        'Origin: https': {'Origin': 'https://127.0.0.1:%d' % port},
        'Origin: localhost': {'Origin': 'http://localhost:%d' % port},
    }


def test_cross_site_headers_are_refused_and_change_nothing(minitwit):
    web, api = minitwit
    victim = plain_session(web, 'victim')
    answer = victim.post(web.url + '/friend/follow', allow_redirects=False,
                         timeout=TIMEOUT)
    assert answer.status_code in (302, 303)
    before = stored(api)
    assert before == ([], ['friend'], False)
    for label, headers in cross_site_headers(web).items():
        for method, path, fields, signed_in in refused_requests():
            session = victim if signed_in else requests.Session()
            answer = session.request(method, web.url + path, data=fields or None,
                                     headers=headers, allow_redirects=False,
                                     timeout=TIMEOUT)
            what = (label, method, path)
            assert answer.status_code == 403, what
            assert answer.headers['Content-Type'].startswith('text/html'), what
            assert not [c for c in set_cookies(answer) if c.startswith('session=')], what
            if method == 'GET':
                assert offers_a_post_of(answer, web, path), what
            assert stored(api) == before, what
            assert is_signed_in(victim, web), what
            if not signed_in:
                assert 'session' not in session.cookies, what
                assert not is_signed_in(session, web), what


def allowed_headers(web):
    return {
        'Sec-Fetch-Site: same-origin': {'Sec-Fetch-Site': 'same-origin'},
        'Sec-Fetch-Site: none': {'Sec-Fetch-Site': 'none'},
        'Origin: own': {'Origin': web.url},
        'neither': {},
    }


def test_same_origin_headers_and_none_are_let_through(minitwit):
    web, api = minitwit
    for n, (label, headers) in enumerate(allowed_headers(web).items()):
        def send(session, method, path, fields=None, headers=headers, label=label):
            answer = session.request(method, web.url + path, data=fields,
                                     headers=headers, allow_redirects=False,
                                     timeout=TIMEOUT)
            assert answer.status_code in (302, 303), (label, method, path, answer.text)
            return answer

        session = requests.Session()
        send(session, 'POST', '/login', {'username': 'victim',
                                         'password': password('victim')})
        assert is_signed_in(session, web), label
        text = 'allowed with %s' % label
        send(session, 'POST', '/add_message', {'text': text})
        assert text in messages_of(api, 'victim'), label
        send(session, 'POST', '/target/follow')
        assert follows_of(api, 'victim') == ['target'], label
        send(session, 'GET', '/target/unfollow')
        assert follows_of(api, 'victim') == [], label
        send(session, 'GET', '/target/follow')
        assert follows_of(api, 'victim') == ['target'], label
        send(session, 'POST', '/target/unfollow')
        assert follows_of(api, 'victim') == [], label
        send(session, 'GET', '/logout')
        assert not is_signed_in(session, web), label
        send(session, 'POST', '/login', {'username': 'victim',
                                         'password': password('victim')})
        send(session, 'POST', '/logout')
        assert not is_signed_in(session, web), label
        name = 'newcomer%d' % n
        send(session, 'POST', '/register', {'username': name, 'email': name + '@example.com',
                                            'password': 'x', 'password2': 'x'})
        assert api.send('GET', '/msgs/' + name)[0] == 200, label


def deploy_flags(name):
    """The waitress flags deploy/defaults.env sets as `name`."""
    with open(os.path.join(ROOT, 'deploy', 'defaults.env'), encoding='utf-8') as f:
        for line in f:
            if line.startswith(name + '='):
                return shlex.split(line.split('=', 1)[1])[0].split()
    raise AssertionError('deploy/defaults.env sets no %s' % name)


@pytest.mark.parametrize('proxy', ['deployed', 'forwarded host'])
def test_behind_nginx_the_origin_is_the_forwarded_one(seeded, start_server, proxy):
    """nginx says the browser used HTTPS (X-Forwarded-Proto, which waitress
    takes from 127.0.0.1 with the flags a server runs with) and passes the
    host on: as Host, as deploy/nginx does, or as X-Forwarded-Host where
    waitress is told to trust that too. The Origin must match those."""
    url, api = seeded
    if proxy == 'deployed':
        args = deploy_flags('WAITRESS_PROXY_FLAGS')
        proxied = {'X-Forwarded-Proto': 'https', 'Host': 'minitwit.example'}
    else:
        args = ['--trusted-proxy=127.0.0.1',
                '--trusted-proxy-headers=x-forwarded-proto x-forwarded-host']
        proxied = {'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'minitwit.example'}
    web = start_server('minitwit:app', url, args=args)
    port = urlsplit(web.url).port
    # Signed in over plain HTTP (a cookie that is not Secure), and sent by
    # hand: requests would keep a cookie of 127.0.0.1 from minitwit.example.
    cookie = 'session=' + plain_session(web, 'victim').cookies['session']
    for origin, allowed in (('https://minitwit.example', True),
                            ('http://minitwit.example', False),
                            ('https://minitwit.example:8443', False),
                            ('https://127.0.0.1:%d' % port, False),
                            (web.url, False),
                            ('null', False)):
        text = 'from %s' % origin
        answer = requests.post(web.url + '/add_message', data={'text': text},
                               headers=dict(proxied, Origin=origin, Cookie=cookie),
                               allow_redirects=False, timeout=TIMEOUT)
        if allowed:
            assert answer.status_code in (302, 303), origin
            assert answer.headers['Location'].startswith('https://minitwit.example/'), origin
            assert text in messages_of(api, 'victim'), origin
        else:
            assert answer.status_code == 403, origin
            assert text not in messages_of(api, 'victim'), origin

    # The session cookie a sign-in over HTTPS gets: Secure, HttpOnly, Lax.
    answer = requests.post(web.url + '/login', data={
        'username': 'victim', 'password': password('victim')},
        headers=dict(proxied, Origin='https://minitwit.example'),
        allow_redirects=False, timeout=TIMEOUT)
    assert answer.status_code in (302, 303)
    session, = [c for c in set_cookies(answer) if c.startswith('session=')]
    attributes = {a.strip().lower() for a in session.split(';')[1:]}
    assert {'secure', 'httponly', 'samesite=lax'} <= attributes, session
    assert not [c for c in set_cookies(answer) if c.startswith('csrf=')]


def test_the_session_cookie_over_plain_http(minitwit):
    web, _ = minitwit
    for page in ('/login', '/register', '/public'):
        answer = requests.get(web.url + page, timeout=TIMEOUT)
        assert answer.status_code == 200
        assert set_cookies(answer) == [], page  # no csrf cookie, nothing
        assert 'csrf' not in answer.text, page
    answer = requests.post(web.url + '/login', data={
        'username': 'victim', 'password': password('victim')},
        allow_redirects=False, timeout=TIMEOUT)
    session, = [c for c in set_cookies(answer) if c.startswith('session=')]
    attributes = {a.strip().lower() for a in session.split(';')[1:]}
    assert {'httponly', 'samesite=lax'} <= attributes, session
    assert 'secure' not in attributes, session
    assert not [c for c in set_cookies(answer) if c.startswith('csrf=')]
