"""Bad input to the simulator API: always a clear 4xx with a JSON error_msg,
never a 500, never a half-written row, never a moved `latest`."""
import json
import socket

import pytest
from sim_client import AUTH, latest, path, post, register

import models
from models import Follower, Message, User


def counts():
    return (User.select().count(), Message.select().count(),
            Follower.select().count(), models.Latest.get_value())


@pytest.fixture
def alice_and_bob(api):
    register(api, 'alice', latest=1)
    register(api, 'bob', latest=2)
    return api


def assert_refused(res, status=400):
    assert res.status_int == status, res.body
    assert res.content_type == 'application/json'
    assert res.json['status'] == status
    assert isinstance(res.json['error_msg'], str) and res.json['error_msg']


def send(api, url, body, content_type='application/json'):
    return api.post(url, body, headers=AUTH, content_type=content_type,
                    status='*')


BODIES = [
    b'', b'{', b'{"content": }', b'not json', b'\xff\xfe{"x": 1}',
    b'[' * 5000 + b']' * 5000, b'{"a": ' * 3000 + b'1' + b'}' * 3000,
    b'[]', b'["content", "x"]', b'"content"', b'42', b'null', b'true',
]


@pytest.mark.parametrize('body', BODIES)
@pytest.mark.parametrize('url', ['/register', '/msgs/alice', '/fllws/alice'])
def test_malformed_or_non_object_json(alice_and_bob, url, body):
    before = counts()
    assert_refused(send(alice_and_bob, url + '?latest=99', body))
    assert counts()[:3] == before[:3]


@pytest.mark.parametrize('body', [
    {'username': 5, 'email': 'a@b', 'pwd': 'x'},
    {'username': ['x'], 'email': 'a@b', 'pwd': 'x'},
    {'username': 'x', 'email': {'a': '@'}, 'pwd': 'x'},
    {'username': 'x', 'email': 'a@b', 'pwd': 123},
    {'username': None, 'email': 'a@b', 'pwd': 'x'},
    {'username': 'nul\x00byte', 'email': 'a@b', 'pwd': 'x'},
    {'username': 'lone \ud800 surrogate', 'email': 'a@b', 'pwd': 'x'},
    {'username': 'x', 'email': 'a@b', 'pwd': 'lone \udfff'},
    {'username': 'x' * 101, 'email': 'a@b', 'pwd': 'x'},
    {'username': 'x', 'email': 'a@' + 'b' * 300, 'pwd': 'x'},
    {'username': 'x', 'email': 'a@b', 'pwd': 'p' * 2000},
    {'username': '   ', 'email': 'a@b', 'pwd': 'x'},
])
def test_register_with_wrong_fields(api, body):
    assert_refused(post(api, '/register', body))
    assert User.select().count() == 0


@pytest.mark.parametrize('body', [
    {}, {'content': ''}, {'content': '   '}, {'content': None},
    {'content': 42}, {'content': ['x']}, {'content': {'text': 'x'}},
    {'text': 'wrong key'}, {'content': 'x' * 1001}, {'content': 'a\x00b'},
    {'content': '\ud83d half an emoji'},
])
def test_post_message_with_wrong_fields(alice_and_bob, body):
    assert_refused(post(alice_and_bob, '/msgs/alice', body))
    assert Message.select().count() == 0


def test_the_longest_message_allowed_is_stored_whole(alice_and_bob):
    text = 'æ' * models.MAX_MESSAGE
    assert post(alice_and_bob, '/msgs/alice', {'content': text}).status_int == 204
    assert Message.get().text == text


@pytest.mark.parametrize('body', [
    {}, {'follow': 'bob', 'unfollow': 'bob'}, {'follow': None},
    {'follow': 7}, {'unfollow': ['bob']}, {'follow': {'name': 'bob'}},
    {'followers': 'bob'},
])
def test_follow_with_wrong_fields(alice_and_bob, body):
    assert_refused(post(alice_and_bob, '/fllws/alice', body))
    assert Follower.select().count() == 0


@pytest.mark.parametrize('value', ['abc', '1.5', '-1', '', ' 1', '1 ', '+3',
                                   '1_000', '١٢', '0x10', '9' * 40])
@pytest.mark.parametrize('url', ['/msgs', '/msgs/alice', '/fllws/alice'])
def test_a_bad_no_is_refused(alice_and_bob, url, value):
    assert_refused(alice_and_bob.get(url, {'no': value}, headers=AUTH,
                                     status='*'))


@pytest.mark.parametrize('value', ['abc', '1.0', '-5', '', ' 7', '٣',
                                   '9' * 30])
def test_a_bad_latest_is_refused_and_changes_nothing(alice_and_bob, value):
    before = counts()
    res = post(alice_and_bob, path('msgs', 'alice', latest=value),
               {'content': 'not stored'})
    assert_refused(res)
    assert counts() == before
    res = post(alice_and_bob, path('register', latest=value),
               {'username': 'carol', 'email': 'c@x', 'pwd': 'x'})
    assert_refused(res)
    assert counts() == before and latest(alice_and_bob) == 2


def test_an_oversized_body_is_refused_before_it_is_read(alice_and_bob):
    body = json.dumps({'content': 'x' * 100_000}).encode()
    assert_refused(send(alice_and_bob, '/msgs/alice', body), 413)
    assert Message.select().count() == 0


def test_a_path_that_is_not_utf8_is_refused(alice_and_bob):
    # %E9 alone is Latin-1 "é": Bottle would silently drop it and look up
    # "alic" + "" = a different name.
    assert_refused(alice_and_bob.get('/msgs/alice%E9', headers=AUTH,
                                     status='*'))


def test_unknown_routes_and_methods_answer_json(alice_and_bob):
    assert_refused(alice_and_bob.get('/nope', headers=AUTH, status='*'), 404)
    assert_refused(alice_and_bob.put('/msgs/alice', '{}', headers=AUTH,
                                     status='*'), 405)
    assert_refused(alice_and_bob.delete('/fllws/alice', headers=AUTH,
                                        status='*'), 405)


def test_any_content_type_carrying_json_is_read(alice_and_bob):
    """curl -d sends form encoding by default; the body is still JSON."""
    res = send(alice_and_bob, '/msgs/alice', b'{"content": "hi"}',
               content_type='application/x-www-form-urlencoded')
    assert res.status_int == 204
    assert Message.get().text == 'hi'


# --- through waitress --------------------------------------------------------

def raw_request(server, head, body=b''):
    """Send raw bytes; return (status, body)."""
    with socket.create_connection(('127.0.0.1', server.port), timeout=10) as s:
        s.sendall(head + body)
        data = b''
        while chunk := s.recv(65536):
            data += chunk
    status = int(data.split(b' ', 2)[1])
    return status, data.split(b'\r\n\r\n', 1)[1]


@pytest.mark.slow
def test_waitress_limits_and_chunked_bodies(make_db_url, start_server):
    server = start_server('sim_api:app', make_db_url())
    body = json.dumps({'username': 'chunky', 'email': 'c@x', 'pwd': 'x'})
    chunked = b'%x\r\n%s\r\n0\r\n\r\n' % (len(body), body.encode())
    status, _ = raw_request(server, (
        b'POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json'
        b'\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'), chunked)
    assert status == 204
    # (Over waitress's 1 MiB: test_attacks.py, for both apps.)
    # Over the app's own 64 KiB cap but under waitress's: the app says 413.
    status, answer = raw_request(server, (
        b'POST /register HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n'
        b'Connection: close\r\n\r\n'), b'x' * 100_000)
    assert status == 413 and json.loads(answer)['status'] == 413
