"""How fast the web UI's timelines are at 10,000 and at 1,000,000 messages.

Both sizes are seeded from one fixed seed and asked in turn, so that the ups and downs of
a shared machine fall on both alike.
"""
import argparse
import contextlib
import http.client
import random
import re
import sys
import tempfile
import time
from http.cookies import SimpleCookie
from urllib.parse import urlencode, urlparse

import database
import passwords
from database import db
from models import Follower, Message, User
from scripts.ops.import_legacy import batches
from scripts.ops.progress import Progress
from scripts.simulator.simulate import percentile
from tests.serving import ROOT, Server, fresh_mariadb

PASSWORD = 'bench-password'  # noqa: S105 (made-up users)
START = 1_600_000_000  # pub_date of the first message
INTERVAL = 30  # seconds between messages: 1M of them span about a year
BATCH = 20000
WORDS = ('the quick brown fox jumps over a lazy dog while we ship another '
         'release of minitwit to production and the simulator keeps on '
         'sending messages day and night').split()

MARIADB_DATABASE = 'minitwit_bench_ui'
HOME_USER = 1  # follows 500 others; signs in for /
PROLIFIC_USER = 2  # writes 1% of all messages; /<user> shows this one
HOME_FOLLOWS = 500


def insert_rows(label, fields, rows, total):
    """Insert `rows` (tuples in `fields` order), a transaction per batch."""
    progress = Progress(label, total)
    for batch in batches(rows, BATCH):
        with db.atomic():
            database.insert_many(fields, batch)
        progress.add(len(batch))


def follow_rows(users, total, rng):
    """HOME_USER follows HOME_FOLLOWS users; the rest spread evenly, each pair once."""
    others = range(2, users + 1)
    yield from ((HOME_USER, whom) for whom in rng.sample(others, HOME_FOLLOWS))
    remaining = total - HOME_FOLLOWS
    for index, who in enumerate(others):
        count = remaining // (len(others) - index)
        remaining -= count
        # One spare candidate, in case `who` itself is drawn.
        candidates = rng.sample(range(1, users + 1), count + 1)
        for whom in [whom for whom in candidates if whom != who][:count]:
            yield (who, whom)


def message_rows(count, users, rng):
    """`count` messages, one every INTERVAL s; 1% by PROLIFIC_USER, 0.2% flagged."""
    for message_id in range(1, count + 1):
        author = PROLIFIC_USER if message_id % 100 == 0 else rng.randint(1, users)
        text = ' '.join(rng.choices(WORDS, k=rng.randint(4, 16)))
        yield (message_id, author, text, START + message_id * INTERVAL, rng.random() < 0.002)


def settle(timeout=120):
    """Let the bulk load's background work finish, as a database in service has."""
    if not database.is_mysql():
        db.execute_sql('PRAGMA wal_checkpoint(TRUNCATE)')
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = dict(db.execute_sql(
            "SHOW GLOBAL STATUS WHERE Variable_name IN "
            "('Innodb_buffer_pool_pages_dirty', 'Innodb_buffer_pool_pages_total')").fetchall())
        if int(status['Innodb_buffer_pool_pages_dirty']) * 100 <= \
                int(status['Innodb_buffer_pool_pages_total']):
            return
        time.sleep(1)


def seed(url, messages, args):
    """Seconds it took to seed the empty database at `url` with `messages` messages."""
    rng = random.Random(2024)
    print('  seeding %s messages in %s' % (format(messages, ','), url), file=sys.stderr)
    database.configure(url)
    started = time.monotonic()
    pw_hash = passwords.hash_password(PASSWORD)  # one for all: 100,000 would take an hour
    try:
        with database.connection():
            # Durability traded for speed while seeding, on this connection only.
            if database.is_mysql():
                db.execute_sql('SET SESSION foreign_key_checks = 0, unique_checks = 0')
            else:
                db.execute_sql('PRAGMA synchronous = OFF')
                db.execute_sql('PRAGMA cache_size = -400000')
            insert_rows('users', (User.user_id, User.username, User.email, User.pw_hash),
                        ((n, 'user%d' % n, 'user%d@example.com' % n, pw_hash)
                         for n in range(1, args.users + 1)), args.users)
            insert_rows('follows', (Follower.who, Follower.whom),
                        follow_rows(args.users, args.follows, rng), args.follows)
            insert_rows('messages', (Message.message_id, Message.author, Message.text,
                                     Message.pub_date, Message.flagged),
                        message_rows(messages, args.users, rng), messages)
            settle()
    finally:
        database.db.obj.close_all()
    return time.monotonic() - started


class Browser:
    """One keep-alive connection to the app, with a cookie jar."""

    def __init__(self, url):
        self.connection = http.client.HTTPConnection(urlparse(url).netloc, timeout=30)
        self.cookies = SimpleCookie()

    def request(self, method, path, form=None):
        headers = {}
        if self.cookies:
            headers['Cookie'] = '; '.join('%s=%s' % (k, m.value) for k, m in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            headers['Content-Type'] = 'application/x-www-form-urlencoded'
        self.connection.request(method, path, body, headers)
        answer = self.connection.getresponse()
        text = answer.read().decode('utf-8')
        for header in answer.headers.get_all('Set-Cookie') or []:
            self.cookies.load(header)
        return answer.status, text

    def sign_in(self, username, password):
        """Through the form, with its hidden fields (an older checkout's CSRF token)."""
        _, page = self.request('GET', '/login')
        hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
        status, _ = self.request('POST', '/login',
                                 dict(hidden, username=username, password=password))
        if status not in (302, 303):
            raise RuntimeError('signing in as %s answered %s' % (username, status))


def latency(browser, path, warmup):
    """Seconds a GET of `path` took, after `warmup` more."""
    for _ in range(warmup + 1):
        started = time.perf_counter()
        status, _ = browser.request('GET', path)
        elapsed = time.perf_counter() - started
        if status != 200:
            raise RuntimeError('GET %s answered %s' % (path, status))
    return elapsed


def pages(messages):
    """(label, path, signed in, target: 'ratio', 'latency' or None) of each page measured."""
    older = messages - messages // 4  # a page a quarter of the way back
    return [
        ('/public', '/public', False, 'ratio'),
        ('/public, older page', '/public?before=%d.%d' % (START + older * INTERVAL, older),
         False, None),
        ('/<user> (1% of messages)', '/user%d' % PROLIFIC_USER, False, 'ratio'),
        ('/ (follows %d)' % HOME_FOLLOWS, '/', True, 'latency'),
        # What Prometheus reads every 15 s: it reads row_count, never the tables.
        ('/metrics', '/metrics', False, 'ratio'),
    ]


def measure(browsers, plans, count):
    """{(key, label): (p50 ms, p99 ms)} of each page of `plans` ({key: pages}) through
    `browsers` ({key: (anonymous, signed in)}), a request to each key in turn."""
    keys = list(browsers)
    figures = {}
    for index, (label, *_) in enumerate(plans[keys[0]]):
        times = {key: [] for key in keys}
        for n in range(count + 1):  # round 0 warms up; the order alternates
            for key in keys if n % 2 == 0 else keys[::-1]:
                _, path, signed_in, _ = plans[key][index]
                times[key].append(latency(browsers[key][signed_in], path, 0 if n else 20))
        for key, values in times.items():
            values = sorted(values[1:])
            figures[key, label] = percentile(values, 50) * 1000, percentile(values, 99) * 1000
    return figures


def serve_and_measure(apps, plans, count):
    """measure() of the web UI on each of `apps` ({key: (database URL, checkout)})."""
    servers = {}
    try:
        browsers = {}
        for key, (url, root) in apps.items():
            server = servers[key] = Server('minitwit:app', url, root=root)
            browsers[key] = Browser(server.url), Browser(server.url)
            browsers[key][1].sign_in('user%d' % HOME_USER, PASSWORD)
        return measure(browsers, plans, count)
    except RuntimeError:
        for server in servers.values():
            print(server.output()[-5000:], file=sys.stderr)
        raise
    finally:
        for server in servers.values():
            server.close()


def run(name, urls, args):
    """Seed both sizes ({messages: URL}), measure them side by side."""
    print('%s:' % name, file=sys.stderr)
    seeding = sum(seed(url, messages, args) for messages, url in urls.items())
    print('  seeding took %.0f s' % seeding, file=sys.stderr)
    return serve_and_measure({messages: (url, ROOT) for messages, url in urls.items()},
                             {messages: pages(messages) for messages in urls}, args.requests)


def report(all_results, args):
    """The table, and how each target came out."""
    print('\n%-8s %10s  %-26s %8s %8s' % ('database', 'messages', 'page', 'p50 ms', 'p99 ms'))
    for name, results in all_results.items():
        # By size, each size's pages in the order they were measured.
        for (messages, label), (p50, p99) in sorted(results.items(), key=lambda item: item[0][0]):
            print('%-8s %10s  %-26s %8.1f %8.1f' % (name, format(messages, ','), label, p50, p99))
    print()
    big, small = format(args.messages, ','), format(args.small, ',')
    for name, results in all_results.items():
        for label, _, _, target in pages(args.messages):
            p50, p99 = results[args.messages, label]
            if target == 'latency':
                print('%-8s %-26s p50 %.1f ms, p99 %.1f ms at %s (target p50 < 50, p99 < 150): %s'
                      % (name, label, p50, p99, big, 'met' if p50 < 50 and p99 < 150 else 'MISSED'))
                continue
            ratio = p50 / results[args.small, label][0]
            verdict = '(target <= 1.5x): %s' % ('met' if ratio <= 1.5 else 'MISSED')
            print('%-8s %-26s p50 at %s is %.2fx p50 at %s %s' % (
                name, label, big, ratio, small, verdict if target else '(no target)'))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--mariadb', metavar='URL', help='also on this MariaDB server')
    parser.add_argument('--only', choices=('sqlite', 'mariadb'), help='one database only')
    parser.add_argument('--users', type=int, default=100_000)
    parser.add_argument('--follows', type=int, default=2_000_000)
    parser.add_argument('--small', type=int, default=10_000, help='messages, the first size')
    parser.add_argument('--messages', type=int, default=1_000_000, help='messages, the second')
    parser.add_argument('--requests', type=int, default=500, help='GETs per page and size')
    parser.add_argument('--before', metavar='CHECKOUT', help="instead: another checkout's web UI "
                        "beside this one's, on one database of --messages on --mariadb")
    args = parser.parse_args()
    if args.before:
        with fresh_mariadb(args.mariadb, MARIADB_DATABASE + '_before') as url:
            seed(url, args.messages, args)
            apps = {'now': (url, ROOT), 'before': (url, args.before)}
            figures = serve_and_measure(apps, dict.fromkeys(apps, pages(args.messages)),
                                        args.requests)
        print('\n%-26s %16s %16s' % ('page', args.before[-16:], 'this checkout'))
        for label, *_ in pages(args.messages):
            print('%-26s %7.1f / %6.1f %7.1f / %6.1f  (p50 / p99 ms)' % (
                label, *figures['before', label], *figures['now', label]))
        return
    sizes = (args.small, args.messages)
    results = {}
    if args.only in (None, 'sqlite'):
        with tempfile.TemporaryDirectory(prefix='minitwit-bench-ui-') as tmp:
            results['sqlite'] = run('sqlite', {
                messages: 'sqlite:///%s/minitwit-%d.db' % (tmp, messages)
                for messages in sizes}, args)
    if args.mariadb and args.only in (None, 'mariadb'):
        with contextlib.ExitStack() as scratch:
            results['mariadb'] = run('mariadb', {
                messages: scratch.enter_context(fresh_mariadb(
                    args.mariadb, '%s_%d' % (MARIADB_DATABASE, messages)))
                for messages in sizes}, args)
    report(results, args)


if __name__ == '__main__':
    main()
