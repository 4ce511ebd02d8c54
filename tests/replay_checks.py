"""Judging a replay that met a fault: what a database that never failed
would have answered, whether the database holds exactly what was
acknowledged, and (on a Galera cluster) whether it holds it exactly but
for the order of messages posted in the same second (tests/test_faults.py,
tests/test_cluster.py, tests/test_cluster_deploy.py)."""
import http.client
import sqlite3
from collections import Counter
from itertools import groupby
from operator import itemgetter
from urllib.parse import quote, urlparse

import pymysql

from scripts.simulator.simulate import expected_state, to_request, verify


def connect(url):
    """A plain DB-API connection to DATABASE_URL, for reading rows back."""
    parts = urlparse(url)
    if parts.scheme == 'sqlite':
        return sqlite3.connect(parts.path[1:])
    return pymysql.connect(host=parts.hostname, port=parts.port,
                           user=parts.username, database=parts.path[1:],
                           autocommit=True, connect_timeout=2)


def send(client, action):
    """(status, body) of one action sent with latest=<id>; (None, the
    error's name) when no answer came."""
    action_id, command, fields = action
    method, path, body = to_request(command, fields)
    try:
        return client.send(method, '%s?latest=%d' % (path, action_id), body)
    except (OSError, http.client.HTTPException) as error:
        return None, type(error).__name__


def wrong_answers(actions, statuses, registered):
    """The actions whose status differs from what a database that never
    failed answers, given the names registered so far (`registered` is
    updated as it goes)."""
    wrong = []
    for (action_id, command, fields), status in zip(actions, statuses,
                                                    strict=True):
        if command == 'register':
            expected = 400 if fields[0] in registered else 204
            if status == 204:
                registered.add(fields[0])
        elif fields[0] not in registered or \
                (command != 'tweet' and fields[1] not in registered):
            expected = 404
        else:
            expected = 204
        if status != expected:
            wrong.append((action_id, command, status, expected))
    return wrong


def stored_exactly(client, url, acked, differences=None):
    """Whether the database holds exactly what the acknowledged actions
    imply, row by row: their users, each user's messages in order, each
    user's follows in order, `latest`, and not one row more. `differences`
    compares what the API shows (simulate.verify; exact_state on a
    cluster)."""
    if (differences or verify)(client, acked):
        return False
    users, messages, follows, _, _ = expected_state(acked)
    conn = connect(url)
    try:
        cur = conn.cursor()
        cur.execute('SELECT (SELECT COUNT(*) FROM user), '
                    '(SELECT COUNT(*) FROM message), '
                    '(SELECT COUNT(*) FROM follower)')
        return cur.fetchone() == (len(users), sum(map(len, messages.values())),
                                  sum(map(len, follows.values())))
    finally:
        conn.close()


def in_order_but_within_a_second(shown, wanted):
    """Whether `shown` ([(message, pub_date)], newest first) lists exactly
    the messages of `wanted` (newest first), in that order but for
    messages of the same second, which may come in any order."""
    at = 0
    for _, same_second in groupby(shown, key=itemgetter(1)):
        messages = [message for message, _ in same_second]
        if Counter(messages) != Counter(wanted[at:at + len(messages)]):
            return False
        at += len(messages)
    return at == len(wanted)


def difference(shown, wanted):
    """What differs between `shown` [(message, pub_date)] and `wanted`
    [message], for a failure's message."""
    missing = Counter(wanted) - Counter(m for m, _ in shown)
    extra = Counter(m for m, _ in shown) - Counter(wanted)
    at = next((n for n, (a, b) in enumerate(zip(shown, wanted, strict=False))
               if a[0] != b),
              min(len(shown), len(wanted)))
    return 'missing %s, extra %s, first difference at %d: shown %s, wanted %s' % (
        list(missing.elements())[:5], list(extra.elements())[:5], at,
        shown[max(0, at - 2):at + 3], wanted[max(0, at - 2):at + 3])


def exact_state(client, actions):
    """scripts.simulator.simulate.verify's differences between what the API shows
    and what the actions imply, but that the messages of one second may be
    listed in another order than they were posted in.

    A timeline is newest first, with ties on pub_date (one second) broken by
    message_id, taken for insertion order. On Galera it is not quite: each
    node hands out its own auto-increment ids (wsrep_auto_increment_control),
    and now and then a node gives a message an id below one that another
    node gave a message committed just before it (a few times in 3,000
    messages posted through two nodes in turn, deploys or not), so two
    messages of the same second trade places. Everything else is exact:
    every user's messages and follows, the public timeline's messages,
    latest."""
    problems = [problem for problem in verify(client, actions)
                if not problem.startswith(('messages of ', '/msgs does not show'))]
    users, messages, _, posted, _ = expected_state(actions)
    assert len(posted) < 10000, 'more messages than one answer of the API holds'
    for user in users:
        shown = [(m['content'], m['pub_date']) for m in
                 client.get_json('/msgs/%s?no=10000' % quote(user, safe=''))]
        if not in_order_but_within_a_second(shown, messages[user][::-1]):
            problems.append('messages of %r: %s' % (
                user, difference(shown, messages[user][::-1])))
    shown = [((m['user'], m['content']), m['pub_date']) for m in
             client.get_json('/msgs?no=%d' % (len(posted) + 1))]
    if not in_order_but_within_a_second(shown, posted[::-1]):
        problems.append('/msgs: %s' % difference(shown, posted[::-1]))
    return problems
