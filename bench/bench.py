"""Replay a scenario against the simulator API and against the floor.

    python -m bench.bench --scenario ../shared/data/minitwit_scenario.csv \
        [--mariadb mysql://root@127.0.0.1:3306] [--backends sqlite,mariadb]

For each backend it starts, on the same waitress with the same flags, the
no-op app (bench/floor_app.py: what the HTTP stack alone costs) and
`sim_api:app` on a fresh database, replays the whole scenario through each,
sequentially, as the course's simulator does, 500 actions to one and then
the same 500 to the other (so that a busy moment of the machine falls on
both alike), and verifies the app's final state. It prints requests/s, the
app's share of the floor's, latency percentiles and errors. Nothing here is
asserted: the figures go in docs/benchmarks.md.
"""
import argparse
import contextlib
import os
import sys
import tempfile

import pymysql

from bench.serving import Server, fresh_mariadb
from ops.progress import Progress
from simulator import simulate

MARIADB_DATABASE = 'minitwit_bench'
BLOCK = 500  # actions sent to one server before the other takes its turn


def run(database_url, actions, label):
    """Replay `actions` against the floor and the app, block by block in
    turn, so that both meet the same moments of a shared machine; return
    the two summaries, the app's with its verified final state."""
    print('%s: replaying %d actions against the floor and the app...'
          % (label, len(actions)), file=sys.stderr)
    with Server('bench.floor_app:app') as floor_server, \
            Server('sim_api:app', database_url) as app_server:
        floor = simulate.Replay(simulate.Client(floor_server.url))
        app = simulate.Replay(simulate.Client(app_server.url))
        progress = Progress('actions', len(actions))
        for start in range(0, len(actions), BLOCK):
            block = actions[start:start + BLOCK]
            floor.send(block)
            app.send(block, progress)
        summary = app.summary()
        summary['verify'] = simulate.verify(app.client, actions)
    return floor.summary(), summary


def row(label, summary, floor):
    share = '%.0f%%' % (100 * summary['rps'] / floor['rps']) \
        if summary is not floor else '(floor)'
    verified = summary.get('verify')
    return '%-22s %9.0f %8s %8.2f %8.2f %8.2f %8.1f %7d  %s' % (
        label, summary['rps'], share, summary['p50_ms'], summary['p90_ms'],
        summary['p99_ms'], summary['max_ms'], summary['error_count'],
        '-' if verified is None else
        'exact' if not verified else '%d differences' % len(verified))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenario', required=True)
    parser.add_argument('--mariadb', default='mysql://root@127.0.0.1:3306',
                        help='MariaDB server for the mariadb run')
    parser.add_argument('--backends', default='sqlite,mariadb')
    parser.add_argument('--limit', type=int, help='first N actions only')
    args = parser.parse_args(argv)

    if not os.path.exists(args.scenario):
        sys.exit('no scenario at %s: pass --scenario (make bench SCENARIO=...); '
                 'the course\'s is minitwit_scenario.csv' % args.scenario)
    actions = list(simulate.read_scenario(args.scenario, args.limit))
    lines = ['%-22s %9s %8s %8s %8s %8s %8s %7s  %s' % (
        '', 'req/s', 'share', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms',
        'errors', 'final state')]
    failed = False
    with tempfile.TemporaryDirectory(prefix='minitwit-bench-') as tmp:
        for backend in args.backends.split(','):
            with contextlib.ExitStack() as scratch:
                if backend == 'sqlite':
                    url = 'sqlite:///%s/bench.db' % tmp
                elif backend == 'mariadb':
                    try:
                        url = scratch.enter_context(
                            fresh_mariadb(args.mariadb, MARIADB_DATABASE))
                    except pymysql.err.OperationalError as error:
                        lines.append('%-22s not run: %s' % (backend, error))
                        failed = True
                        continue
                else:
                    sys.exit('unknown backend %r' % backend)
                floor, app = run(url, actions, backend)
            lines.append(row('floor (no-op app)', floor, floor))
            lines.append(row('sim_api on ' + backend, app, floor))
            failed |= bool(app['error_count'] or app['verify'])
    print('%s: %d actions, sequential, one connection per request'
          % (args.scenario, len(actions)))
    print('\n'.join(lines))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
