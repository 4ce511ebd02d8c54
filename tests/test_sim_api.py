"""The simulator API, endpoint by endpoint, as the course's spec has it."""

import pytest
from sim_client import (
    AUTH,
    NOT_AUTHORIZED,
    WRONG_AUTH,
    follow,
    latest,
    path,
    post,
    register,
    tweet,
    unfollow,
)
from statement_log import StatementCounter

import database
import passwords
import sim_api
from models import Follower, Message, User
from scripts.simulator.simulate import Client

NAMES = ['Roger Histand', 'Åse Ørsted', 'Zoë D\'Arcy', '李 小龍', 'a/b slash']
TEXT = 'Upon making known our desires for a “very cheerful” place — said Sir ' \
       'Henry; æøå ÆØÅ ‘quoted’ 🐋 \ufeff end'


# --- /latest ---------------------------------------------------------------

def test_latest_is_minus_one_on_a_fresh_database(api):
    assert api.get('/latest').json == {'latest': -1}


def test_every_endpoint_stores_latest(api):
    assert register(api, 'alice', latest=1).status_int == 204
    assert latest(api) == 1
    assert register(api, 'bob', latest=2).status_int == 204
    assert tweet(api, 'alice', 'hi', latest=3).status_int == 204
    assert latest(api) == 3
    assert follow(api, 'alice', 'bob', latest=4).status_int == 204
    assert latest(api) == 4
    assert unfollow(api, 'alice', 'bob', latest=5).status_int == 204
    assert api.get(path('msgs', latest=6), headers=AUTH).status_int == 200
    assert api.get(path('msgs', 'alice', latest=7), headers=AUTH).status_int == 200
    assert api.get(path('fllws', 'alice', latest=8), headers=AUTH).status_int == 200
    assert latest(api) == 8


def test_latest_is_stored_even_when_the_action_is_refused(api):
    """As in the course's API: the action was processed, if unsuccessfully."""
    register(api, 'alice')
    assert register(api, 'alice', latest=10).status_int == 400
    assert latest(api) == 10
    assert tweet(api, 'nobody', 'x', latest=11).status_int == 404
    assert latest(api) == 11


def test_an_unauthorized_request_does_not_move_latest(api):
    register(api, 'alice', latest=3)
    res = post(api, path('msgs', 'alice', latest=99), {'content': 'x'},
               headers=WRONG_AUTH)
    assert res.status_int == 403
    assert latest(api) == 3
    assert Message.select().count() == 0


def test_latest_survives_a_restart_and_is_shared_by_processes(
        make_db_url, start_server):
    url = make_db_url()
    first = start_server('sim_api:app', url)
    second = start_server('sim_api:app', url)
    assert Client(first.url, timeout=10).send(
        'POST', '/register?latest=41',
        {'username': 'u', 'email': 'u@x', 'pwd': 'p'})[0] == 204

    def read(server):
        return Client(server.url, timeout=10).get_json('/latest')['latest']

    assert read(second) == 41
    first.stop()
    first.start()
    assert read(first) == 41


# --- /register -------------------------------------------------------------

def test_register_creates_the_user(api):
    assert register(api, 'alice', 'alice@example.com', 'pw').status_int == 204
    user = User.by_name('alice')
    assert user.email == 'alice@example.com'
    assert user.check_password('pw') and not user.check_password('pW')
    assert user.pw_hash.startswith('$argon2id$')


@pytest.mark.parametrize('body, message', [
    ({'username': '', 'email': 'a@b', 'pwd': 'x'}, 'You have to enter a username'),
    ({'email': 'a@b', 'pwd': 'x'}, 'You have to enter a username'),
    ({'username': 'a', 'email': 'ab', 'pwd': 'x'},
     'You have to enter a valid email address'),
    ({'username': 'a', 'email': '', 'pwd': 'x'},
     'You have to enter a valid email address'),
    ({'username': 'a', 'email': 'a@b', 'pwd': ''}, 'You have to enter a password'),
    ({'username': 'a', 'email': 'a@b'}, 'You have to enter a password'),
])
def test_register_errors_are_the_originals(api, body, message):
    res = post(api, '/register', body)
    assert res.status_int == 400
    assert res.json == {'status': 400, 'error_msg': message}
    assert User.select().count() == 0


def test_a_taken_username_is_refused(api):
    register(api, 'alice')
    res = register(api, 'alice', 'other@example.com')
    assert res.status_int == 400
    assert res.json['error_msg'] == 'The username is already taken'
    assert User.select().count() == 1


def test_a_taken_username_is_refused_before_the_password_is_hashed(
        api, monkeypatch):
    """Hashing costs ~16 ms of CPU: a taken name costs a lookup only."""
    hashed = []
    hash_password = passwords.hash_password
    monkeypatch.setattr(passwords, 'hash_password',
                        lambda pw: hashed.append(pw) or hash_password(pw))
    assert register(api, 'alice', pwd='first').status_int == 204
    assert hashed == ['first']
    res = register(api, 'alice', pwd='second', latest=7)
    assert res.status_int == 400
    assert res.json == {'status': 400,
                        'error_msg': 'The username is already taken'}
    assert hashed == ['first']
    assert latest(api) == 7 and User.select().count() == 1


def test_usernames_are_compared_byte_for_byte(api):
    """Case, accents and trailing spaces make different users on both
    databases (MariaDB's default collations would merge them)."""
    for name in ['Åse', 'ase', 'ASE', 'ase ', 'Ase']:
        assert register(api, name).status_int == 204, name
    tweet(api, 'ase ', 'trailing space')
    assert api.get(path('msgs', 'ase'), headers=AUTH).json == []
    assert [m['user'] for m in
            api.get(path('msgs', 'ase '), headers=AUTH).json] == ['ase ']


# --- /msgs -----------------------------------------------------------------

def test_names_and_texts_round_trip_exactly(api):
    for name in NAMES:
        assert register(api, name).status_int == 204
        assert tweet(api, name, TEXT + name).status_int == 204
    for name in NAMES:
        shown = api.get(path('msgs', name), headers=AUTH).json
        assert [(m['user'], m['content']) for m in shown] == [(name, TEXT + name)]
    assert {m['user'] for m in api.get('/msgs', headers=AUTH).json} == set(NAMES)


def test_messages_are_newest_first_ties_in_insertion_order(api):
    register(api, 'alice')
    register(api, 'bob')
    for n in range(6):  # within one second: the same pub_date
        tweet(api, 'alice' if n % 2 else 'bob', 'message %d' % n)
    shown = api.get('/msgs', headers=AUTH).json
    assert [m['content'] for m in shown] == ['message %d' % n
                                             for n in reversed(range(6))]
    assert set(shown[0]) == {'content', 'pub_date', 'user'}
    assert isinstance(shown[0]['pub_date'], int)
    alice = api.get(path('msgs', 'alice'), headers=AUTH).json
    assert [m['content'] for m in alice] == ['message 5', 'message 3',
                                             'message 1']


def test_older_messages_come_after_newer_ones(api):
    register(api, 'alice')
    user = User.by_name('alice')
    for pub_date, text in [(100, 'old'), (300, 'new'), (200, 'middle')]:
        Message.create(author=user.user_id, text=text, pub_date=pub_date)
    assert [m['content'] for m in api.get('/msgs', headers=AUTH).json] == [
        'new', 'middle', 'old']


def test_no_limits_the_number_of_messages(api):
    register(api, 'alice')
    for n in range(120):
        tweet(api, 'alice', str(n))
    assert len(api.get('/msgs', headers=AUTH).json) == 100
    assert len(api.get('/msgs?no=7', headers=AUTH).json) == 7
    assert api.get('/msgs?no=0', headers=AUTH).json == []
    assert [m['content'] for m in
            api.get(path('msgs', 'alice', no=3), headers=AUTH).json] == [
        '119', '118', '117']
    assert len(api.get('/msgs?no=500', headers=AUTH).json) == 120


def test_a_no_above_the_cap_lists_the_newest_up_to_it(api, monkeypatch):
    monkeypatch.setattr(sim_api, 'MAX_NO', 4)
    for name in ('alice', 'bob', 'carol', 'dave', 'erin'):
        register(api, name)
        tweet(api, name, 'hi from ' + name)
        follow(api, 'alice', name)
    for no in ('5', '100000', '9' * 18):
        answer = api.get('/msgs?no=' + no, headers=AUTH)
        assert answer.status_int == 200
        assert [m['user'] for m in answer.json] == ['erin', 'dave', 'carol', 'bob']
        assert api.get(path('fllws', 'alice', no=no), headers=AUTH).json == {
            'follows': ['alice', 'bob', 'carol', 'dave']}
    assert len(api.get(path('msgs', 'alice', no=100000), headers=AUTH).json) == 1


def test_flagged_messages_are_left_out(api):
    register(api, 'alice')
    tweet(api, 'alice', 'visible')
    tweet(api, 'alice', 'hidden')
    Message.update(flagged=True).where(Message.text == 'hidden').execute()
    assert [m['content'] for m in api.get('/msgs', headers=AUTH).json] == [
        'visible']
    assert [m['content'] for m in
            api.get(path('msgs', 'alice'), headers=AUTH).json] == ['visible']


def test_unknown_users_are_404_with_json(api):
    for res in [api.get(path('msgs', 'nobody'), headers=AUTH, status='*'),
                tweet(api, 'nobody', 'hello'),
                api.get(path('fllws', 'nobody'), headers=AUTH, status='*'),
                follow(api, 'nobody', 'other')]:
        assert res.status_int == 404
        assert res.json['status'] == 404 and res.json['error_msg']
    assert Message.select().count() == 0


# --- /fllws ----------------------------------------------------------------

def test_follow_and_unfollow(api):
    for name in ['alice', 'bob', 'carol']:
        register(api, name)
    assert follow(api, 'alice', 'bob').status_int == 204
    assert follow(api, 'alice', 'carol').status_int == 204
    assert api.get(path('fllws', 'alice'), headers=AUTH).json == {
        'follows': ['bob', 'carol']}
    assert api.get(path('fllws', 'alice', no=1), headers=AUTH).json == {
        'follows': ['bob']}
    assert unfollow(api, 'alice', 'bob').status_int == 204
    assert api.get(path('fllws', 'alice'), headers=AUTH).json == {
        'follows': ['carol']}
    assert api.get(path('fllws', 'bob'), headers=AUTH).json == {'follows': []}


def test_following_twice_keeps_one_row(api):
    register(api, 'alice')
    register(api, 'bob')
    for _ in range(3):
        assert follow(api, 'alice', 'bob').status_int == 204
    assert Follower.select().count() == 1
    assert api.get(path('fllws', 'alice'), headers=AUTH).json == {
        'follows': ['bob']}


def test_following_again_is_one_statement_with_no_lookup(api, monkeypatch):
    """A follow of a pair followed already counts as one row, so the API
    needs no lookup to tell it from an unknown user; an unknown user
    still gets the lookup that names it."""
    register(api, 'alice')
    register(api, 'bob')
    follow(api, 'alice', 'bob')
    counter = StatementCounter(monkeypatch)

    def lookups():
        return [s for s in counter.statements if s.startswith('SELECT')]
    assert follow(api, 'alice', 'bob').status_int == 204
    assert lookups() == []
    res = follow(api, 'alice', 'nobody')
    assert res.status_int == 404 and 'nobody' in res.json['error_msg']
    assert len(lookups()) == 1


def test_unfollowing_a_pair_not_followed_is_fine(api):
    register(api, 'alice')
    register(api, 'bob')
    assert unfollow(api, 'alice', 'bob').status_int == 204
    assert Follower.select().count() == 0


def test_following_an_unknown_user_is_404(api):
    register(api, 'alice')
    for verb in ['follow', 'unfollow']:
        res = follow(api, 'alice', 'nobody', verb=verb)
        assert res.status_int == 404 and res.json['error_msg']
    assert Follower.select().count() == 0


# --- authorization -----------------------------------------------------------

PROTECTED = [('GET', '/msgs'), ('GET', '/msgs/alice'), ('POST', '/msgs/alice'),
             ('GET', '/fllws/alice'), ('POST', '/fllws/alice')]


@pytest.mark.parametrize('method, url', PROTECTED)
@pytest.mark.parametrize('headers', [
    {}, WRONG_AUTH, {'Authorization': 'Bearer c2ltdWxhdG9yOnN1cGVyX3NhZmUh'},
    {'Authorization': 'Basic not-base64!'},
    {'Authorization': 'Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh extra'},
    {'Authorization': 'Basic ' + 'A' * 5000}])
def test_protected_endpoints_need_the_simulators_credentials(
        api, method, url, headers):
    register(api, 'alice')
    res = api.request(url, method=method, headers=headers,
                      body=b'{"content": "x", "follow": "alice"}',
                      content_type='application/json', expect_errors=True)
    assert res.status_int == 403
    assert res.json == NOT_AUTHORIZED
    assert Message.select().count() == 0 and Follower.select().count() == 0


def test_the_basic_scheme_is_case_insensitive(api):
    register(api, 'alice')
    res = api.get('/msgs', headers={
        'Authorization': AUTH['Authorization'].replace('Basic', 'basic')})
    assert res.status_int == 200


def test_credentials_come_from_the_environment(make_db_url, start_server):
    server = start_server('sim_api:app', make_db_url(), env={
        'SIM_API_USERNAME': 'robot', 'SIM_API_PASSWORD': 'hunter2'})

    def status(username, password):
        return Client(server.url, username, password, timeout=10).send(
            'GET', '/msgs')[0]

    assert status('robot', 'hunter2') == 200
    assert status('simulator', 'super_safe!') == 403


def test_register_and_latest_need_no_credentials(api):
    assert register(api, 'alice').status_int == 204
    assert api.get('/latest').status_int == 200


# --- health ----------------------------------------------------------------

def test_healthz_checks_the_database(api):
    answer = api.get('/healthz', headers=AUTH).json
    assert answer['status'] == 'ok'
    assert answer['database']['node'] == database.status()['node']
    database.db.obj.close_all()
    database.configure('sqlite:////nonexistent-dir/minitwit.db')
    res = api.get('/healthz', status='*')
    assert res.status_int == 503
    assert res.json['status'] == 503 and res.json['error_msg']
    assert res.headers['Retry-After'] == '1'


def test_healthz_tells_anybody_else_only_that_it_is_up(api):
    """The database's node and the cluster's size are for the operators
    (and /metrics, which nginx keeps to the server itself)."""
    for headers in ({}, WRONG_AUTH):
        res = api.get('/healthz', headers=headers)
        assert (res.status_int, res.json) == (200, {'status': 'ok'})
