"""Faults: the database stops, an app is killed or told to stop, the pool
runs dry. MiniTwit keeps answering, fast, and loses nothing it acknowledged.

They run on MariaDB always, on a mariadbd of their own (a temporary datadir,
127.0.0.1, a free port) so that stopping it disturbs nothing else; killing
an app is tried on SQLite too.
"""
import contextlib
import http.client
import json
import signal
import socket
import threading
from itertools import combinations
from urllib.parse import urlparse

import pytest
from replay_checks import connect, send, stored_exactly, wrong_answers
from serving import ThrowawayMariaDB, wait_until

from scripts.simulator.gen_scenario import generate_actions
from scripts.simulator.simulate import DEADLINE, Client, to_request

pytestmark = [pytest.mark.slow,
              pytest.mark.needs('mariadbd', 'mariadb-install-db')]

WAIT = 30  # seconds: the most any wait below may take before it fails
UNAVAILABLE = {'status': 503, 'error_msg': 'The database is unavailable '
               'right now; try again in a moment'}


@pytest.fixture(scope='module')
def mariadb(tmp_path_factory):
    server = ThrowawayMariaDB(tmp_path_factory.mktemp('mariadb'))
    yield server
    if server.running():
        server.stop()


@pytest.fixture
def db_url(mariadb):
    """A new, empty database on the throwaway server (started again if an
    earlier test left it stopped)."""
    if not mariadb.running():
        mariadb.start()
    return mariadb.create_database()


def in_database(url):
    """The statements running on this database (this query aside): while
    a test holds a lock, the requests waiting for it."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT info FROM information_schema.processlist "
                    "WHERE db = %s AND command = 'Query' "
                    "AND id != CONNECTION_ID()", (urlparse(url).path[1:],))
        return [row[0] for row in cur.fetchall()]


class Locked:
    """Holds a lock for the length of a `with` block: the requests that
    need it wait inside the app, in the database, until the block ends."""

    def __init__(self, url, *statements):
        self.conn = connect(url)
        self.statements = statements

    def __enter__(self):
        with self.conn.cursor() as cur:
            for statement in self.statements:
                cur.execute(statement)

    def __exit__(self, *exc):
        self.conn.close()  # which releases the locks


def latest_locked(url):
    """Every write that stores `latest` waits: all of the table's rows and
    the gaps between them, where a process's first write would go."""
    return Locked(url, 'BEGIN', 'SELECT value FROM latest FOR UPDATE')


def in_background(fn, *args):
    """Start fn(*args) in a thread; returns the thread and a list that
    receives the result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(fn(*args)),
                              daemon=True)
    thread.start()
    return thread, result


def ask(server, method, path, body=None):
    """(status, headers, body) of one request as the simulator sends it."""
    client = Client(server.url, timeout=WAIT)
    conn = http.client.HTTPConnection(client.host, client.port, timeout=WAIT)
    try:
        conn.request(method, path, None if body is None else json.dumps(body),
                     client.headers)
        answer = conn.getresponse()
        return answer.status, answer.headers, answer.read()
    finally:
        conn.close()


def refuses_connections(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


# --- the database goes away and comes back ---------------------------------------

@pytest.mark.parametrize('stop', [signal.SIGTERM, signal.SIGKILL],
                         ids=['stopped', 'crashed'])
def test_mariadb_goes_away_mid_replay_and_comes_back(mariadb, db_url,
                                                     start_server, stop):
    actions = generate_actions(seed=5, users=25, actions=220)
    before, during, after = actions[:100], actions[100:120], actions[120:]
    server = start_server('sim_api:app', db_url)
    client = Client(server.url, timeout=5)
    registered = set()

    answered = [send(client, a)[0] for a in before]
    assert wrong_answers(before, answered, registered) == []

    mariadb.stop(stop)
    # With the simulator's own deadline: an answer that takes longer is an
    # error to it, as a hang would be.
    fast = Client(server.url, timeout=DEADLINE)
    for action in during:
        status, body = send(fast, action)
        assert (status, json.loads(body)) == (503, UNAVAILABLE), action
    status, body = fast.send('GET', '/healthz')
    assert (status, json.loads(body)) == (503, UNAVAILABLE)

    mariadb.start()  # and not the app
    statuses = [send(client, a)[0] for a in after]
    # Registers lost in the outage make their users' later actions 404, as
    # on any server; nothing else may go wrong.
    assert wrong_answers(after, statuses, registered) == []
    sent, answered = before + after, answered + statuses
    acked = [a for a, s in zip(sent, answered, strict=True) if s == 204]
    assert stored_exactly(client, db_url, acked)


def test_while_mariadb_is_down_both_apps_say_retry_after_one_second(
        mariadb, db_url, start_server):
    api = start_server('sim_api:app', db_url)
    web = start_server('minitwit:app', db_url)
    assert ask(api, 'POST', '/register?latest=1', {
        'username': 'ann', 'email': 'ann@x', 'pwd': 'pw'})[0] == 204
    mariadb.stop()
    for method, path in [('GET', '/msgs'), ('POST', '/msgs/ann?latest=2'),
                         ('GET', '/latest'), ('GET', '/healthz')]:
        status, headers, body = ask(api, method, path, {'content': 'x'})
        assert (status, json.loads(body)) == (503, UNAVAILABLE), path
        assert headers['Retry-After'] == '1', path
        assert headers['X-Content-Type-Options'] == 'nosniff', path
    status, headers, _ = ask(web, 'GET', '/public')
    assert (status, headers['Retry-After']) == (503, '1')


# --- a write committed, its answer lost ----------------------------------------

class AnswerLosingProxy:
    """A TCP proxy in front of MariaDB that can lose an answer: after
    lose_next(), the next packet with a COMMIT in it reaches the server and
    is run there, but what the server answers is held back until drop()
    closes that connection, as a server that died right after the commit
    would leave it."""

    def __init__(self, port):
        self.target = ('127.0.0.1', port)
        self.listener = socket.create_server(('127.0.0.1', 0))
        self.port = self.listener.getsockname()[1]
        self.losing = threading.Event()
        self.victim = None  # (app's socket, server's socket)
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_next(self):
        self.victim = None
        self.losing.set()

    def drop(self):
        self._close(self.victim)

    def close(self):
        self.listener.close()

    def _accept(self):
        while True:
            try:
                app, _ = self.listener.accept()
            except OSError:
                return  # closed
            pair = (app, socket.create_connection(self.target))
            for source, sink, up in ((*pair, True), (*pair[::-1], False)):
                threading.Thread(target=self._pipe, daemon=True,
                                 args=(pair, source, sink, up)).start()

    def _pipe(self, pair, source, sink, up):
        try:
            while data := source.recv(65536):
                if up and b'COMMIT' in data and self.losing.is_set():
                    self.losing.clear()
                    self.victim = pair
                if not up and self.victim is pair:
                    continue  # the answer that never arrives
                sink.sendall(data)
        except OSError:
            pass
        self._close(pair)

    @staticmethod
    def _close(pair):
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the other pipe up
            sock.close()


def test_writes_retried_after_a_503_that_was_committed_are_done_once(
        mariadb, db_url, start_server):
    """The database commits a write, and its answer is lost on the way
    back: the API answers 503. The same request sent again with the same
    `latest` does nothing twice: a tweet, a follow and an unfollow answer
    204, a register 400 (the name is taken, by itself)."""
    proxy = AnswerLosingProxy(mariadb.port)
    try:
        through_proxy = db_url.replace(':%d/' % mariadb.port,
                                       ':%d/' % proxy.port)
        server = start_server('sim_api:app', through_proxy)
        client = Client(server.url, timeout=WAIT)
        actions = [(1, 'register', ['ann', 'ann@x', 'pw']),
                   (2, 'register', ['bob', 'bob@x', 'pw']),
                   (3, 'tweet', ['ann', 'hello']),
                   (4, 'follow', ['ann', 'bob']),
                   (5, 'unfollow', ['ann', 'bob'])]
        assert send(client, actions[0])[0] == 204
        retried = []
        for action_id, command, fields in actions[1:]:
            method, path, body = to_request(command, fields)
            path += '?latest=%d' % action_id
            proxy.lose_next()
            thread, answer = in_background(ask, server, method, path, body)
            wait_until(lambda n=action_id: latest_in(db_url) == n,
                       'the commit of %s' % command, WAIT)
            proxy.drop()
            thread.join(WAIT)
            status, headers, _ = answer[0]
            assert (status, headers['Retry-After']) == (503, '1'), command
            retried.append(send(client, (action_id, command, fields))[0])
        assert retried == [400, 204, 204, 204]
        assert stored_exactly(client, db_url, actions)
    finally:
        proxy.close()


def latest_in(url):
    """The `latest` committed in the database."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute('SELECT MAX(value) FROM latest')
        return cur.fetchone()[0]


# --- the server closes the pooled connections ---------------------------------

def test_pooled_connections_killed_by_the_server_are_replaced_unseen(
        db_url, start_server):
    """KILL (as wait_timeout or a restart would) every connection the app
    holds: its next requests, writes included, succeed as if nothing had
    happened; the pool notices without asking the server (no ping)."""
    server = start_server('sim_api:app', db_url)
    client = Client(server.url, timeout=WAIT)
    actions = generate_actions(seed=3, users=10, actions=120)
    registered = set()
    first = [send(client, a)[0] for a in actions[:60]]
    assert wrong_answers(actions[:60], first, registered) == []
    name = urlparse(db_url).path[1:]
    with connect(db_url) as admin, admin.cursor() as cur:
        cur.execute('SELECT id FROM information_schema.processlist '
                    'WHERE db = %s AND id != CONNECTION_ID()', (name,))
        killed = [row[0] for row in cur.fetchall()]
        for connection_id in killed:
            cur.execute('KILL %d' % connection_id)
    assert killed, 'the app held no connection'
    pings = admin_commands(db_url)
    rest = [send(client, a)[0] for a in actions[60:]]
    assert wrong_answers(actions[60:], rest, registered) == []
    assert admin_commands(db_url) == pings  # COM_PING counts as one
    assert stored_exactly(client, db_url, actions)


def admin_commands(url):
    """The server's count of COM_PING and other administrative commands
    (this server of the tests' own serves nobody else)."""
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'Com_admin_commands'")
        return int(cur.fetchone()[1])


# --- an app is killed mid-replay and started again -----------------------------

@pytest.mark.parametrize('backend', ['mariadb', 'sqlite'])
def test_an_app_killed_mid_replay_loses_nothing_it_acknowledged(
        backend, request, tmp_path, start_server):
    url = request.getfixturevalue('db_url') if backend == 'mariadb' else \
        'sqlite:///%s' % (tmp_path / 'kill.db')
    actions = generate_actions(seed=9, users=25, actions=200)
    server = start_server('sim_api:app', url)
    client = Client(server.url, timeout=5)
    answers, restarted = [], False
    for n, action in enumerate(actions):
        if n == 80:
            # A few milliseconds on, so that it lands mid-request.
            threading.Timer(0.01, server.process.kill).start()
        answers.append(send(client, action))
        refused = sum(error == 'ConnectionRefusedError'
                      for _, error in answers)
        if refused >= 10 and not restarted:
            # Its socket is closed before the process is reaped: wait.
            server.process.wait(10)
            server.start()
            restarted = True
    assert refused >= 10, 'the app was never down'
    statuses = [status for status, _ in answers]
    assert not [s for s in statuses if s is not None and s >= 500]

    # A request cut off by the kill may or may not have been stored, but
    # not in part: one of these histories is exactly what is stored.
    unsure = [n for n, (status, error) in enumerate(answers)
              if status is None and error != 'ConnectionRefusedError']
    assert len(unsure) <= 3, answers
    histories = [[a for n, a in enumerate(actions)
                  if statuses[n] == 204 or n in chosen]
                 for k in range(len(unsure) + 1)
                 for chosen in combinations(unsure, k)]
    assert any(stored_exactly(client, url, h) for h in histories)


# --- SIGTERM: stop accepting, finish what is in flight, exit -----------------

# For each app: a request that waits inside it (for the message table), and
# one that is still arriving when SIGTERM comes.
IN_FLIGHT = {
    'sim_api:app': (('POST', '/msgs/ann?latest=2', {'content': 'running'}),
                    b'POST /msgs/ann?latest=3 HTTP/1.1\r\nHost: x\r\n'
                    b'Authorization: Basic c2ltdWxhdG9yOnN1cGVyX3NhZmUh\r\n'
                    b'Content-Length: 19\r\n\r\n{"content": "late"}',
                    204),
    'minitwit:app': (('GET', '/public', None),
                     b'GET /public HTTP/1.1\r\nHost: x\r\n\r\n', 200),
}


@pytest.mark.parametrize('app', IN_FLIGHT)
def test_sigterm_finishes_requests_in_flight_then_exits(app, db_url,
                                                         start_server):
    running, arriving, status = IN_FLIGHT[app]
    server = start_server(app, db_url)
    client = Client(server.url, timeout=WAIT)
    with connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO user (username, email, pw_hash) "
                    "VALUES ('ann', 'ann@x', 'x')")
    idle = http.client.HTTPConnection('127.0.0.1', server.port, timeout=WAIT)
    idle.request('GET', '/healthz')  # keep-alive: stays open, idle
    assert json.loads(idle.getresponse().read())['status'] == 'ok'
    with Locked(db_url, 'LOCK TABLES message WRITE'):
        thread, answer = in_background(client.send, *running)
        wait_until(lambda: len(in_database(db_url)) == 1,
                   'the request to block', WAIT)
        receiving = socket.create_connection(('127.0.0.1', server.port),
                                             timeout=WAIT)
        receiving.sendall(arriving[:-10])

        server.process.send_signal(signal.SIGTERM)
        wait_until(lambda: refuses_connections(server.port),
                   'the listening socket to close', WAIT)
        assert server.process.poll() is None
        # The idle keep-alive connection is closed, not left to time out.
        assert idle.sock.recv(1) == b''
        receiving.sendall(arriving[-10:])
    # The lock is gone: both requests finish and are answered in full.
    thread.join(WAIT)
    assert answer[0][0] == status, server.output()
    assert receiving.recv(65536).startswith(b'HTTP/1.1 %d ' % status)
    assert server.process.wait(WAIT) == 0
    if app == 'sim_api:app':
        assert [m['content'] for m in
                Client(start_server(app, db_url).url).get_json('/msgs')] in \
            (['late', 'running'], ['running', 'late'])


# --- the connection pool runs dry ------------------------------------------------

def test_an_exhausted_pool_answers_503_at_once(db_url, start_server):
    server = start_server('sim_api:app', db_url +
                          '?max_connections=2&timeout=0.1')
    client = Client(server.url, timeout=WAIT)
    assert send(client, (1, 'register', ['ann', 'ann@x', 'pw']))[0] == 204
    with latest_locked(db_url):
        # Two writes hold both pooled connections, waiting on the lock.
        writers = [in_background(send, client, (n, 'tweet', ['ann', 'hi']))
                   for n in (2, 3)]
        wait_until(lambda: len(in_database(db_url)) == 2,
                   'both writes to block', WAIT)
        fast = Client(server.url, timeout=DEADLINE)
        for method, path in [('GET', '/msgs'), ('GET', '/healthz'),
                             ('POST', '/msgs/ann')]:
            status, body = fast.send(method, path, {'content': 'x'})
            assert (status, json.loads(body)) == (503, UNAVAILABLE)
    for thread, answer in writers:
        thread.join(WAIT)
        assert answer == [(204, b'')]
    assert len(client.get_json('/msgs')) == 2
