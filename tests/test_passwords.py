"""Password hashes: argon2id for new ones, the original's werkzeug ones kept
working and upgraded at the next sign-in."""
import pytest
from argon2 import PasswordHasher
from werkzeug.security import generate_password_hash

import passwords
from models import User


def test_new_hashes_are_argon2id_with_their_parameters():
    stored = passwords.hash_password('correct horse')
    assert stored.startswith('$argon2id$v=19$m=19456,t=2,p=2$')
    assert passwords.verify_password(stored, 'correct horse') == (True, False)
    assert passwords.verify_password(stored, 'correct hors') == (False, False)
    assert passwords.hash_password('correct horse') != stored  # salted


def test_hashes_with_weaker_parameters_verify_and_are_stale():
    weak = PasswordHasher(time_cost=1, memory_cost=1024).hash('pw')
    assert passwords.verify_password(weak, 'pw') == (True, True)


@pytest.mark.parametrize('method', ['pbkdf2:sha256:150000', 'scrypt:32768:8:1',
                                    'pbkdf2:sha256'])
def test_werkzeug_hashes_verify_and_are_stale(method):
    stored = generate_password_hash('Qm"oZ=.D0 æ', method=method)
    assert stored.startswith(method.split(':')[0])
    assert passwords.verify_password(stored, 'Qm"oZ=.D0 æ') == (True, True)
    assert passwords.verify_password(stored, 'Qm"oZ=.D0') == (False, True)


def test_a_hash_from_the_original_database_verifies():
    # User 1 of the course's legacy database and the password from its
    # register line in the scenario.
    stored = ('pbkdf2:sha256:150000$nwutEEFo$759b0ae74305ed8316e87cab5e900cd86'
              '25e51e660f0bf750add916d83380348')
    assert passwords.verify_password(stored, ']=)[X{Km{z')[0]
    assert not passwords.verify_password(stored, ']=)[X{Km{Z')[0]


@pytest.mark.parametrize('stored', [
    '', 'plain-text', 'md5$salt$abc', 'pbkdf2:sha256:notanumber$s$h',
    'pbkdf2:nosuchhash:1000$s$h', 'scrypt:x:y:z$s$h', '$argon2id$garbage',
    'pbkdf2:sha256:150000$only-one-dollar'])
def test_malformed_hashes_never_verify_and_never_raise(stored):
    assert passwords.verify_password(stored, 'anything')[0] is False


def test_signing_in_upgrades_a_legacy_hash(fresh_db):
    legacy = generate_password_hash('old secret', method='pbkdf2:sha256:150000')
    user = User.register('legacy', 'l@example.com', legacy)
    assert not user.check_password('wrong')
    assert User.by_name('legacy').pw_hash == legacy  # no upgrade on failure
    assert user.check_password('old secret')
    upgraded = User.by_name('legacy').pw_hash
    assert upgraded.startswith('$argon2id$')
    assert User.by_name('legacy').check_password('old secret')
