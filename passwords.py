"""Password hashing, shared by the API and the web UI.

New hashes are argon2id with OWASP's memory and passes (19 MiB, t=2) in two
lanes on two cores (RFC 9106: a lane per core): 20 ms of CPU in 10-12 ms. Each
hash holds its parameters: change ARGON2's and old hashes still verify, and are
upgraded at the next sign-in, as are the original ITU-MiniTwit's werkzeug hashes
(`pbkdf2:sha256:N$salt$hex`, `scrypt:N:r:p$salt$hex`).
"""
import hashlib
import hmac

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ARGON2 = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=2)


def hash_password(password):
    """A new hash of `password` with the current parameters."""
    return ARGON2.hash(password)


def verify_password(stored, password):
    """(matches, stale): stale means re-hash it with the current scheme."""
    if stored.startswith('$argon2'):
        try:
            ARGON2.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False, False
        return True, ARGON2.check_needs_rehash(stored)
    return _verify_werkzeug(stored, password), True


def _verify_werkzeug(stored, password):
    """Whether `password` matches a werkzeug hash (pbkdf2 or scrypt)."""
    try:
        method, salt, expected = stored.split('$', 2)
        kind, *args = method.split(':')
        secret, salt = password.encode('utf-8'), salt.encode('utf-8')
        if kind == 'pbkdf2':
            name, rounds = args[0], int(args[1]) if len(args) > 1 else 260000
            actual = hashlib.pbkdf2_hmac(name, secret, salt, rounds).hex()
        elif kind == 'scrypt':
            n, r, p = (int(a) for a in args) if args else (32768, 8, 1)
            actual = hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p, maxmem=132 * n * r * p).hex()
        else:
            return False
    except (ValueError, TypeError, IndexError):
        return False
    return hmac.compare_digest(actual, expected)
