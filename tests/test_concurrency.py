"""Many clients at once against real waitress servers: 16 doing the same
thing at the same moment leave one user per name and one row per pair and
never get a 500; a mixed load on both apps gets no error at all."""
import threading
from urllib.parse import quote

import pytest
from serving import in_threads

import database
from models import Follower, User
from scripts.bench import loadtest
from scripts.simulator.simulate import Client

pytestmark = pytest.mark.slow

CLIENTS = 16
NAMES = ['ann', 'Åse Ørsted', "D'Arcy O'Brien"]
TAKEN = b'{"status": 400, "error_msg": "The username is already taken"}'


def at_once(send):
    """Call send() from CLIENTS threads released together; the answers."""
    barrier = threading.Barrier(CLIENTS)
    answers = [None] * CLIENTS

    def client(n):
        barrier.wait(timeout=30)
        answers[n] = send()

    in_threads(client, CLIENTS)
    return answers


@pytest.fixture
def server(make_db_url, start_server):
    url = make_db_url()
    server = start_server('sim_api:app', url)
    server.database_url = url
    return server


def test_the_same_name_registered_at_once_is_one_user(server):
    client = Client(server.url, timeout=30)
    for name in NAMES:
        body = {'username': name, 'email': 'x@y', 'pwd': 'pw'}
        answers = at_once(lambda b=body: client.send('POST', '/register', b))
        assert sorted(answers) == [(204, b'')] + [(400, TAKEN)] * 15, name
    database.configure(server.database_url)
    with database.connection():
        assert sorted(u.username for u in User.select()) == sorted(NAMES)


def test_the_same_pair_followed_at_once_is_one_row(server):
    client = Client(server.url, timeout=30)
    for name in NAMES:
        assert client.send('POST', '/register', {
            'username': name, 'email': 'x@y', 'pwd': 'pw'})[0] == 204
    pairs = [(a, b) for a in NAMES for b in NAMES if a != b]
    for verb, rows in [('follow', 1), ('unfollow', 0), ('follow', 1)]:
        for who, whom in pairs:
            answers = at_once(lambda who=who, whom=whom, verb=verb:
                              client.send('POST', '/fllws/%s?latest=1'
                                          % quote(who), {verb: whom}))
            assert answers == [(204, b'')] * CLIENTS, (verb, who, whom)
        database.configure(server.database_url)
        with database.connection():
            assert Follower.select().count() == rows * len(pairs)
    # Followed in the order of `pairs`, each exactly once.
    for who in NAMES:
        assert client.get_json('/fllws/' + quote(who))['follows'] == \
            [b for a, b in pairs if a == who]


def test_a_short_mixed_load_on_both_apps_has_no_errors(make_db_url,
                                                       start_server):
    """`make loadtest` in small: clients writing as the simulator does and
    reading timelines from both apps on one database, for a second and a
    half. The figures come from `make loadtest`; here only the errors."""
    url = make_db_url()
    api = start_server('sim_api:app', url)
    web = start_server('minitwit:app', url)
    loadtest.register_clients(api.url, clients=8, processes=2)
    summary = loadtest.run({'api': api.url, 'web': web.url}, clients=8,
                           processes=2, seconds=1.5, requests=2000)
    assert summary['requests'] > 0
    assert summary['errors'] == {}
