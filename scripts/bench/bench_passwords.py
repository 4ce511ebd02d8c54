"""What a password costs: hashing one (a sign-up), verifying one (a sign-in), and
verifying an original ITU-MiniTwit hash (pbkdf2:sha256:150000) before it is upgraded."""
import argparse
import hashlib
import time

import passwords
from scripts.simulator.simulate import percentile

PASSWORD = 'correct horse battery staple'  # noqa: S105 (made up)


def werkzeug_pbkdf2(password, salt='fixedsaltforbench', rounds=150000):
    """A hash in the original's format, for its verification cost."""
    digest = hashlib.pbkdf2_hmac('sha256', password.encode(), salt.encode(), rounds).hex()
    return 'pbkdf2:sha256:%d$%s$%s' % (rounds, salt, digest)


def measure(call, rounds):
    """(wall ms, CPU ms) of each of `rounds` calls."""
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return walls, cpus


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=50)
    args = parser.parse_args(argv)
    current = passwords.hash_password(PASSWORD)
    legacy = werkzeug_pbkdf2(PASSWORD)
    print('argon2id parameters: %s' % current.split('$')[3])
    print('%-34s %9s %9s %9s %9s' % ('', 'p50 ms', 'p99 ms', 'CPU p50', 'CPU p99'))
    for label, call in (
            ('hash a new password (sign-up)', lambda: passwords.hash_password(PASSWORD)),
            ('verify an argon2id hash (sign-in)',
             lambda: passwords.verify_password(current, PASSWORD)),
            ('verify the original pbkdf2 hash',
             lambda: passwords.verify_password(legacy, PASSWORD))):
        walls, cpus = (sorted(times) for times in measure(call, args.rounds))
        print('%-34s %9.1f %9.1f %9.1f %9.1f' % (
            label, percentile(walls, 50), percentile(walls, 99),
            percentile(cpus, 50), percentile(cpus, 99)))


if __name__ == '__main__':
    main()
