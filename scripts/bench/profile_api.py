"""Where a simulator request's time goes on MariaDB: per kind of action,
the statements and round trips it takes, and its milliseconds in the app,
in the driver (and on the wire) and in the server.
"""
import argparse
import os
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

from scripts.ops.progress import Progress
from scripts.simulator import simulate
from tests.serving import Server, ThrowawayMariaDB, with_option

STATEMENT = re.compile(r'^\W*(BEGIN|COMMIT|ROLLBACK|PING|SELECT|INSERT|UPDATE|'
                       r'DELETE|SET|SHOW)\b', re.I)
TABLE = re.compile(r'\b(?:INTO|UPDATE|FROM)\s+`?(\w+)', re.I)


def kind(sql):
    """A statement as the table groups it: 'INSERT message', 'COMMIT'."""
    verb = STATEMENT.match(sql)
    verb = verb.group(1).upper() if verb else sql.split(None, 1)[0].upper()
    table = TABLE.search(sql)
    return verb if verb in ('BEGIN', 'COMMIT', 'ROLLBACK', 'PING') or not table \
        else '%s %s' % (verb, table.group(1).lower())


def slow_log(path):
    """(statement kind, seconds in the server) of every statement logged, in order
    (each statement of a multi-statement packet on its own)."""
    logged, seconds, sql = [], None, []
    for line in Path(path).read_text(encoding='utf-8', errors='replace') \
            .splitlines() + ['# end']:
        if line.startswith('#'):
            if seconds is not None and sql:
                logged.append((kind(' '.join(sql)), seconds))
                seconds, sql = None, []
            match = re.match(r'# Query_time: ([0-9.]+)', line)
            if match:
                seconds = float(match.group(1))
        elif seconds is not None and not line.startswith(('SET timestamp=', 'use ')):
            sql.append(line)
    return logged


def profile(records, actions, logged):
    """Per simulator command, the sums the table averages (the replay is sequential: the
    log holds the requests' statements in the order they were sent)."""
    rows = defaultdict(lambda: defaultdict(float))
    position = 0
    for (_, command, _), record in zip(actions, records, strict=True):
        row = rows[command]
        # A round trip's statements, as database/mysql.py joins them in a packet.
        sent = [kind(s) for trip in record['sent'] for s in re.split(r';\n', trip) if s.strip()]
        server = 0.0
        for statement in sent:
            if statement == 'PING':
                continue  # a ping is not logged
            while logged[position][0] != statement:
                position += 1  # a statement not of a request (the schema's)
            server += logged[position][1]
            position += 1
        row['requests'] += 1
        row['statements'] += sum(s != 'PING' for s in sent)
        row['round trips'] += len(record['sent'])
        row['server'] += server
        row['driver'] += max(0.0, record['driver'] - server)
        row['app'] += record['app'] - record['driver']
        row['total'] += record['app']
    return rows


def report(rows):
    print('%-9s %8s %11s %12s %9s %10s %10s %9s' % (
        'action', 'requests', 'statements', 'round trips', 'app ms',
        'driver ms', 'server ms', 'total ms'))
    for command in ('register', 'tweet', 'follow', 'unfollow'):
        row = rows.get(command)
        if not row:
            continue
        n = row['requests']
        print('%-9s %8d %11.2f %12.2f %9.3f %10.3f %10.3f %9.3f' % (
            command, n, row['statements'] / n, row['round trips'] / n,
            1000 * row['app'] / n, 1000 * row['driver'] / n,
            1000 * row['server'] / n, 1000 * row['total'] / n))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--scenario', required=True)
    parser.add_argument('--limit', type=int, help='first N actions only')
    parser.add_argument('--driver', default='auto', help='the MySQL driver (database/mysql.py)')
    parser.add_argument('--app-root', help="another checkout's sim_api")
    parser.add_argument('--tcp', action='store_true', help='over TCP, not the Unix socket')
    args = parser.parse_args(argv)
    actions = list(simulate.read_scenario(args.scenario, args.limit))
    with tempfile.TemporaryDirectory(prefix='minitwit-profile-') as folder:
        log = Path(folder) / 'statements.log'
        mariadb = ThrowawayMariaDB(Path(folder), options=[
            '--slow-query-log', '--long-query-time=0',
            '--slow-query-log-file=%s' % log, '--innodb-buffer-pool-size=256M'])
        try:
            url = mariadb.create_database()
            if not args.tcp:
                url = with_option(url.replace('127.0.0.1:%d' % mariadb.port, 'localhost'),
                                  'unix_socket', mariadb.socket)
            env = {'STOPWATCH_APP': 'sim_api:app'}
            if args.app_root:
                env['STOPWATCH_ROOT'] = os.path.abspath(args.app_root)
            else:
                url = with_option(url, 'driver', args.driver)
            with Server('scripts.bench.stopwatch:app', url, env=env) as server:
                client = simulate.Client(server.url)
                client.get_json('/__profile')  # the health checks' records
                summary = simulate.replay(client, actions, Progress('actions', len(actions)))
                records = client.get_json('/__profile')
        finally:
            mariadb.stop()
        logged = slow_log(log)
    print('%s: %d actions on MariaDB, %s; %d errors, %.0f requests/s' % (
        args.scenario, len(actions),
        'sim_api of ' + args.app_root if args.app_root else 'driver=' + args.driver,
        summary['error_count'], summary['rps']))
    report(profile(records, actions, logged))
    # And each kind of statement's mean, where there are enough of it.
    times = defaultdict(list)
    for statement, seconds in logged:
        times[statement].append(seconds)
    print('server ms per statement (mean): ' + ', '.join(
        '%s %.3f' % (statement, 1000 * sum(v) / len(v))
        for statement, v in sorted(times.items()) if len(v) > 50))
    return 1 if summary['error_count'] else 0


if __name__ == '__main__':
    sys.exit(main())
