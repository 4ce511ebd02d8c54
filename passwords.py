"""Password hashing, shared by the API and the web UI.

New hashes are argon2id with OWASP's recommended memory and passes (19 MiB,
t=2) in two lanes, computed on two cores at once (RFC 9106 suggests as many
lanes as cores): the same memory and work as OWASP's p=1, about 20 ms of
CPU here, done in 10-12 ms (`make bench-passwords`). The parameters are
stored in each hash, so raising them later only means changing ARGON2
below: old hashes keep verifying and are upgraded at the next sign-in.
Hashes brought over from the original ITU-MiniTwit are werkzeug's
`pbkdf2:sha256:N$salt$hex` and `scrypt:N:r:p$salt$hex`; they verify too and
always count as stale.
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
    try:
        method, salt, expected = stored.split('$', 2)
        kind, *args = method.split(':')
        secret, salt = password.encode('utf-8'), salt.encode('utf-8')
        if kind == 'pbkdf2':
            name, rounds = args[0], int(args[1]) if len(args) > 1 else 260000
            actual = hashlib.pbkdf2_hmac(name, secret, salt, rounds).hex()
        elif kind == 'scrypt':
            n, r, p = (int(a) for a in args) if args else (32768, 8, 1)
            actual = hashlib.scrypt(secret, salt=salt, n=n, r=r, p=p,
                                    maxmem=132 * n * r * p).hex()
        else:
            return False
    except (ValueError, TypeError, IndexError):
        return False
    return hmac.compare_digest(actual, expected)
