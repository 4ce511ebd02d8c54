"""MiniTwit on a three-node MariaDB Galera cluster (tests/galera.py: real
mariadbd with wsrep on loopback), through two app processes that prefer
different nodes, as two app hosts would.

- a replay split over both, action by action, has no error and reads back
  exactly, from either (but that messages of the same second may trade
  places: replay_checks.exact_state); the three nodes hold the same rows;
- a node killed mid-replay: only the request in flight on it may fail,
  with a fast 503; every acknowledged action is stored; the node rejoins
  by IST with the same rows, and its app comes back to it;
- writes that collide on two nodes (certification failures) are retried
  inside the app: the client sees none;
- a browser that posts through one app host and is sent to the other sees
  its message at once (read-your-writes).
"""
import http.cookiejar
import threading
import time
import urllib.request
from itertools import combinations
from urllib.error import HTTPError
from urllib.parse import urlencode

import pytest
from galera import GaleraCluster
from prometheus_client.parser import text_string_to_metric_families
from replay_checks import exact_state, send, stored_exactly, wrong_answers
from serving import in_threads, wait_until

import database
import models
from scripts.simulator.gen_scenario import generate_actions
from scripts.simulator.simulate import DEADLINE, EXPECTED, Client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.needs('mariadbd', 'mariadb-install-db', 'rsync',
                                '/usr/lib/galera/libgalera_smm.so')]

TABLES = ('user', 'message', 'follower', 'latest')


@pytest.fixture(scope='module')
def cluster():
    with GaleraCluster() as started:
        yield started


def cluster_url(cluster, database, prefer, **options):
    """A DATABASE_URL naming all three nodes, preferring node `prefer` (0-2)."""
    hosts = ','.join('127.0.0.1:%d' % node.port for node in cluster.nodes)
    query = '&'.join(['prefer=%d' % (prefer + 1)] +
                     ['%s=%s' % item for item in options.items()])
    return 'mysql://root@%s/%s?%s' % (hosts, database, query)


def two_apps(cluster, start_server, database, app='sim_api:app'):
    """Two app processes on `database`, preferring nodes 0 and 1."""
    cluster.create_database(database)
    return [start_server(app, cluster_url(cluster, database, node))
            for node in (0, 1)]


def node_of(app):
    """(port, cluster size) of the node an app says it uses."""
    health = Client(app.url, timeout=5).get_json('/healthz')['database']
    return int(health['node'].rsplit(':', 1)[1]), health['cluster_size']


def identical_on_every_node(cluster, database):
    counts = cluster.row_counts(database, TABLES)
    return len({tuple(sorted(c.items())) for c in counts.values()}) == 1, counts


def test_a_replay_split_over_two_app_hosts_is_exact(cluster, start_server):
    apps = two_apps(cluster, start_server, 'cluster_split')
    assert [node_of(app) for app in apps] == [
        (cluster.nodes[0].port, 3), (cluster.nodes[1].port, 3)]
    actions = generate_actions(seed=11, users=40, actions=1500)
    clients = [Client(app.url, timeout=5) for app in apps]
    # Action by action in turn: each may need what the one before wrote
    # through the other app and node a moment earlier.
    statuses = [send(clients[n % 2], action)[0]
                for n, action in enumerate(actions)]
    wrong = [(a, s) for a, s in zip(actions, statuses, strict=True)
             if s != EXPECTED[a[1]]]
    assert wrong == []
    for client in clients:
        assert exact_state(client, actions) == []
    same, counts = identical_on_every_node(cluster, 'cluster_split')
    assert same, counts


def test_a_node_killed_mid_replay_loses_nothing_acknowledged(cluster,
                                                              start_server):
    apps = two_apps(cluster, start_server, 'cluster_kill')
    actions = generate_actions(seed=12, users=30, actions=900)
    clients = [Client(app.url, timeout=5) for app in apps]
    answers, timings = [], []
    for n, action in enumerate(actions):
        if n == 300:
            # A few milliseconds on, so that it lands mid-request: node 1,
            # the second app's.
            threading.Timer(0.003, cluster.kill, (1,)).start()
        started = time.perf_counter()
        answers.append(send(clients[n % 2], action))
        timings.append(time.perf_counter() - started)
    statuses = [status for status, _ in answers]
    failed = [n for n, (action, status) in enumerate(zip(actions, statuses,
                                                          strict=True))
              if status != EXPECTED[action[1]]]
    # Only what was in flight on the node when it died, each a fast 503.
    assert len(failed) <= 1, [(n, answers[n]) for n in failed]
    for n in failed:
        assert statuses[n] == 503 and timings[n] < DEADLINE, (n, answers[n])
    registered = set()
    assert wrong_answers([a for n, a in enumerate(actions) if n not in failed],
                         [s for n, s in enumerate(statuses) if n not in failed],
                         registered) == []
    # A write answered 503 may or may not have been committed, and if it
    # was, it may have reached the others after later writes (its node died
    # while sending it), so only its presence is uncertain, not the rest.
    assert holds_the_acknowledged(clients[0], cluster.url(0, 'cluster_kill'),
                                  actions, failed)

    # /metrics says so (the alert MiniTwitDatabaseLostNode reads it).
    wait_until(lambda: cluster_size_metric(apps[0]) == 2,
               'the first app to export a cluster of 2', 30)

    cluster.restart(1)
    assert cluster.rejoined_by(1) == 'IST'
    wait_until(lambda: cluster_size_metric(apps[0]) == 3,
               'the first app to export a cluster of 3 again', 30)
    same, counts = identical_on_every_node(cluster, 'cluster_kill')
    assert same, counts
    # The second app goes back to its node by itself.
    wait_until(lambda: node_of(apps[1])[0] == cluster.nodes[1].port,
               'the second app to return to node 1', 30)


def cluster_size_metric(app):
    """minitwit_database_cluster_size on an app's /metrics."""
    text = Client(app.url, timeout=5).send('GET', '/metrics')[1].decode()
    for family in text_string_to_metric_families(text):
        if family.name == 'minitwit_database_cluster_size':
            return family.samples[0].value
    return None


def holds_the_acknowledged(client, url, actions, unsure):
    """Whether the database holds exactly the actions that were not unsure,
    plus each unsure one or not (exact_state: messages of the same second
    may trade places on a cluster)."""
    return any(stored_exactly(client, url, [a for n, a in enumerate(actions)
                                            if n not in unsure or n in chosen],
                              exact_state)
               for k in range(len(unsure) + 1)
               for chosen in combinations(unsure, k))


def certification_failures(cluster):
    """How many local transactions each node has had to roll back because
    another node's commit won (wsrep_local_cert_failures + bf_aborts)."""
    total = 0
    for node in cluster.nodes:
        with cluster.connect(node.index) as conn, conn.cursor() as cur:
            cur.execute("SHOW STATUS WHERE Variable_name IN "
                        "('wsrep_local_cert_failures', 'wsrep_local_bf_aborts')")
            total += sum(int(value) for _, value in cur.fetchall())
    return total


def test_writes_colliding_on_two_nodes_are_retried_unseen(cluster,
                                                          start_server):
    apps = two_apps(cluster, start_server, 'cluster_conflicts')
    setup = Client(apps[0].url, timeout=30)
    for name in ('ann', 'bob'):
        assert setup.send('POST', '/register', {
            'username': name, 'email': 'x@y', 'pwd': 'pw'})[0] == 204
    before = certification_failures(cluster)
    answers, barrier = [], threading.Barrier(4)

    def client(n):
        # Two on each app: follow and unfollow the same pair, all at once.
        http = Client(apps[n % 2].url, timeout=30)
        barrier.wait(30)
        for round_ in range(60):
            verb = 'follow' if round_ % 2 == 0 else 'unfollow'
            answers.append(http.send('POST', '/fllws/ann?latest=%d' % round_,
                                     {verb: 'bob'})[0])
    in_threads(client, 4, timeout=120)
    assert answers == [204] * 240
    # The test would prove nothing without collisions: there were some.
    assert certification_failures(cluster) > before
    follows = setup.get_json('/fllws/ann')['follows']
    assert follows in ([], ['bob'])
    same, counts = identical_on_every_node(cluster, 'cluster_conflicts')
    assert same, counts


def causal_waits(cluster, node):
    """How many statements node `node` has made wait for the cluster."""
    conn = cluster.connect(node)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_causal_reads'")
            return int(cur.fetchone()[1])
    finally:
        conn.close()


def test_every_simulator_write_waits_for_what_the_cluster_committed(
        cluster, start_server):
    """Each write is a transaction (the action and its `latest`), and the
    server skips the wait for a statement inside one: it must come on the
    BEGIN. A race shows it only now and then; the node's counter always."""
    cluster.create_database('cluster_waits')
    app = start_server('sim_api:app', cluster_url(cluster, 'cluster_waits', 2))
    actions = generate_actions(seed=13, users=10, actions=60)
    client = Client(app.url, timeout=5)
    before = causal_waits(cluster, 2)
    assert [send(client, action)[0] for action in actions] == \
        [EXPECTED[action[1]] for action in actions]
    # Each request's first statement waited: the write itself, or for an
    # action that changed nothing, the lookup after it, never both.
    assert causal_waits(cluster, 2) - before >= len(actions)


def test_a_transaction_of_the_models_waits_on_its_begin(cluster):
    """db.atomic(), as the web UI's password upgrade uses it."""
    cluster.create_database('cluster_atomic')
    database.configure(cluster_url(cluster, 'cluster_atomic', 2))
    try:
        database.create_schema()
        before = causal_waits(cluster, 2)
        database.causal(True)
        with database.connection(), database.db.atomic():
            models.Latest.set_value(7)
        assert causal_waits(cluster, 2) - before == 1
        database.causal(False)
        with database.connection(), database.db.atomic():
            models.Latest.set_value(8)
        assert causal_waits(cluster, 2) - before == 1
    finally:
        database.db.obj.close_all()


def test_a_post_shows_at_once_on_the_other_app_host(cluster, start_server):
    apps = two_apps(cluster, start_server, 'cluster_ryw', app='minitwit:app')
    api = start_server('sim_api:app', cluster_url(cluster, 'cluster_ryw', 2))
    assert Client(api.url).send('POST', '/register', {
        'username': 'me', 'email': 'me@x', 'pwd': 'secret'})[0] == 204
    here, there = (LiveBrowser(app) for app in apps)
    sign_in(here)
    there.cookies = here.cookies  # the same browser, another host
    for n in range(40):
        status, location = here.post('/add_message', {'text': 'message %d' % n})
        assert status == 303 and location.endswith('/')
        # The redirect's GET goes to the other host (and node).
        page = there.get('/')
        assert 'message %d' % n in page, n


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args):
        return None


class LiveBrowser:
    """A browser for a live web UI: cookies and forms, and no redirect
    followed, so that the test chooses where the next request goes."""

    def __init__(self, server):
        self.url = server.url
        self.cookies = http.cookiejar.CookieJar()

    def _opener(self):
        return urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), NoRedirect)

    def get(self, path):
        with self._opener().open(self.url + path, timeout=10) as answer:
            return answer.read().decode('utf-8')

    def post(self, path, form):
        try:
            answer = self._opener().open(self.url + path,
                                         urlencode(form).encode(), timeout=10)
        except HTTPError as redirect:
            return redirect.code, redirect.headers.get('Location')
        return answer.status, None


def sign_in(web):
    status, _ = web.post('/login', {'username': 'me', 'password': 'secret'})
    assert status == 303


def listed_on_every_node(cluster, database):
    """The message texts each node lists, newest first, as /msgs orders
    them (a tie on pub_date broken by message_id)."""
    lists = []
    for node in range(3):
        with cluster.connect(node, database) as conn, conn.cursor() as cur:
            cur.execute('SELECT text FROM message WHERE flagged = 0 '
                        'ORDER BY pub_date DESC, message_id DESC')
            lists.append([text for (text,) in cur.fetchall()])
    return lists


def test_timelines_are_in_one_order_on_every_node(cluster, start_server):
    """Messages posted in the same second through three nodes list alike
    through every node; those posted one after the other, in that order."""
    cluster.create_database('cluster_order')
    apps = [start_server('sim_api:app', cluster_url(cluster, 'cluster_order', n))
            for n in range(3)]
    clients = [Client(app.url, timeout=5) for app in apps]
    assert clients[0].send('POST', '/register', {
        'username': 'ann', 'email': 'a@x', 'pwd': 'pw'})[0] == 204
    posted = []
    for n in range(30):  # one after the other, node by node, in a second or so
        assert clients[n % 3].send('POST', '/msgs/ann', {
            'content': 'in turn %d' % n})[0] == 204
        posted.append('in turn %d' % n)

    statuses = []

    def at_once(n):
        for k in range(20):
            statuses.append(clients[n].send('POST', '/msgs/ann', {
                'content': 'at once %d.%d' % (n, k)})[0])
    in_threads(at_once, 3)
    assert statuses == [204] * 60
    wait_until(lambda: all(len(texts) == 90 for texts in
                           listed_on_every_node(cluster, 'cluster_order')),
               'every node to hold the 90 messages', 30)
    first, *others = listed_on_every_node(cluster, 'cluster_order')
    assert others == [first, first]
    assert [t for t in first if t.startswith('in turn')] == posted[::-1]
    for client in clients:  # and so the API lists them, through each node
        assert [m['content'] for m in client.get_json('/msgs/ann?no=200')] \
            == first


def test_a_hung_node_is_left_within_the_connect_timeout(cluster,
                                                        start_server):
    """SIGSTOP the node an app prefers: its requests move to another node
    within the connect timeout (5 s on a cluster; the read timeout is no
    longer), and stay fast while the node stays frozen."""
    app = two_apps(cluster, start_server, 'cluster_hung')[1]  # prefers node 1
    client = Client(app.url, timeout=30)
    assert client.send('POST', '/register', {
        'username': 'ann', 'email': 'a@x', 'pwd': 'pw'})[0] == 204
    cluster.pause(1)
    try:
        timings, statuses = [], []
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            started = time.perf_counter()
            statuses.append(client.send('POST', '/msgs/ann', {'content': 'x'})[0])
            timings.append(time.perf_counter() - started)
        assert max(timings) < 5.5, timings
        slow = [n for n, t in enumerate(timings) if t > DEADLINE]
        assert len(slow) <= 2 and slow == list(range(len(slow))), timings
        assert set(statuses) <= {204, 503} and statuses[-1] == 204
        assert node_of(app)[0] != cluster.nodes[1].port
    finally:
        cluster.resume(1)
        cluster.wait_synced(1)
