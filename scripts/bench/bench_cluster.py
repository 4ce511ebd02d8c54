"""What a Galera cluster costs MiniTwit: the course's scenario on one
MariaDB node and on a three-node cluster, side by side.

    python -m scripts.bench.bench_cluster --scenario data/minitwit_scenario.csv \\
        [--limit N] [--clients 32] [--seconds 20]

Both get bench.py's replay (the cluster also without causal reads: what wsrep_sync_wait
costs), then loadtest.py's clients, beside the floor.
"""
import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from scripts.bench import bench, loadtest
from scripts.simulator import simulate
from tests.galera import GaleraCluster
from tests.serving import Server, ThrowawayMariaDB


def cluster_url(cluster, database, **options):
    hosts = ','.join('127.0.0.1:%d' % node.port for node in cluster.nodes)
    query = '&'.join('%s=%s' % item for item in options.items())
    return 'mysql://root@%s/%s%s' % (hosts, database, '?' + query if query else '')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenario', required=True)
    parser.add_argument('--limit', type=int, help='first N actions only')
    parser.add_argument('--clients', type=int, default=32)
    parser.add_argument('--processes', type=int, default=4)
    parser.add_argument('--seconds', type=float, default=20)
    args = parser.parse_args(argv)
    actions = list(simulate.read_scenario(args.scenario, args.limit))

    with tempfile.TemporaryDirectory(prefix='minitwit-bench-cluster-') as folder, \
            contextlib.ExitStack() as stack:
        print('starting one MariaDB node and a three-node cluster...', file=sys.stderr)
        single = ThrowawayMariaDB(Path(folder))
        stack.callback(single.stop)
        cluster = stack.enter_context(GaleraCluster())
        for name in ('bench_replay', 'bench_load'):
            with single.connect() as conn, conn.cursor() as cur:
                cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
        for name in ('bench_replay', 'bench_eventual', 'bench_load'):
            cluster.create_database(name)
        one = 'mysql://root@127.0.0.1:%d/%%s' % single.port
        urls = {'one node': one % 'bench_replay',
                'the cluster': cluster_url(cluster, 'bench_replay'),
                'the cluster, causal=false': cluster_url(cluster, 'bench_eventual',
                                                         causal='false')}
        floor = stack.enter_context(Server('scripts.bench.floor_app:app')).url
        servers = {'floor': floor}
        for label, url in urls.items():
            servers[label] = stack.enter_context(Server('sim_api:app', url)).url
        print('replaying %d actions against %s...' % (
            len(actions), ', '.join(servers)), file=sys.stderr)
        replays = bench.replay_side_by_side(servers, actions)

        targets = {
            label: loadtest.start_apps(stack, url, args.clients, args.processes)
            for label, url in (('one node', one % 'bench_load'),
                               ('the cluster', cluster_url(cluster, 'bench_load')))}
        targets['floor'] = {'api': floor, 'web': floor}
        print('%d clients on %s, taking turns...' % (
            args.clients, ', '.join(targets)), file=sys.stderr)
        loads = loadtest.run_in_turns(targets, args.clients, args.processes,
                                      args.seconds, 100_000, loadtest.ROUNDS)

    bench.print_table('%s: %d actions, sequential, one connection per request' % (
        args.scenario, len(actions)), replays)
    print('\n%d clients for %g s, both apps (scripts/bench/loadtest.py\'s mix):' % (
        args.clients, args.seconds))
    loadtest.report('floor (no-op app)', loads['floor'])
    for label in ('one node', 'the cluster'):
        loadtest.report('MiniTwit on ' + label, loads[label], loads['floor'])
    failed = bench.failed(s for label, s in replays.items() if 'causal' not in label) or \
        any(load['errors'] for load in loads.values())
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
