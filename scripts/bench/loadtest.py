"""Load MiniTwit with concurrent clients, beside the floor, and compare.

The clients send the simulator's writes and timeline reads to both apps and to the floor,
taking turns: one after the other, a spell of the machine moved the share by a fifth.
"""
import argparse
import contextlib
import http.client
import multiprocessing
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from urllib.parse import quote, urlparse

from scripts.simulator.simulate import DEADLINE, Client, percentile, to_request
from tests.serving import ROOT, Server, fresh_mariadb, in_threads, with_option

# (kind, weight): two requests in three are the simulator's writes, in the course's
# scenario's proportions; the third is a page of a timeline, from either app.
MIX = [('tweet', 29), ('follow', 25), ('unfollow', 12), ('register', 1),
       ('api /msgs', 11), ('web /public', 11), ('web /<user>', 11)]
EXPECTED = {kind: 200 if kind.startswith(('api ', 'web ')) else 204 for kind, _ in MIX}
PAGE = 30  # messages, as many as a page of the web UI shows
TIMEOUT = 5  # seconds: a slower answer counts as an error
ROUNDS = 4  # turns MiniTwit and the floor take (run_in_turns)
DATABASE = 'minitwit_loadtest'


def name(worker, thread):
    """The user a client acts as; every client knows everybody's names."""
    return 'load %d-%d' % (worker, thread)


class LoadClient:
    """One client: its own user, kept-alive connections for reads."""

    def __init__(self, urls, worker, thread, names, turn):
        self.api = Client(urls['api'], timeout=TIMEOUT)
        # Connected at their first request, and again at the next after a failure.
        self.readers = {app: http.client.HTTPConnection(urlparse(url).netloc, timeout=TIMEOUT)
                        for app, url in urls.items()}
        self.read_headers = {'Authorization': self.api.headers['Authorization']}
        self.me, self.names = name(worker, thread), names
        self.rng = random.Random((worker * 1000 + thread) * 100 + turn)
        self.prefix = '%s+%d.' % (self.me, turn)  # new names to sign up in every turn
        self.registered = 0

    def read(self, app, path):
        """GET on a kept-alive connection; its status."""
        conn = self.readers[app]
        try:
            conn.request('GET', path, headers=self.read_headers)
            answer = conn.getresponse()
            answer.read()
            return answer.status
        except (OSError, http.client.HTTPException):
            conn.close()
            raise

    def act(self, kind, latest):
        """Send one request of `kind`; its status."""
        if kind == 'api /msgs':
            return self.read('api', '/msgs?no=%d' % PAGE)
        if kind == 'web /public':
            return self.read('web', '/public')
        if kind == 'web /<user>':
            return self.read('web', '/' + quote(self.rng.choice(self.names)))
        if kind == 'register':
            self.registered += 1
            fields = [self.prefix + str(self.registered), 'load@example.com', 'secret']
        elif kind == 'tweet':
            fields = [self.me, 'Message %d from %s' % (latest, self.me)]
        else:
            fields = [self.me, self.rng.choice(self.names)]
        method, path, body = to_request(kind, fields)
        return self.api.send(method, '%s?latest=%d' % (path, latest), body)[0]


def client_thread(urls, worker, thread, names, turn, stop_at, budget, results):
    """Run one client until the deadline or the budget (shared by the process's clients:
    an iterator's next() is atomic) is spent."""
    client = LoadClient(urls, worker, thread, names, turn)
    kinds, weights = zip(*MIX, strict=True)
    # Ids no other client uses, growing, as the simulator's do.
    latest = worker * 10 ** 9 + thread * 10 ** 6 + turn * 10 ** 5
    while time.monotonic() < stop_at and next(budget, None) is not None:
        kind = client.rng.choices(kinds, weights)[0]
        latest += 1
        started = time.perf_counter()
        try:
            status = client.act(kind, latest)
        except (OSError, http.client.HTTPException) as error:
            status = type(error).__name__
        results.append((kind, status, time.perf_counter() - started))


def worker_process(args):
    """A process of clients (several processes, so that the clients do not limit the
    throughput): their (kind, status, seconds), and when they started and stopped."""
    urls, worker, threads, names, turn, seconds, requests = args
    started = time.monotonic()  # the same clock in every process
    budget, results = iter(range(requests)), []
    in_threads(lambda n: client_thread(urls, worker, n, names, turn, started + seconds,
                                       budget, results), threads, timeout=None)
    return results, started, time.monotonic()


def spread(clients, processes):
    """How many clients each process runs, and all of their names."""
    per_process = [clients // processes + (n < clients % processes) for n in range(processes)]
    return per_process, [name(w, t) for w in range(processes) for t in range(per_process[w])]


def run(urls, clients, processes, seconds, requests):
    """All the clients against `urls`; a summary."""
    return run_in_turns({'': urls}, clients, processes, seconds, requests, rounds=1)['']


def run_in_turns(targets, clients, processes, seconds, requests, rounds):
    """The clients against each of `targets` (label -> urls) in turn, `rounds` times;
    {label: summary}, its wall time the time spent sending."""
    per_process, names = spread(clients, processes)
    results = {label: [] for label in targets}
    wall = dict.fromkeys(targets, 0.0)
    # Spawned, not forked: a fork copies the locks of the caller's threads (a test
    # process has the apps, their pools and checkpointers) in whatever state they are.
    with multiprocessing.get_context('spawn').Pool(processes) as pool:
        for turn in range(rounds):
            # Every other turn in the other order: the first to go in a turn was 6-7% slower
            # than the same code after it (docs/benchmarks.md).
            for label, urls in list(targets.items())[::1 if turn % 2 == 0 else -1]:
                parts = pool.map(worker_process, [
                    (urls, w, per_process[w], names, turn, seconds / rounds,
                     requests // rounds // processes)
                    for w in range(processes)])
                for part, _, _ in parts:
                    results[label].extend(part)
                wall[label] += max(p[2] for p in parts) - min(p[1] for p in parts)
    return {label: summarize(results[label], wall[label]) for label in targets}


def summarize(results, wall):
    """Throughput, errors and latency percentiles, overall and by kind."""
    by_kind, errors = defaultdict(list), defaultdict(int)
    for kind, status, seconds in results:
        by_kind[kind].append(seconds)
        if status != EXPECTED[kind]:
            errors['%s: %s' % (kind, status)] += 1
    everything = sorted(s for _, _, s in results)
    return {'requests': len(results), 'seconds': wall, 'rps': len(results) / wall,
            'errors': dict(errors), 'p50': percentile(everything, 50),
            'p90': percentile(everything, 90), 'p99': percentile(everything, 99),
            'max': everything[-1] if everything else 0,
            'kinds': {kind: (len(v), percentile(sorted(v), 50), percentile(sorted(v), 99))
                      for kind, v in sorted(by_kind.items())}}


def register_clients(api_url, clients, processes):
    """Sign every client's user up before the clock starts."""
    client = Client(api_url, timeout=30)
    for username in spread(clients, processes)[1]:
        fields = [username, 'load@example.com', 'secret']
        status, body = client.send(*to_request('register', fields))
        if status != 204:
            raise RuntimeError('could not register %s: %s %r' % (username, status, body))


def start_apps(scratch, url, clients, processes, root=ROOT):
    """{'api': URL, 'web': URL} of both apps on the database `url`, the clients' users
    signed up; the apps stop when `scratch` ends."""
    api = scratch.enter_context(Server('sim_api:app', url, root=root))
    web = scratch.enter_context(Server('minitwit:app', url, root=root))
    register_clients(api.url, clients, processes)
    return {'api': api.url, 'web': web.url}


def report(label, summary, floor=None):
    """Print a summary; beside the floor's when `floor` is given."""
    share = ' (%.0f%% of the floor)' % (100 * summary['rps'] / floor['rps']) if floor else ''
    print('%s: %d requests in %.1f s = %.0f requests/s%s' % (
        label, summary['requests'], summary['seconds'], summary['rps'], share))
    print('  latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f' % tuple(
        1000 * summary[p] for p in ('p50', 'p90', 'p99', 'max')))
    if floor:
        for kind, (count, p50, p99) in summary['kinds'].items():
            print('  %-12s %6d  p50 %6.1f  p99 %6.1f' % (kind, count, 1000 * p50, 1000 * p99))
    print('  errors: %d' % sum(summary['errors'].values()))
    for error, count in sorted(summary['errors'].items()):
        print('    %6d  %s' % (count, error))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--clients', type=int, default=32)
    parser.add_argument('--seconds', type=float, default=20, help='per app, at most')
    parser.add_argument('--requests', type=int, default=100_000, help='per app, at most')
    parser.add_argument('--processes', type=int, default=4, help='the clients are spread over')
    parser.add_argument('--rounds', type=int, default=ROUNDS, help='turns each app takes')
    parser.add_argument('--mariadb', metavar='URL', help='a fresh database on this server')
    parser.add_argument('--driver', default='auto', help='the MySQL driver, with --mariadb')
    parser.add_argument('--before', metavar='CHECKOUT', help="also another checkout's apps")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix='minitwit-loadtest-') as folder, \
            contextlib.ExitStack() as scratch:
        checkouts = [('MiniTwit', ROOT)]
        if args.before:
            before = os.path.abspath(args.before)
            checkouts.append(('MiniTwit before (%s)' % os.path.basename(before), before))
        targets = {}
        for number, (label, root) in enumerate(checkouts):
            database = DATABASE + ('_%d' % number if number else '')
            if args.mariadb:
                url = with_option(scratch.enter_context(fresh_mariadb(args.mariadb, database)),
                                  'driver', args.driver)
            else:
                url = 'sqlite:///%s' % os.path.join(folder, database + '.db')
            targets[label] = start_apps(scratch, url, args.clients, args.processes, root)
        floor = scratch.enter_context(Server('scripts.bench.floor_app:app')).url
        targets['floor'] = {'api': floor, 'web': floor}
        print('MiniTwit on %s; %d clients in %d processes, %g s or %d requests each for %s, '
              'in %d turns' % ('mysql' if args.mariadb else 'sqlite', args.clients, args.processes,
                               args.seconds, args.requests, ', '.join(targets), args.rounds))
        summaries = run_in_turns(targets, args.clients, args.processes, args.seconds,
                                 args.requests, args.rounds)
    floor = summaries.pop('floor')
    report('floor (no-op app)', floor)
    for label, summary in summaries.items():
        report(label, summary, floor)
        if summary['p99'] >= DEADLINE:
            print('p99 is %.0f ms: over the simulator\'s %d ms' % (
                1000 * summary['p99'], 1000 * DEADLINE))
    return 1 if floor['errors'] or any(
        s['errors'] or s['p99'] >= DEADLINE for s in summaries.values()) else 0


if __name__ == '__main__':
    sys.exit(main())
