"""Every JSON answer of the simulator API says `X-Content-Type-Options:
nosniff`, errors included and those Bottle makes itself; a 503 says when
to try again (`Retry-After: 1`)."""
import io

import pytest
from sim_client import AUTH, register

import database
from models import Latest

REQUESTS = [
    ('GET', '/latest', {}, None, 200),
    ('GET', '/msgs', AUTH, None, 200),
    ('GET', '/fllws/alice', AUTH, None, 200),
    ('GET', '/healthz', {}, None, 200),
    ('GET', '/openapi.json', {}, None, 200),
    ('GET', '/msgs', {}, None, 403),
    ('GET', '/msgs/nobody', AUTH, None, 404),
    ('POST', '/msgs/alice', AUTH, b'not json', 400),
    ('POST', '/register', {}, b'x' * (65 * 1024), 413),
    ('GET', '/msgs/%FF', AUTH, None, 400),           # not UTF-8
    ('GET', '/no/such/route', AUTH, None, 404),      # Bottle's
    ('PUT', '/latest', {}, b'{}', 405),              # Bottle's
]


def assert_json_not_sniffed(res, status):
    assert res.status_int == status, res.body
    assert res.content_type == 'application/json'
    assert res.headers['X-Content-Type-Options'] == 'nosniff'


@pytest.mark.parametrize('method, url, headers, body, status', REQUESTS)
def test_every_json_answer_says_nosniff(api, method, url, headers, body,
                                        status):
    register(api, 'alice')
    res = api.request(url, method=method, headers=headers, body=body,
                      content_type='application/json', expect_errors=True)
    assert_json_not_sniffed(res, status)


def test_a_500_says_nosniff_too(api, monkeypatch):
    def broken():
        raise RuntimeError('a bug')
    monkeypatch.setattr(Latest, 'get_value', broken)
    res = api.get('/latest', expect_errors=True,
                  extra_environ={'wsgi.errors': io.StringIO()})
    assert_json_not_sniffed(res, 500)


def test_a_503_says_retry_after_one_second(api, tmp_path):
    database.db.obj.close_all()
    database.configure('sqlite:///%s/no/such/folder/minitwit.db' % tmp_path)
    for method, url, headers in [('GET', '/msgs', AUTH),
                                 ('POST', '/msgs/alice?latest=3', AUTH),
                                 ('POST', '/register', {}),
                                 ('GET', '/latest', {}),
                                 ('GET', '/healthz', {})]:
        res = api.request(url, method=method, headers=headers,
                          body=b'{"content": "x", "username": "a", '
                               b'"email": "a@b", "pwd": "p"}',
                          content_type='application/json', expect_errors=True)
        assert_json_not_sniffed(res, 503)
        assert res.headers['Retry-After'] == '1', url
