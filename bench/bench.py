"""Replay a scenario against the simulator API and against the floor.

    python -m bench.bench --scenario ../shared/data/minitwit_scenario.csv \\
        [--mariadb mysql://root@127.0.0.1:3306] [--backends sqlite,mariadb] \\
        [--drivers pymysql,mysqlclient]

It starts, on the same waitress with the same flags, the no-op app
(bench/floor_app.py: what the HTTP stack alone costs) and one `sim_api:app`
per backend on a fresh database of its own (on MariaDB one per driver with
--drivers), and replays the whole scenario through each, sequentially, as
the course's simulator does: 500 actions to one server, then the same 500
to the next, so that a busy moment of the machine falls on all of them
alike. Every app's final state is then verified. It prints requests/s,
each app's share of the floor's, latency percentiles and errors. Nothing
here is asserted: the figures go in docs/benchmarks.md.
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

BLOCK = 500  # actions sent to one server before the next takes its turn


def replay_side_by_side(servers, actions):
    """Replay `actions` against every server (label -> url), block by
    block in turn; {label: summary}, each with its verified final state
    (`verify`, a list of differences) except the floor's."""
    replays = {label: simulate.Replay(simulate.Client(url))
               for label, url in servers.items()}
    progress = Progress('actions', len(actions))
    for start in range(0, len(actions), BLOCK):
        block = actions[start:start + BLOCK]
        for replay in replays.values():
            replay.send(block)
        progress.add(len(block))
    summaries = {label: replay.summary() for label, replay in replays.items()}
    for label, replay in replays.items():
        if label != 'floor':
            summaries[label]['verify'] = simulate.verify(replay.client, actions)
    return summaries


def print_table(title, summaries):
    """The replay's summaries (label -> summary, the floor's first) as a
    table, each app beside the floor."""
    print(title)
    print('%-36s %9s %8s %8s %8s %8s %8s %7s  %s' % (
        '', 'req/s', 'share', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms',
        'errors', 'final state'))
    for label, summary in summaries.items():
        print(row('floor (no-op app)' if label == 'floor' else
                  'sim_api on ' + label, summary, summaries['floor']))


def row(label, summary, floor):
    share = '%.2fx' % (summary['rps'] / floor['rps']) \
        if summary is not floor else '(floor)'
    verified = summary.get('verify')
    return '%-36s %9.0f %8s %8.2f %8.2f %8.2f %8.1f %7d  %s' % (
        label, summary['rps'], share, summary['p50_ms'], summary['p90_ms'],
        summary['p99_ms'], summary['max_ms'], summary['error_count'],
        '-' if verified is None else
        'exact' if not verified else '%d differences' % len(verified))


def app_urls(backends, drivers, mariadb, folder, scratch):
    """{label: DATABASE_URL} of a fresh database per app."""
    urls = {}
    for backend in backends:
        if backend == 'sqlite':
            urls['sqlite'] = 'sqlite:///%s/bench.db' % folder
        elif backend == 'mariadb':
            for driver in drivers or ['auto']:
                name = 'minitwit_bench' + ('_' + driver.replace('-', '_')
                                           if drivers else '')
                url = scratch.enter_context(fresh_mariadb(mariadb, name))
                label = 'mariadb' if not drivers else 'mariadb, ' + driver
                urls[label] = url if not drivers else url + '?driver=' + driver
        else:
            sys.exit('unknown backend %r' % backend)
    return urls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenario', required=True)
    parser.add_argument('--mariadb', default='mysql://root@127.0.0.1:3306',
                        help='MariaDB server for the mariadb runs')
    parser.add_argument('--backends', default='sqlite,mariadb')
    parser.add_argument('--drivers', help='on MariaDB, one app per driver '
                        '(database/mysql.py knows pymysql, mysqlclient, '
                        'mariadb, mysql-connector); default: the one '
                        'driver=auto picks')
    parser.add_argument('--limit', type=int, help='first N actions only')
    args = parser.parse_args(argv)

    if not os.path.exists(args.scenario):
        sys.exit('no scenario at %s: pass --scenario (make bench SCENARIO=...); '
                 'the course\'s is minitwit_scenario.csv' % args.scenario)
    actions = list(simulate.read_scenario(args.scenario, args.limit))
    drivers = args.drivers.split(',') if args.drivers else None
    with tempfile.TemporaryDirectory(prefix='minitwit-bench-') as folder, \
            contextlib.ExitStack() as scratch:
        try:
            urls = app_urls(args.backends.split(','), drivers, args.mariadb,
                            folder, scratch)
        except pymysql.err.OperationalError as error:
            sys.exit('MariaDB at %s: %s' % (args.mariadb, error))
        servers = {'floor': scratch.enter_context(
            Server('bench.floor_app:app')).url}
        for label, url in urls.items():
            servers[label] = scratch.enter_context(Server('sim_api:app', url)).url
        print('replaying %d actions against %s, %d at a time each...' % (
            len(actions), ', '.join(servers), BLOCK), file=sys.stderr)
        summaries = replay_side_by_side(servers, actions)
    print_table('%s: %d actions, sequential, one connection per request' % (
        args.scenario, len(actions)), summaries)
    failed = any(s['error_count'] or s.get('verify')
                 for s in summaries.values())
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
