"""Replay a simulator scenario against a MiniTwit simulator API.

    python -m scripts.simulator.simulate SCENARIO [--url http://127.0.0.1:5001] [--verify]

SCENARIO is the course's tab-separated format: id, delay, timestamp, command,
user, then email and password for `register`, the text for `tweet`, the
other user for `follow` and `unfollow`. Each action is sent the way the
course's simulator sends it: a JSON body, Basic credentials, `latest=<id>`,
`Connection: close` and a 0.3 s timeout; errors are counted as it counts them
(an unexpected status, a timeout or a refused connection), and so is every
answer slower than 300 ms (`--timeout` moves both limits). It ends with
the errors by kind, latency percentiles and requests per second, and exits
non-zero on any error.

--verify then reads every user's follows and messages back and compares
them, and /latest, with what the scenario implies on a fresh database.
"""
import argparse
import base64
import csv
import http.client
import json
import math
import sys
import time
from collections import Counter, defaultdict
from urllib.parse import quote, urlsplit

from scripts.ops.progress import Progress

EXPECTED = {'register': 204, 'tweet': 204, 'follow': 204, 'unfollow': 204}
DEADLINE = 0.3


def read_scenario(path, limit=None):
    """Yield (id, command, fields) for each action of a scenario file."""
    with open(path, encoding='utf-8', newline='') as f:
        for n, row in enumerate(csv.reader(f, delimiter='\t',
                                           quotechar=None)):
            if limit is not None and n >= limit:
                return
            yield int(row[0]), row[3], row[4:]


def to_request(command, fields):
    """The (method, path, body) the simulator sends for one action."""
    user = quote(fields[0], safe='')
    if command == 'register':
        return 'POST', '/register', {'username': fields[0],
                                     'email': fields[1], 'pwd': fields[2]}
    if command == 'tweet':
        return 'POST', '/msgs/' + user, {'content': fields[1]}
    if command in ('follow', 'unfollow'):
        return 'POST', '/fllws/' + user, {command: fields[1]}
    raise ValueError('unknown command %r' % command)


class Client:
    """One new connection per request, as the course's simulator does."""

    def __init__(self, url, username='simulator', password='super_safe!',
                 timeout=DEADLINE):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.prefix = parts.path.rstrip('/')
        self.timeout = timeout
        token = base64.b64encode(('%s:%s' % (username, password)).encode())
        self.headers = {'Authorization': 'Basic ' + token.decode(),
                        'Content-Type': 'application/json',
                        'Connection': 'close'}

    def send(self, method, path, body=None, timeout=None):
        """(status, body bytes); raises OSError or HTTPException."""
        conn = http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout or self.timeout)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, self.prefix + path, payload, self.headers)
            answer = conn.getresponse()
            return answer.status, answer.read()
        finally:
            conn.close()

    def get_json(self, path):
        status, body = self.send('GET', path, timeout=30)
        if status != 200:
            raise RuntimeError('GET %s answered %d: %r' % (path, status,
                                                           body[:200]))
        return json.loads(body)


def percentile(sorted_values, p):
    """The nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class Replay:
    """Sends actions to one server as the simulator does, and tallies the
    answers the way it counts them. `send` may be called block by block."""

    def __init__(self, client):
        self.client = client
        self.errors, self.latencies, self.seconds = Counter(), [], 0.0

    def send(self, actions, progress=None):
        """Send `actions` in order (showing a Progress, if given)."""
        started = time.perf_counter()
        for action_id, command, fields in actions:
            self.send_one(action_id, command, fields)
            if progress:
                progress.add(1, '%d errors' % sum(self.errors.values()))
        self.seconds += time.perf_counter() - started

    def send_one(self, action_id, command, fields):
        method, path, body = to_request(command, fields)
        path += '%slatest=%d' % ('&' if '?' in path else '?', action_id)
        t0 = time.perf_counter()
        try:
            status, _ = self.client.send(method, path, body)
        except TimeoutError:
            self.errors['ReadTimeout on %s' % command] += 1
            status = None
        except (OSError, http.client.HTTPException):
            self.errors['ConnectionError on %s' % command] += 1
            status = None
        elapsed = time.perf_counter() - t0
        self.latencies.append(elapsed)
        if status is not None:
            if status != EXPECTED[command]:
                self.errors['HTTP %d on %s' % (status, command)] += 1
            elif elapsed > self.client.timeout:
                # The whole exchange, connecting included, as the
                # simulator times it; the socket timeout covers each step.
                self.errors['slower than %g ms on %s' % (
                    self.client.timeout * 1000, command)] += 1

    def summary(self):
        latencies = sorted(self.latencies)
        return {'requests': len(latencies), 'seconds': self.seconds,
                'rps': len(latencies) / self.seconds if self.seconds else 0.0,
                'errors': dict(self.errors),
                'error_count': sum(self.errors.values()),
                'p50_ms': percentile(latencies, 50) * 1000,
                'p90_ms': percentile(latencies, 90) * 1000,
                'p99_ms': percentile(latencies, 99) * 1000,
                'max_ms': (latencies[-1] if latencies else 0) * 1000}


def replay(client, actions, progress=None):
    """Send every action (with a Progress, if given); return a summary."""
    run = Replay(client)
    run.send(actions, progress)
    return run.summary()


def expected_state(actions):
    """What a fresh database holds after the scenario, as the API shows it."""
    users, messages, follows = [], defaultdict(list), defaultdict(dict)
    posted, registered, last_id = [], set(), -1
    for action_id, command, fields in actions:
        last_id = action_id
        user = fields[0]
        if command == 'register':
            if user not in registered:
                registered.add(user)
                users.append(user)
        elif user not in registered:
            continue
        elif command == 'tweet':
            messages[user].append(fields[1])
            posted.append((user, fields[1]))
        elif fields[1] in registered:
            if command == 'follow':
                follows[user].setdefault(fields[1], True)
            else:
                follows[user].pop(fields[1], None)
    return users, messages, follows, posted, last_id


def verify(client, actions, max_no=10000):
    """Compare what the API shows with what the scenario implies.

    Returns a list of differences (empty when the state is exact).
    """
    users, messages, follows, posted, last_id = expected_state(actions)
    problems = []
    latest = client.get_json('/latest')['latest']
    if latest != last_id:
        problems.append('/latest is %r, expected %r' % (latest, last_id))
    for user in users:
        path = quote(user, safe='')
        shown = [m['content'] for m in
                 client.get_json('/msgs/%s?no=%d' % (path, max_no))]
        wanted = list(reversed(messages[user]))[:max_no]
        if shown != wanted:
            problems.append('messages of %r: %d shown, %d expected%s' % (
                user, len(shown), len(wanted),
                '' if len(shown) != len(wanted) else ' (they differ)'))
        shown = client.get_json('/fllws/%s?no=%d' % (path, max_no))['follows']
        wanted = list(follows[user])  # in the order they were followed
        if shown != wanted:
            problems.append('follows of %r: %d shown, %d expected' % (
                user, len(shown), len(wanted)))
    newest = min(max_no, 1000)
    shown = [(m['user'], m['content']) for m in
             client.get_json('/msgs?no=%d' % newest)]
    if shown != posted[::-1][:newest]:
        problems.append('/msgs does not show the newest %d messages, newest '
                        'first' % newest)
    return problems


def report(summary, out=sys.stdout):
    print('%d requests in %.1f s: %.0f requests/s' % (
        summary['requests'], summary['seconds'], summary['rps']), file=out)
    print('latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f' % (
        summary['p50_ms'], summary['p90_ms'], summary['p99_ms'],
        summary['max_ms']), file=out)
    print('errors: %d' % summary['error_count'], file=out)
    for kind, count in sorted(summary['errors'].items()):
        print('  %6d  %s' % (count, kind), file=out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('scenario', help='tab-separated scenario file')
    parser.add_argument('--url', default='http://127.0.0.1:5001')
    parser.add_argument('--verify', action='store_true',
                        help='read the final state back and compare it')
    parser.add_argument('--verify-only', action='store_true',
                        help='compare without replaying (after a replay)')
    parser.add_argument('--limit', type=int,
                        help='replay only the first N actions')
    parser.add_argument('--timeout', type=float, default=DEADLINE,
                        help='seconds per request; a slower answer is an '
                        'error, as the simulator counts it (default 0.3)')
    parser.add_argument('--json', action='store_true',
                        help='print the summary as JSON')
    parser.add_argument('--progress', choices=('auto', 'on', 'off'),
                        default='auto')
    args = parser.parse_args(argv)

    actions = list(read_scenario(args.scenario, args.limit))
    client = Client(args.url, timeout=args.timeout)
    show = {'on': True, 'off': False, 'auto': None}[args.progress]
    to_send = [] if args.verify_only else actions
    summary = replay(client, to_send, Progress('actions', len(to_send), show))
    if args.verify or args.verify_only:
        summary['verify'] = verify(client, actions)
    if args.json:
        print(json.dumps(summary))
    else:
        report(summary)
        if 'verify' in summary:
            print('verify: %s' % ('state exact' if not summary['verify']
                                  else '%d differences' %
                                  len(summary['verify'])))
            for problem in summary['verify'][:20]:
                print('  ' + problem)
    failed = summary['error_count'] or summary.get('verify')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
