"""Replay a scenario against the simulator API and against the floor.

    python -m scripts.bench.bench --scenario data/minitwit_scenario.csv \\
        [--mariadb mysql://root@127.0.0.1:3306 [--mariadb ...]] \\
        [--own-mariadb innodb_flush_log_at_trx_commit=2 [--own-mariadb ...]] \\
        [--backends sqlite,mariadb] [--drivers pymysql,mysqlclient] \\
        [--db-floor] [--before OLD_CHECKOUT [--before-mariadb URL]]

It starts, on the same waitress with the same flags, the no-op app
(scripts/bench/floor_app.py: what the HTTP stack alone costs) and one `sim_api:app`
per backend on a fresh database of its own (on MariaDB one per server or
transport given, and per driver with --drivers; with --before, another
checkout's too; with --db-floor, scripts/bench/floor_db_app.py on each MariaDB,
the least a write can cost there; --own-mariadb starts a server of the
benchmark's own with other settings, to measure what they change), and
replays the whole scenario through
each, sequentially, as the course's simulator does: 500 actions to one
server, then the same 500 to the next, so that a busy moment of the
machine falls on all of them alike. Every app's final state is then
verified. It prints requests/s,
each app's share of the floor's, latency percentiles and errors. Nothing
here is asserted: the figures go in docs/benchmarks.md.
"""
import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import pymysql

from scripts.ops.progress import Progress
from scripts.simulator import simulate
from tests.serving import Server, ThrowawayMariaDB, fresh_mariadb, with_option

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
        if not label.startswith('floor'):  # the floors keep nothing to check
            summaries[label]['verify'] = simulate.verify(replay.client, actions)
    return summaries


def print_table(title, summaries):
    """The replay's summaries (label -> summary, the floor's first) as a
    table, each app beside the floor."""
    print(title)
    labels = {label: 'floor (no-op app)' if label == 'floor' else label
              if label.startswith('floor') else 'sim_api on ' + label
              for label in summaries}
    width = max(44, *map(len, labels.values()))
    print('%-*s %9s %8s %8s %8s %8s %8s %7s  %s' % (
        width, '', 'req/s', 'share', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms',
        'errors', 'final state'))
    for label, summary in summaries.items():
        print(row(labels[label], summary, summaries['floor'], width))


def row(label, summary, floor, width=44):
    share = '%.2fx' % (summary['rps'] / floor['rps']) \
        if summary is not floor else '(floor)'
    verified = summary.get('verify')
    return '%-*s %9.0f %8s %8.2f %8.2f %8.2f %8.1f %7d  %s' % (
        width, label, summary['rps'], share, summary['p50_ms'],
        summary['p90_ms'],
        summary['p99_ms'], summary['max_ms'], summary['error_count'],
        '-' if verified is None else
        'exact' if not verified else '%d differences' % len(verified))


def transport(url):
    return 'socket' if 'unix_socket=' in url else 'TCP'


# What a server of the benchmark's own (--own-mariadb) has besides the
# settings asked for: the sizes of this machine's server, not the small
# ones that make a test's server start fast.
OWN_MARIADB = ['--innodb-log-file-size=96M', '--innodb-buffer-pool-size=128M']


def own_mariadb(settings, folder, scratch):
    """('with SETTINGS', URL) of a new mariadbd with these settings
    ('name=value,...'), through its socket; stopped when `scratch` ends."""
    root = Path(tempfile.mkdtemp(prefix='mariadb-', dir=folder))
    server = ThrowawayMariaDB(root, options=OWN_MARIADB + [
        '--' + setting.strip() for setting in settings.split(',')])
    scratch.callback(server.stop)
    return 'with ' + settings, 'mysql://root@localhost?unix_socket=%s' % \
        server.socket


def app_urls(backends, drivers, servers, folder, scratch, suffix=''):
    """{label: DATABASE_URL} of a fresh database per app: on each MariaDB
    of `servers` (label -> URL), one per driver of `drivers` (None: the
    default)."""
    urls = {}
    for backend in backends:
        if backend == 'sqlite':
            urls['sqlite'] = 'sqlite:///%s/bench%s.db' % (folder, suffix)
        elif backend == 'mariadb':
            for number, (server_label, server) in enumerate(servers.items()):
                for driver in drivers or ['auto']:
                    name = 'minitwit_bench%s%s%s' % (
                        suffix, '_%d' % number if number else '',
                        '_' + driver.replace('-', '_') if drivers else '')
                    url = scratch.enter_context(fresh_mariadb(server, name))
                    label = 'mariadb' + (
                        ' ' + server_label if len(servers) > 1
                        else '') + (', ' + driver if drivers else '')
                    urls[label] = with_option(url, 'driver', driver) \
                        if drivers else url
        else:
            sys.exit('unknown backend %r' % backend)
    return urls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenario', required=True)
    parser.add_argument('--mariadb', action='append',
                        help='MariaDB server for the mariadb runs (default '
                        'mysql://root@127.0.0.1:3306); again for one more '
                        'app, on another server or through another '
                        'transport (?unix_socket=)')
    parser.add_argument('--own-mariadb', action='append', metavar='SETTINGS',
                        help='also a MariaDB server of its own with these '
                        'settings (name=value,...: innodb_flush_log_at_trx_'
                        'commit=2, say), through its socket; again for one '
                        'more')
    parser.add_argument('--db-floor', action='store_true',
                        help='also replay scripts/bench/floor_db_app.py on each '
                        "MariaDB: the HTTP stack's floor and the database's")
    parser.add_argument('--before', metavar='CHECKOUT',
                        help="also replay another checkout's sim_api (the "
                        'release before, say) in the same turns, on each '
                        'backend')
    parser.add_argument('--before-mariadb', metavar='URL',
                        help='its MariaDB server (default: the first TCP '
                        'one of --mariadb: an older checkout may not know '
                        'unix_socket=)')
    parser.add_argument('--backends', default='sqlite,mariadb')
    parser.add_argument('--drivers', help='on MariaDB, one app per driver '
                        '(pymysql, mysqlclient); default: the one '
                        'driver=auto picks')
    parser.add_argument('--limit', type=int, help='first N actions only')
    args = parser.parse_args(argv)

    if not os.path.exists(args.scenario):
        sys.exit('no scenario at %s: pass --scenario (make bench SCENARIO=...); '
                 '`make scenario` puts the course\'s in data/' % args.scenario)
    actions = list(simulate.read_scenario(args.scenario, args.limit))
    drivers = args.drivers.split(',') if args.drivers else None
    backends = args.backends.split(',')
    with tempfile.TemporaryDirectory(prefix='minitwit-bench-') as folder, \
            contextlib.ExitStack() as scratch:
        mariadbs = {}  # label -> server URL
        for url in args.mariadb or ([] if args.own_mariadb else
                                    ['mysql://root@127.0.0.1:3306']):
            label = 'via ' + transport(url)
            mariadbs[label if label not in mariadbs else url] = url
        mariadbs.update(own_mariadb(settings, folder, scratch)
                        for settings in args.own_mariadb or [])
        try:
            urls = app_urls(backends, drivers, mariadbs, folder, scratch)
            floors = {} if not args.db_floor else app_urls(
                ['mariadb'], None, mariadbs, folder, scratch, suffix='_floor')
            before = {} if not args.before else app_urls(
                backends, None, {'': args.before_mariadb or next(
                    (m for m in mariadbs.values() if transport(m) == 'TCP'),
                    'mysql://root@127.0.0.1:3306')}, folder, scratch,
                suffix='_before')
        except pymysql.err.OperationalError as error:
            sys.exit('MariaDB: %s' % error)
        servers = {'floor': scratch.enter_context(
            Server('scripts.bench.floor_app:app')).url}
        for label, url in floors.items():
            servers['floor with ' + label.replace('mariadb', 'MariaDB')] = \
                scratch.enter_context(Server('scripts.bench.floor_db_app:app', url)).url
        for label, url in urls.items():
            servers[label] = scratch.enter_context(Server('sim_api:app', url)).url
        for label, url in before.items():
            servers['%s (before: %s)' % (label, os.path.basename(
                os.path.abspath(args.before)))] = scratch.enter_context(
                    Server('sim_api:app', url, root=os.path.abspath(
                        args.before))).url
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
