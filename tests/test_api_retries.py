"""Sending a write again is safe: a 503 may come after its commit (the
database died before the answer), and a client that retries must not post
a tweet twice. A tweet is keyed by its `latest` and its author; registers,
follows and unfollows are idempotent by nature."""
import threading

from peewee import OperationalError
from serving import in_threads
from sim_client import AUTH, follow, latest, path, register, tweet, unfollow

import database
from models import Follower, Message, TweetKey, User
from scripts.simulator.simulate import Client


def keys():
    """The tweet keys stored, as (latest, author_id)."""
    return [(k.latest, k.author_id) for k in TweetKey.select()]


def messages_of(api, name):
    return [m['content'] for m in
            api.get(path('msgs', name), headers=AUTH).json]


def test_a_tweet_sent_twice_with_the_same_latest_is_stored_once(api):
    register(api, 'alice', latest=1)
    assert tweet(api, 'alice', 'hello', latest=2).status_int == 204
    assert tweet(api, 'alice', 'hello', latest=2).status_int == 204
    assert messages_of(api, 'alice') == ['hello']
    assert latest(api) == 2


def test_tweets_with_other_latests_or_none_are_all_stored(api):
    register(api, 'alice')
    register(api, 'bob')
    for n in (3, 4):
        assert tweet(api, 'alice', 'same words', latest=n).status_int == 204
    for _ in range(2):
        assert tweet(api, 'alice', 'no key').status_int == 204
    # The key is the author's too: the same `latest` by someone else.
    assert tweet(api, 'bob', 'same words', latest=3).status_int == 204
    assert messages_of(api, 'alice') == ['no key', 'no key', 'same words',
                                         'same words']
    assert messages_of(api, 'bob') == ['same words']
    alice, bob = User.by_name('alice').user_id, User.by_name('bob').user_id
    assert sorted(keys()) == [(3, alice), (3, bob), (4, alice)]


def test_an_unknown_authors_tweet_leaves_no_key(api):
    res = tweet(api, 'nobody', 'hello', latest=5)
    assert res.status_int == 404
    assert keys() == []
    register(api, 'nobody')
    assert tweet(api, 'nobody', 'hello', latest=5).status_int == 204
    assert messages_of(api, 'nobody') == ['hello']


def lose_the_next_answer(monkeypatch):
    """The next transaction commits, then its connection dies before the
    answer: the API answers 503, as it does when the database goes away
    at that moment."""
    commit = database.transaction
    lost = []

    def commit_then_fail(*statements):
        results = commit(*statements)
        if not lost:
            lost.append(statements)
            raise OperationalError(2013, 'Lost connection to server during '
                                   'query (in the test)')
        return results

    monkeypatch.setattr(database, 'transaction', commit_then_fail)
    return lost


def test_a_tweet_retried_after_a_503_that_was_committed_is_stored_once(
        api, monkeypatch):
    register(api, 'alice', latest=1)
    lost = lose_the_next_answer(monkeypatch)
    first = tweet(api, 'alice', 'hello', latest=2)
    assert first.status_int == 503 and lost
    assert first.headers['Retry-After'] == '1'
    assert Message.select().count() == 1  # it was committed all the same
    assert tweet(api, 'alice', 'hello', latest=2).status_int == 204
    assert messages_of(api, 'alice') == ['hello']
    assert latest(api) == 2


def test_registers_follows_and_unfollows_retried_after_a_commit_do_it_once(
        api, monkeypatch):
    register(api, 'bob')

    def twice(send, *args):
        """The first answer lost after its commit, then the retry's."""
        with monkeypatch.context() as patch:
            lost = lose_the_next_answer(patch)
            assert send(api, *args).status_int == 503 and lost
        return send(api, *args)

    # A register done already is a taken name: refused, stored once.
    res = twice(register, 'alice', None, 'pw', 1)
    assert (res.status_int, res.json['error_msg']) == (
        400, 'The username is already taken')
    assert User.select().where(User.username == 'alice').count() == 1
    assert twice(follow, 'alice', 'bob', 2).status_int == 204
    assert Follower.select().count() == 1
    assert twice(unfollow, 'alice', 'bob', 3).status_int == 204
    assert Follower.select().count() == 0
    assert latest(api) == 3


def test_concurrent_retries_of_one_tweet_store_it_once(make_db_url,
                                                       start_server):
    """The key's uniqueness decides: eight copies at once, eight 204s,
    one message."""
    server = start_server('sim_api:app', make_db_url())
    client = Client(server.url, timeout=10)
    assert client.send('POST', '/register?latest=1', {
        'username': 'ann', 'email': 'ann@x', 'pwd': 'pw'})[0] == 204
    answers = []
    start = threading.Barrier(8)

    def send(_):
        start.wait()
        answers.append(client.send('POST', '/msgs/ann?latest=2',
                                   {'content': 'once'})[0])

    in_threads(send, 8, timeout=30)
    assert answers == [204] * 8
    assert [m['content'] for m in client.get_json('/msgs/ann')] == ['once']
    assert client.get_json('/latest') == {'latest': 2}
