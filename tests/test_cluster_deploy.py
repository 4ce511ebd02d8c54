"""A rolling deploy over two app hosts on a Galera cluster, while the
simulator's traffic goes on, every piece real but the machines.

- the database: three real mariadbd with wsrep (tests/galera.py), the
  first bootstrapped, throwaway datadirs and small buffer pools;
- two app hosts, each a `Host` of tests/delivery.py (deploy/provision.sh
  --root, OpenSSH, nginx, the apps as background processes) in a network
  namespace of its own (tests/netns.py: `ip netns`, a veth pair, addresses
  10.232.1.2 and 10.232.2.2, loopback up inside): its sshd, its nginx and
  the apps its deploys start all run in there, so each host reaches the
  others and the database only over its veth, as a droplet does over the
  private network;
- in front, one nginx on 127.0.0.1 (this machine's namespace), as the
  droplets' load balancer: round robin over both hosts' nginx.

How the namespaces reach the cluster: its nodes listen on 127.0.0.1 and
also on our ends of the two veths (10.232.1.1 and 10.232.2.1: MariaDB
10.11 takes a list of addresses in bind-address); nothing else can reach
those addresses. Each host's DATABASE_URL names all three nodes at its own
gateway, `mysql://minitwit:PW@10.232.N.1:P1,10.232.N.1:P2,10.232.N.1:P3/
cluster_deploy?prefer=N`, as production's names the nodes' addresses, with
a MariaDB user minitwit for 10.232.% only. No forwarder in between, and
nothing of the cluster bound beyond this machine.

The test deploys v1 to both hosts with deploy.sh, then replays a generated
scenario through the front nginx while deploy.sh rolls v2 out host by
host: no request fails, each host answers v1 until its switch and v2 after
it, the first host switches while the second still serves v1, the state
read back through the front is exact (but for the order of messages of
the same second: see exact_state), the three nodes hold the same rows, and
both hosts end on v2, each app on its own node.
"""
import subprocess
import threading
from pathlib import Path

import pytest
from delivery import USER, Host, Keys, Nginx, deploy, make_dist, release_of, replay_until
from galera import GaleraCluster
from netns import namespaces
from replay_checks import exact_state
from serving import ROOT, free_port, wait_until

from scripts.simulator.gen_scenario import generate_actions
from scripts.simulator.simulate import EXPECTED, Client

pytestmark = [
    pytest.mark.slow, pytest.mark.timeout(600),
    pytest.mark.needs('root', 'ip', 'nginx', 'sshd', 'ssh', 'scp', 'ssh-keygen', 'curl',
                      'ss', 'pgrep', 'mariadbd', 'mariadb-install-db', 'rsync',
                      '/usr/lib/galera/libgalera_smm.so')]

DATABASE = 'cluster_deploy'
PASSWORD = 'app-hosts-secret'  # MariaDB's user minitwit, from the namespaces only
TABLES = ('user', 'message', 'follower', 'latest')


class ReachableCluster(GaleraCluster):
    """A GaleraCluster whose nodes' client ports also listen on `addresses`
    (the group communication and state transfers stay on 127.0.0.1), and
    that lets a user without SUPER create the schema's triggers."""

    def __init__(self, addresses, **kwargs):
        super().__init__(**kwargs)
        self.addresses = list(addresses)

    def options(self, node):
        options = super().options(node)
        index = options.index('--bind-address=127.0.0.1')
        options[index] = '--bind-address=%s' % ','.join(['127.0.0.1', *self.addresses])
        # With wsrep on, MariaDB counts the binary log as enabled, and then
        # refuses CREATE TRIGGER to a user without SUPER (error 1419) unless
        # this is set: the app hosts' user minitwit creates schema.sql's
        # triggers (python -m scripts.ops.initdb, at every deploy).
        return options + ['--log-bin-trust-function-creators=1']


@pytest.fixture(scope='module')
def network():
    """The two app hosts' namespaces, gone afterwards whatever happened."""
    with namespaces(['app1', 'app2']) as made:
        yield made


@pytest.fixture(scope='module')
def cluster(network):
    spaces, _ = network
    with ReachableCluster([ns.gateway for ns in spaces]) as started:
        started.create_database(DATABASE)
        with started.connect(0) as conn, conn.cursor() as cur:
            # Users replicate (DDL, in total order) to every node.
            cur.execute("CREATE USER 'minitwit'@'10.232.%%' IDENTIFIED BY %s", (PASSWORD,))
            cur.execute("GRANT ALL PRIVILEGES ON `%s`.* TO 'minitwit'@'10.232.%%'"
                        % DATABASE)
        yield started


@pytest.fixture(scope='module')
def wheelhouse(tmp_path_factory):
    """The wheels a release needs, built here: the hosts have no package
    index (nothing beyond their veth), as a server that has had a deploy
    before needs none."""
    wheels = tmp_path_factory.mktemp('wheels')
    done = subprocess.run(
        [str(Path(ROOT) / '.venv' / 'bin' / 'python'), '-m', 'pip', 'wheel', '--quiet',
         '--disable-pip-version-check', '-w', str(wheels), 'pip',
         '--group', str(Path(ROOT) / 'pyproject.toml') + ':app',
         '--group', str(Path(ROOT) / 'pyproject.toml') + ':mysql'],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return wheels


def host_url(cluster, ns, prefer):
    """Host `ns`'s DATABASE_URL: every node at its gateway, `prefer` first."""
    nodes = ','.join('%s:%d' % (ns.gateway, node.port) for node in cluster.nodes)
    return 'mysql://minitwit:%s@%s/%s?prefer=%d' % (PASSWORD, nodes, DATABASE, prefer)


FRONT = '''# The load balancer in front of the app hosts (round robin).
upstream app_hosts {
%(servers)s
}
server {
    listen 127.0.0.1:%(port)d;
    access_log %(log)s;
    location / {
        proxy_pass http://app_hosts;
        # To the other host only when this one could not be reached before
        # anything was sent: nginx never sends a POST twice once it went
        # out (non_idempotent is not given), and a 502 is passed on.
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries 2;
        proxy_connect_timeout 2s;
        proxy_read_timeout 60s;
        proxy_pass_header Server;
    }
}
'''


def front_nginx(directory, hosts):
    conf = directory / 'front.conf'
    port = free_port()
    directory.mkdir(parents=True)
    conf.write_text(FRONT % {
        'servers': '\n'.join('    server %s:%d max_fails=1 fail_timeout=5s;'
                             % (host.address, host.api_port) for host in hosts),
        'port': port, 'log': directory / 'access.log'})
    nginx = Nginx(directory / 'nginx', conf)
    nginx.url = 'http://127.0.0.1:%d' % port
    return nginx


def node_of(url):
    """(address, port) of the node the API at `url` says it uses, and the
    size of the cluster it sees."""
    health = Client(url, timeout=10).get_json('/healthz')['database']
    address, port = health['node'].rsplit(':', 1)
    return address, int(port), health['cluster_size']


def test_a_rolling_deploy_over_two_namespaced_app_hosts_drops_nothing(
        tmp_path, network, cluster, wheelhouse):
    spaces, watchdog = network
    assert USER == 'root'
    keys = Keys(tmp_path / 'keys')
    v1, v2 = (make_dist(tmp_path / 'dist', v) for v in ('v1', 'v2'))
    made = []
    try:
        for n, ns in enumerate(spaces):
            made.append(Host(tmp_path / ns.name, keys, host_url(cluster, ns, n + 1),
                             wheels=wheelhouse, address=ns.address,
                             prefix=ns.command([])))
        first, second = made
        front = front_nginx(tmp_path / 'front', made)
        watchdog.also_stop(front.pid_file)
        front.start()
        made.append(front)

        # v1 on both, with deploy.sh, from this machine over SSH to the
        # hosts' own addresses.
        result = deploy(first.spec, second.spec, tarball=v1, keys=keys)
        assert result.returncode == 0, result.stdout + result.stderr
        v1s = [release_of(host.api) for host in (first, second)]
        assert all(release.startswith('v1-') for release in v1s), v1s
        # Each host's apps on its own node, over its veth, the whole
        # cluster in sight.
        for n, (host, ns) in enumerate(zip((first, second), spaces, strict=True)):
            assert node_of(host.api) == (ns.gateway, cluster.nodes[n].port, 3)

        # v2, host by host, while the simulator keeps sending through the
        # front.
        actions = generate_actions(seed=21, users=40, actions=20000)
        stop, sent = threading.Event(), []
        load = threading.Thread(target=replay_until,
                                args=(front.url, actions, stop, sent))
        load.start()
        try:
            wait_until(lambda: len(sent) >= 40, 'the replay to start', 60)
            result = deploy(first.spec, second.spec, tarball=v2, keys=keys)
            after = len(sent)
            wait_until(lambda: len(sent) >= after + 100, 'requests after the deploy', 60)
        finally:
            stop.set()
            load.join(60)
        assert result.returncode == 0, result.stdout + result.stderr
        assert len(sent) < len(actions), 'the load ended before the deploy did'
        # The rolling rule let each host go because the other served.
        for host, other in ((first, second), (second, first)):
            assert '==> %s: %s is healthy and keeps serving meanwhile' % (
                host.spec, other.spec) in result.stdout
        failed = [(action, status) for action, status, _ in sent
                  if status != EXPECTED[action[1]]]
        assert failed == [], failed[:10]

        v2s = [release_of(host.api) for host in (first, second)]
        assert all(release.startswith('v2-') for release in v2s), v2s
        # Every release name is its host's own (VERSION-TIMESTAMP of its
        # deploy): which host answered each request, and with what.
        assert len(set(v1s + v2s)) == 4
        answered = [server.removeprefix('minitwit/') for _, _, server in sent]
        assert set(answered) == set(v1s + v2s)
        # Host by host: the second served v1 until the first was done with
        # v1 (its nginx's old workers too: server.sh waits for them), and
        # only then switched; once deploy.sh is done, only v2 answers.
        # (During a switch one host answers both: the old workers of its
        # nginx take requests until the new ones have started.)
        first_on_v2, second_on_v2 = answered.index(v2s[0]), answered.index(v2s[1])
        last_v1_on_first = max(i for i, r in enumerate(answered) if r == v1s[0])
        assert first_on_v2 < second_on_v2 and last_v1_on_first < second_on_v2
        assert v1s[1] in answered[first_on_v2:second_on_v2]
        assert set(answered[after:]) == set(v2s)

        # The state, read back through the front (either host, any node):
        # nothing lost or applied twice; the same rows on all three nodes.
        assert exact_state(Client(front.url, timeout=30),
                           [action for action, _, _ in sent]) == []
        counts = cluster.row_counts(DATABASE, TABLES)
        assert len({tuple(sorted(c.items())) for c in counts.values()}) == 1, counts
        assert counts[0]['latest'] >= 1 and counts[0]['user'] >= 1, counts
        for n, (host, ns) in enumerate(zip((first, second), spaces, strict=True)):
            assert node_of(host.api) == (ns.gateway, cluster.nodes[n].port, 3)
    finally:
        for thing in reversed(made):
            thing.close()
    # Closed, the hosts left nothing running in their namespaces.
    for ns in spaces:
        assert not ns.pids(), (ns, sorted(ns.pids()))
