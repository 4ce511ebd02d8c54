"""What a Galera cluster costs MiniTwit: bench.py's replay and loadtest.py's clients on one
MariaDB node and on a three-node cluster (also without causal reads), beside the floor."""
import argparse
import contextlib
import sys
import tempfile
from pathlib import Path

from scripts.bench import bench, loadtest
from scripts.simulator import simulate
from tests.galera import GaleraCluster
from tests.serving import Server, ThrowawayMariaDB, with_option


def cluster_database(cluster, database):
    """The DATABASE_URL, on every node of `cluster`, of a new `database`."""
    cluster.create_database(database)
    hosts = ','.join('127.0.0.1:%d' % node.port for node in cluster.nodes)
    return 'mysql://root@%s/%s' % (hosts, database)


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
        urls = {'one node': single.create_database(),
                'the cluster': cluster_database(cluster, 'bench_replay'),
                'the cluster, causal=false': with_option(
                    cluster_database(cluster, 'bench_eventual'), 'causal', 'false')}
        floor = stack.enter_context(Server('scripts.bench.floor_app:app')).url
        servers = {bench.FLOOR: floor}
        for label, url in urls.items():
            servers['sim_api on ' + label] = stack.enter_context(Server('sim_api:app', url)).url
        print('replaying %d actions against %s...' % (
            len(actions), ', '.join(servers)), file=sys.stderr)
        replays = bench.replay_side_by_side(servers, actions)

        targets = {
            label: loadtest.start_apps(stack, url, args.clients, args.processes)
            for label, url in (('one node', single.create_database()),
                               ('the cluster', cluster_database(cluster, 'bench_load')))}
        targets['floor'] = {'api': floor, 'web': floor}
        print('%d clients on %s, taking turns...' % (
            args.clients, ', '.join(targets)), file=sys.stderr)
        loads = loadtest.run_in_turns(targets, args.clients, args.processes,
                                      args.seconds, 100_000, loadtest.ROUNDS)

    bench.print_table(args.scenario, actions, replays)
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
