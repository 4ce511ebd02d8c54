"""How fast import_legacy.py brings an original ITU-MiniTwit database across."""
import argparse
import contextlib
import os
import random
import sys
import tempfile
import time

import database
from scripts.bench.bench_passwords import werkzeug_pbkdf2
from scripts.ops import import_legacy
from scripts.simulator.gen_scenario import sentence
from tests.serving import fresh_mariadb

BENCH_DATABASE = 'minitwit_bench_import'


def generate_legacy(path, users, follows, messages, seed=1):
    """Write a legacy database of this size at `path`."""
    rng = random.Random(seed)
    texts = [sentence(rng) for _ in range(10000)]
    # One hash for everybody: 10,000 would take longer than the import.
    pw_hash = werkzeug_pbkdf2('secret', salt='benchslt')
    conn = import_legacy.create_legacy(path)
    conn.executemany('INSERT INTO user VALUES (?, ?, ?, ?)', (
        (i, 'user %d' % i, 'user%d@example.com' % i, pw_hash)
        for i in range(1, users + 1)))
    # A tenth of the follows repeat a pair, as the original stored repeated follows.
    pairs = [(rng.randint(1, users), rng.randint(1, users)) for _ in range(follows - follows // 10)]
    conn.executemany('INSERT INTO follower VALUES (?, ?)', pairs + rng.sample(pairs, follows // 10))
    conn.executemany('INSERT INTO message VALUES (?, ?, ?, ?, ?)', (
        (i, rng.randint(1, users), texts[i % len(texts)], 1580989428 + i // 4,
         int(i % 100 == 0)) for i in range(1, messages + 1)))
    conn.commit()
    conn.close()


def timed_import(legacy, url):
    """[(rows, seconds, CPU seconds of this process)] of importing `legacy` into `url` twice."""
    database.configure(url)
    runs = []
    for _ in range(2):
        started, cpu = time.perf_counter(), time.process_time()
        tallies = import_legacy.import_legacy(legacy, out=sys.stderr)
        runs.append((sum(t.added + t.present for t in tallies),
                     time.perf_counter() - started, time.process_time() - cpu))
    database.db.obj.close_all()
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--messages', type=int, default=1000000)
    parser.add_argument('--users', type=int, default=10000)
    parser.add_argument('--follows', type=int, default=100000)
    parser.add_argument('--mariadb', metavar='URL',
                        help='also import into %s on this server' % BENCH_DATABASE)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix='minitwit-bench-import-') as tmp:
        legacy = os.path.join(tmp, 'legacy.db')
        started = time.perf_counter()
        generate_legacy(legacy, args.users, args.follows, args.messages)
        print('legacy database: %s users, %s follower rows, %s messages (generated in %.1f s)' % (
            format(args.users, ','), format(args.follows, ','), format(args.messages, ','),
            time.perf_counter() - started))
        targets = [('SQLite', 'sqlite:///%s' % os.path.join(tmp, 'target.db'))]
        with contextlib.ExitStack() as scratch:
            if args.mariadb:
                targets.append(('MariaDB', scratch.enter_context(
                    fresh_mariadb(args.mariadb, BENCH_DATABASE))))
            for name, url in targets:
                runs = timed_import(legacy, url)
                for run, (rows, seconds, cpu) in zip(
                        ('import', 'second run (nothing to add)'), runs, strict=True):
                    print('%-7s %-28s %s rows in %5.1f s = %7s rows/s '
                          '(%.1f s CPU in this process)' % (
                              name, run + ':', format(rows, ','), seconds,
                              format(round(rows / seconds), ','), cpu))


if __name__ == '__main__':
    main()
