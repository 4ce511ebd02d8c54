"""Any input at all (any unicode, any length, any JSON type, any bytes)
into the API's JSON handlers and the web UI's forms, and any Origin and
Sec-Fetch-Site headers: a 2xx, 3xx or 4xx, never a 5xx, and a row only
when the answer says one was written."""
import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sim_client import AUTH, register
from ui_client import browser, register_and_login, user_path

import minitwit
from database import connection
from models import Follower, Message, User

pytestmark = pytest.mark.slow

# Function-scoped fixtures are fine here: every example may add rows.
fuzz = settings(max_examples=50, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Unpaired surrogates included: JSON's "\ud800" decodes to one.
any_text = st.one_of(
    st.text(st.characters(exclude_categories=())),
    st.text(max_size=1100, min_size=90),  # across the length limits
)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=3) |
    st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8)


def fields(*names):
    """JSON objects with these fields (or some of them) holding anything."""
    return st.dictionaries(st.sampled_from(names), any_json) | \
        st.fixed_dictionaries({name: any_json | any_text for name in names})


def rows():
    with connection():
        return (User.select().count(), Message.select().count(),
                Follower.select().count())


def send(api, method, url, body):
    """Send `body` (bytes as they are, anything else as JSON)."""
    if not isinstance(body, bytes):
        body = json.dumps(body).encode()
    answer = api.request(url, method=method, body=body, headers=dict(
        AUTH, **{'Content-Type': 'application/json'}), expect_errors=True)
    assert answer.status_int < 500, (url, body[:200], answer.text[:300])
    if answer.status_int >= 400:
        assert answer.json['status'] == answer.status_int
        assert isinstance(answer.json['error_msg'], str)
    return answer.status_int


# --- the simulator API -----------------------------------------------------------

@fuzz
@given(body=any_json | fields('username', 'email', 'pwd') | st.binary())
def test_register_takes_anything(api, body):
    before = rows()
    status = send(api, 'POST', '/register', body)
    assert status in (204, 400)
    users = before[0] + (status == 204)
    assert rows() == (users,) + before[1:]


@fuzz
@given(body=any_json | fields('content') | st.binary())
def test_posting_a_message_takes_anything(api, body):
    register(api, 'ann')
    before = rows()
    status = send(api, 'POST', '/msgs/ann', body)
    assert status in (204, 400)
    assert rows() == (before[0], before[1] + (status == 204), before[2])


@fuzz
@given(body=any_json | fields('follow', 'unfollow') | st.binary())
def test_following_takes_anything(api, body):
    for name in ('ann', 'bob'):
        register(api, name)
    status = send(api, 'POST', '/fllws/ann', body)
    assert status in (204, 400, 404)


@fuzz
@given(name=st.text(min_size=1), no=any_text, latest=any_text,
       body=fields('content', 'follow'))
def test_any_path_segment_and_query(api, name, no, latest, body):
    query = urlencode({'no': no, 'latest': latest},
                      encoding='utf-8', errors='surrogatepass')
    for resource in ('msgs', 'fllws'):
        url = '/%s/%s?%s' % (resource, quote(name, safe=''), query)
        send(api, 'GET', url, b'')
        send(api, 'POST', url, body)


# --- the web UI's forms ------------------------------------------------------------

# What a browser can put in a form: any text it can encode as UTF-8.
form_text = st.one_of(st.text(), st.text(min_size=90, max_size=1100))


@pytest.fixture
def ui(fresh_db):
    return browser(minitwit.app)


def post_form(ui, action, data, headers=None):
    """POST `data` (a dict of fields, or raw bytes) to `action`, as a
    browser submitting a form would."""
    body = urlencode(data).encode() if isinstance(data, dict) else data
    answer = ui.post(action, body, headers=dict(
        headers or {}, **{'Content-Type': 'application/x-www-form-urlencoded'}),
        expect_errors=True)
    assert answer.status_int < 500, (action, body[:200], answer.text[:300])
    return answer.status_int


@fuzz
@given(username=form_text, email=form_text, password=form_text,
       raw=st.binary())
def test_the_sign_up_form_takes_anything(fresh_db, username, email, password,
                                         raw):
    ui = browser(minitwit.app)  # a new visitor each time
    before = rows()
    status = post_form(ui, '/register', {
        'username': username, 'email': email, 'password': password,
        'password2': password})
    assert status in (302, 400)
    assert rows()[0] == before[0] + (status == 302)
    assert post_form(ui, '/register', raw) in (302, 400)
    # 429: the sign-in throttle, after many failed tries from one address.
    assert post_form(ui, '/login', {
        'username': username, 'password': password}) in (302, 400, 429)


@fuzz
@given(text=form_text, raw=st.binary(), name=st.text(min_size=1))
def test_the_message_and_follow_forms_take_anything(ui, text, raw, name):
    if ui.get('/').status_int != 200:  # not signed in yet
        register_and_login(ui, 'ann')
    before = rows()
    status = post_form(ui, '/add_message', {'text': text})
    assert status in (302, 400)
    assert rows()[1] == before[1] + (status == 302)
    assert post_form(ui, '/add_message', raw) in (302, 400)
    path = user_path(name)  # as the web UI links it
    for action in ('/follow', '/unfollow'):
        assert post_form(ui, path + action, b'') in (302, 404)
    assert ui.get(path, expect_errors=True).status_int in (200, 404)


@fuzz
@given(before=st.text(), cookie=st.text(st.characters(
    min_codepoint=0x21, max_codepoint=0xff, exclude_characters=';,')))
def test_pages_take_any_query_and_cookie(ui, before, cookie):
    for name in ('session', 'flash'):
        answer = ui.get('/public?' + urlencode({'before': before}), headers={
            'Cookie': '%s=%s' % (name, cookie)}, expect_errors=True)
        assert answer.status_int in (200, 400)


# What a browser can put in Origin and Sec-Fetch-Site, and what it cannot.
header_value = st.one_of(
    st.sampled_from(['same-origin', 'none', 'same-site', 'cross-site', 'null',
                     'http://localhost', 'http://localhost:80', 'https://localhost',
                     'http://localhost:99999', 'http://[', 'http://evil.example']),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xff,
                          exclude_characters='\x7f')))


@fuzz
@given(fetch_site=st.none() | header_value, sent_origin=st.none() | header_value,
       text=form_text)
def test_the_cross_site_check_takes_any_header(ui, fetch_site, sent_origin, text):
    """Any Sec-Fetch-Site and Origin on a POST: never a 5xx, a message only
    when the answer says one was recorded, and a 403 whenever the headers
    name another site (WebTest's own origin is http://localhost)."""
    if ui.get('/').status_int != 200:  # not signed in yet
        register_and_login(ui, 'ann')
    headers = {name: value for name, value in (('Sec-Fetch-Site', fetch_site),
                                               ('Origin', sent_origin))
               if value is not None}
    before = rows()
    status = post_form(ui, '/add_message', {'text': text}, headers)
    assert status in (302, 400, 403)
    assert rows()[1] == before[1] + (status == 302)
    if fetch_site is not None:
        assert (status == 403) == (fetch_site not in ('same-origin', 'none')), headers
    elif sent_origin is None:
        assert status != 403
    elif 'localhost' not in sent_origin.lower():
        assert status == 403, headers
