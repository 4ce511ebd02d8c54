"""Replay a scenario against the simulator API and against the floor.

The apps take turns, 500 actions each, so that a busy moment of the machine falls on all.
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
from tests.serving import ROOT, Server, ThrowawayMariaDB, fresh_mariadb, with_option

FLOOR = 'floor (no-op app)'
BLOCK = 500  # actions sent to one server before the next takes its turn
DEFAULT_MARIADB = 'mysql://root@127.0.0.1:3306'
# A server of the benchmark's own gets this machine's server's sizes, not
# the small ones that make a test's server start fast.
OWN_MARIADB = ['--innodb-log-file-size=96M', '--innodb-buffer-pool-size=128M']


def replay_side_by_side(servers, actions):
    """{label: summary} of `actions` replayed block by block in turn on every
    server (label -> url); all but the floors' with `verify`, the differences."""
    replays = {label: simulate.Replay(simulate.Client(url)) for label, url in servers.items()}
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


def failed(summaries):
    """Whether any replay had an error or a verified one a difference."""
    return any(s['error_count'] or s.get('verify') for s in summaries)


def print_table(scenario, actions, summaries):
    """The summaries (label -> summary, FLOOR first), each app beside the floor."""
    print('%s: %d actions, sequential, one connection per request' % (scenario, len(actions)))
    floor = summaries[FLOOR]
    width = max(44, *map(len, summaries))
    print('%-*s %9s %8s %8s %8s %8s %8s %7s  %s' % (
        width, '', 'req/s', 'share', 'p50 ms', 'p90 ms', 'p99 ms', 'max ms', 'errors',
        'final state'))
    for label, summary in summaries.items():
        share = '(floor)' if summary is floor else '%.2fx' % (summary['rps'] / floor['rps'])
        verified = summary.get('verify')
        state = '-' if verified is None else \
            'exact' if not verified else '%d differences' % len(verified)
        print('%-*s %9.0f %8s %8.2f %8.2f %8.2f %8.1f %7d  %s' % (
            width, label, summary['rps'], share, summary['p50_ms'], summary['p90_ms'],
            summary['p99_ms'], summary['max_ms'], summary['error_count'], state))


def transport(url):
    """How `url` reaches its server."""
    return 'socket' if 'unix_socket=' in url else 'TCP'


def own_mariadb(settings, folder, scratch):
    """('with SETTINGS', URL) of a new mariadbd with these settings ('name=value,...'),
    through its socket; stopped when `scratch` ends."""
    root = Path(tempfile.mkdtemp(prefix='mariadb-', dir=folder))
    server = ThrowawayMariaDB(root, options=OWN_MARIADB + [
        '--' + setting.strip() for setting in settings.split(',')])
    scratch.callback(server.stop)
    return 'with ' + settings, 'mysql://root@localhost?unix_socket=%s' % server.socket


def app_urls(backends, drivers, servers, folder, scratch, suffix='', name='mariadb'):
    """{label: DATABASE_URL} of a fresh database per app: on each MariaDB of `servers`
    (label -> URL; its apps' labels start with `name`), one per driver of `drivers`
    (None: the default)."""
    urls = {}
    for backend in backends:
        if backend == 'sqlite':
            urls['sqlite'] = 'sqlite:///%s/bench%s.db' % (folder, suffix)
            continue
        if backend != 'mariadb':
            sys.exit('unknown backend %r' % backend)
        for server_label, server in servers.items():
            for driver in drivers or [None]:
                url = scratch.enter_context(
                    fresh_mariadb(server, 'minitwit_bench%s_%d' % (suffix, len(urls))))
                label = name + (' ' + server_label if len(servers) > 1 else '')
                if driver:
                    label += ', ' + driver
                    url = with_option(url, 'driver', driver)
                urls[label] = url
    return urls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenario', required=True)
    parser.add_argument('--mariadb', action='append',
                        help='MariaDB server for the mariadb runs (default %s); again for one more '
                        'app, on another server or transport (?unix_socket=)' % DEFAULT_MARIADB)
    parser.add_argument('--own-mariadb', action='append', metavar='SETTINGS',
                        help='also a MariaDB server of its own with these settings: name=value,...')
    parser.add_argument('--db-floor', action='store_true',
                        help='also floor_db_app.py on each MariaDB')
    parser.add_argument('--before', metavar='CHECKOUT', help="also another checkout's sim_api")
    parser.add_argument('--before-mariadb', metavar='URL',
                        help='its MariaDB server (default: the first TCP one of --mariadb: '
                        'an older checkout may not know unix_socket=)')
    parser.add_argument('--backends', default='sqlite,mariadb')
    parser.add_argument('--drivers', help='on MariaDB, one app per driver (default: driver=auto)')
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
        for url in args.mariadb or ([] if args.own_mariadb else [DEFAULT_MARIADB]):
            label = 'via ' + transport(url)
            mariadbs[label if label not in mariadbs else url] = url
        mariadbs.update(own_mariadb(settings, folder, scratch)
                        for settings in args.own_mariadb or [])
        before_mariadb = args.before_mariadb or next(
            (m for m in mariadbs.values() if transport(m) == 'TCP'), DEFAULT_MARIADB)
        try:
            urls = app_urls(backends, drivers, mariadbs, folder, scratch)
            floors = {} if not args.db_floor else app_urls(
                ['mariadb'], None, mariadbs, folder, scratch, '_floor', 'MariaDB')
            before = {} if not args.before else app_urls(
                backends, None, {'': before_mariadb}, folder, scratch, suffix='_before')
        except pymysql.err.OperationalError as error:
            sys.exit('MariaDB: %s' % error)

        def serve(app, url=None, root=ROOT):
            return scratch.enter_context(Server(app, url, root=root)).url

        servers = {FLOOR: serve('scripts.bench.floor_app:app')}
        for label, url in floors.items():
            servers['floor with ' + label] = serve('scripts.bench.floor_db_app:app', url)
        for label, url in urls.items():
            servers['sim_api on ' + label] = serve('sim_api:app', url)
        if args.before:
            root = os.path.abspath(args.before)
            for label, url in before.items():
                servers['sim_api on %s (before: %s)' % (label, os.path.basename(root))] = \
                    serve('sim_api:app', url, root)
        print('replaying %d actions against %s, %d at a time each...' % (
            len(actions), ', '.join(servers), BLOCK), file=sys.stderr)
        summaries = replay_side_by_side(servers, actions)
    print_table(args.scenario, actions, summaries)
    return 1 if failed(summaries.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
