"""Judging a replay that met a fault: what a database that never failed
would have answered, and whether the database holds exactly what was
acknowledged (tests/test_faults.py, tests/test_cluster.py)."""
import http.client
import sqlite3
from urllib.parse import urlparse

import pymysql

from simulator.simulate import expected_state, to_request, verify


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


def stored_exactly(client, url, acked):
    """Whether the database holds exactly what the acknowledged actions
    imply, row by row: their users, each user's messages in order, each
    user's follows in order, `latest`, and not one row more."""
    if verify(client, acked):
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
