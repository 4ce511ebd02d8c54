"""scripts/ops/import_legacy.py: the original ITU-MiniTwit's data, brought across
through its command line and checked through the simulator API and the web
UI's sign-in."""
import os
import sqlite3
import subprocess
from urllib.parse import urlparse

import pytest
from conftest import MARIADB_URL
from legacy_db import (
    HASH_METHODS,
    api_view,
    build_from_scenario,
    database_url,
    insert_statement,
    legacy_rows,
    legacy_texts,
    original_view,
    run_tool,
    write_course_dump,
    write_mysqldump,
)
from sim_client import register, tweet
from ui_client import browser, login

import database
import minitwit
from models import Follower, Message, User
from scripts.ops.import_legacy import convert_dump, create_legacy
from scripts.simulator import course_data
from scripts.simulator.gen_scenario import generate_actions
from scripts.simulator.simulate import expected_state, read_scenario

CHEAP_HASH = 'pbkdf2:sha256:150000$salt$' + '0' * 64


def import_legacy(*args, url=None):
    """Run the script on `url`, by default the test's database."""
    return run_tool('import_legacy', *args,
                      database_url=url or database_url())


def n(number):
    """A count as the script prints it: 11,306."""
    return format(number, ',')


def counts():
    """(users, follows, messages) in the test's database."""
    return tuple(model.select().count() for model in (User, Follower, Message))


@pytest.fixture(scope='module')
def generated(tmp_path_factory):
    """(path, passwords) of the original's database after a generated
    scenario: 8 users with werkzeug hashes of both kinds, repeated follows,
    unfollows, messages sharing pub_dates, every 7th message flagged."""
    path = str(tmp_path_factory.mktemp('legacy') / 'minitwit.db')
    passwords = build_from_scenario(path, generate_actions(3, 8, 400))
    return path, passwords


def legacy_counts(path):
    """(users, follower rows, distinct pairs, messages) of a legacy DB."""
    conn = sqlite3.connect(path)
    found = conn.execute(
        'SELECT (SELECT count(*) FROM user), (SELECT count(*) FROM follower), '
        '(SELECT count(*) FROM (SELECT DISTINCT who_id, whom_id FROM '
        'follower)), (SELECT count(*) FROM message)').fetchone()
    conn.close()
    return found


# --- a clean import ----------------------------------------------------------

def test_import_brings_every_user_message_and_follow_across(api, generated):
    path, passwords = generated
    users, rows, pairs, messages = legacy_counts(path)
    assert rows > pairs  # the scenario repeats follows: rows to collapse
    result = import_legacy(path)
    assert result.returncode == 0, result.stderr
    assert 'legacy:        %d users, %d follower rows (%d pairs), %d messages' \
        % (users, rows, pairs, messages) in result.stdout
    assert 'target before: 0 users, 0 follows, 0 messages' in result.stdout
    assert 'follows:  added %d, 0 already there, 0 skipped, %d repeated ' \
        'follower rows collapsed' % (pairs, rows - pairs) in result.stdout
    assert 'target after:  %d users, %d follows, %d messages' \
        % (users, pairs, messages) in result.stdout
    assert counts() == (users, pairs, messages)

    # Ids are kept, and the API shows exactly what the original held.
    conn = sqlite3.connect(path)
    assert sorted(conn.execute('SELECT user_id, username, email, pw_hash '
                               'FROM user')) == \
        sorted(User.select().tuples())
    conn.close()
    assert api_view(api, passwords) == original_view(path)


def sign_in(username, password, status=200):
    """Sign in on the web UI's form, in a new browser; the page it leads to."""
    return login(browser(minitwit.app), username, password, status=status)


def test_original_users_sign_in_on_the_web_with_their_old_passwords(
        fresh_db, generated):
    path, passwords = generated
    assert import_legacy(path).returncode == 0
    kinds = set()
    for name, password in passwords.items():
        kinds.add(User.by_name(name).pw_hash.split('$')[0])
        assert 'Invalid password' in sign_in(name, password + 'x', 400).text
        assert 'You were logged in' in sign_in(name, password).text
        # ... and the werkzeug hash has become an argon2 one, which works.
        assert User.by_name(name).pw_hash.startswith('$argon2id$')
    assert kinds == {'pbkdf2:sha256:150000', 'scrypt:32768:8:1'}
    name = next(iter(passwords))
    assert 'You were logged in' in sign_in(name, passwords[name]).text


def test_a_second_import_adds_nothing(fresh_db, generated):
    path, passwords = generated
    assert import_legacy(path).returncode == 0
    before = counts()
    # A moderator hides a message; a user's hash is upgraded at sign-in.
    assert run_tool('flag_tool', 1,
                      database_url=database_url()).returncode == 0
    name = next(iter(passwords))
    assert 'You were logged in' in sign_in(name, passwords[name]).text
    result = import_legacy(path)
    assert result.returncode == 0, result.stderr
    assert 'users:    added 0, %d already there, 0 skipped' % before[0] \
        in result.stdout
    assert 'messages: added 0, %d already there, 0 skipped' % before[2] \
        in result.stdout
    assert counts() == before
    assert Message.get_by_id(1).flagged
    assert User.by_name(name).pw_hash.startswith('$argon2id$')


def test_new_rows_get_ids_after_the_imported_ones(api, tmp_path):
    """On MariaDB too, where the counters are the tables' own."""
    path = str(tmp_path / 'gaps.db')
    conn = create_legacy(path)
    conn.execute('INSERT INTO user VALUES (1000000, ?, ?, ?)',
                 ('old', 'old@example.com', CHEAP_HASH))
    conn.execute("INSERT INTO message VALUES (5000000, 1000000, 'old news', 1, 0)")
    conn.commit()
    conn.close()
    assert import_legacy(path).returncode == 0
    assert register(api, 'new').status_int == 204
    assert tweet(api, 'new', 'fresh').status_int == 204
    assert User.by_name('new').user_id == 1000001
    assert Message.get(Message.text == 'fresh').message_id == 5000001


# --- dry runs ------------------------------------------------------------------

def test_a_dry_run_writes_nothing_not_even_the_tables(make_db_url, generated):
    path, _ = generated
    users, _, pairs, messages = legacy_counts(path)
    url = make_db_url()
    result = import_legacy(path, '--dry-run', url=url)
    assert result.returncode == 0, result.stderr
    assert 'target before: 0 users, 0 follows, 0 messages (no tables yet)' \
        in result.stdout
    assert 'users:    would add %d' % users in result.stdout
    assert 'target would then hold: %d users, %d follows, %d messages' % (
        users, pairs, messages) in result.stdout
    target = database.make_database(url)
    if url.startswith('sqlite'):
        assert not os.path.exists(target.database)
    else:
        assert target.get_tables() == []
        target.close()


def test_a_dry_run_after_an_import_would_add_nothing(fresh_db, generated):
    path, _ = generated
    assert import_legacy(path).returncode == 0
    before = counts()
    result = import_legacy(path, '--dry-run')
    assert result.returncode == 0, result.stderr
    assert 'messages: would add 0, %d already there' % before[2] \
        in result.stdout
    assert counts() == before


# --- rows that cannot come across ------------------------------------------

@pytest.fixture
def awkward(tmp_path):
    """A legacy database with everything that must not come across as is
    (as a dump can hold it: NULL emails too)."""
    path = str(tmp_path / 'awkward.db')
    conn = create_legacy(path, not_null=False)
    conn.executemany('INSERT INTO user VALUES (?, ?, ?, ?)', [
        (1, 'alice', 'alice@example.com', CHEAP_HASH),
        (2, 'bob', 'bob@example.com', CHEAP_HASH),
        (3, 'carol', 'carol@legacy.example', CHEAP_HASH),  # name taken
        (4, 'dave', 'dave@example.com', CHEAP_HASH),      # id taken
        (5, 'alice', 'alice2@example.com', CHEAP_HASH),   # name repeated
        (6, 'erin', None, CHEAP_HASH),                    # no email
        (7, 'fay\x00', 'fay@example.com', CHEAP_HASH),    # NUL in the name
    ])
    conn.executemany('INSERT INTO follower VALUES (?, ?)', [
        (1, 2), (1, 2), (1, 2), (2, 1),
        (1, 3),            # carol was not imported
        (1, 99), (98, 1),  # orphans
    ])
    conn.executemany('INSERT INTO message VALUES (?, ?, ?, ?, ?)', [
        (1, 1, 'hello from alice', 100, 0),
        (2, 2, 'flagged by a moderator', 101, 1),
        (3, 1, 'flagged is NULL: hidden by the original', 102, None),
        (4, 99, 'by nobody', 103, 0),
        (5, 3, 'by the legacy carol', 104, 0),
        (6, 1, 'no date', None, 0),
        (10, 2, 'id taken in the target', 105, 0),
    ])
    conn.execute("INSERT INTO message VALUES (11, 1, CAST(x'61ff62' AS TEXT), "
                 "106, 0)")  # not UTF-8
    conn.commit()
    conn.close()
    return path


def test_conflicts_orphans_and_bad_rows_are_reported_and_skipped(
        api, awkward):
    carol = User.create(user_id=50, username='carol', email='c@new.example',
                        pw_hash='new-carol')
    User.create(user_id=4, username='zed', email='z@new.example',
                pw_hash='new-zed')
    Message.create(message_id=10, author=carol, text='carol, new', pub_date=1)
    result = import_legacy(awkward)
    assert result.returncode == 1
    assert 'users:    added 2, 0 already there, 5 skipped' in result.stdout
    assert 'follows:  added 2, 0 already there, 3 skipped, 2 repeated ' \
        'follower rows collapsed' in result.stdout
    assert 'messages: added 3, 0 already there, 5 skipped' in result.stdout
    for reason in [
            "user 'carol' (id 3): the target has a different user of that "
            "name (id 50)",
            "user 'dave' (id 4): the target gives id 4 to a different user, "
            "'zed'",
            "user 'alice' (id 5): legacy user 1 has the same name",
            "user 'erin' (id 6): email is missing",
            "(id 7): username holds NUL or is not valid UTF-8",
            'follow 1 -> 3: user 3 was not imported',
            'follow 1 -> 99: orphan: there is no user 99',
            'follow 98 -> 1: orphan: there is no user 98',
            'message 4: orphan: there is no user 99',
            'message 5: user 3 was not imported',
            'message 6: pub_date is missing',
            'message 10: the target has a different message with that id',
            'message 11: text holds NUL or is not valid UTF-8']:
        assert reason in result.stderr

    # Nothing was merged into the target's own users.
    assert User.get_by_id(50).pw_hash == 'new-carol'
    assert User.get_by_id(4).pw_hash == 'new-zed'
    assert [u.username for u in User.select().order_by(User.user_id)] == \
        ['alice', 'bob', 'zed', 'carol']
    assert api_view(api, ['alice', 'bob', 'carol', 'zed']) == {
        'alice': ([('hello from alice', 100)], ['bob']),
        'bob': ([], ['alice']),
        'carol': ([('carol, new', 1)], []),
        'zed': ([], []),
    }

    # A second run skips the same rows and adds nothing.
    again = import_legacy(awkward)
    assert again.returncode == 1
    assert 'users:    added 0, 2 already there, 5 skipped' in again.stdout
    assert 'messages: added 0, 3 already there, 5 skipped' in again.stdout


# --- input that is not a legacy database ---------------------------------------

@pytest.mark.parametrize('content, error', [
    (None, 'is not a file'),
    (b'', 'holds none of the tables'),
    (b'\xff\xfe binary', 'nor a UTF-8 SQL dump'),
    (b"INSERT INTO message VALUES (1, 1, 'unterminated);",
     "line 1: unexpected \"'\""),
    (b'CREATE TABLE user (user_id int, username text);\n\n'
     b"INSERT INTO user VALUES (1, 'a', 'b');", 'line 3: 3 values for 2'),
    (b"INSERT INTO user (user_id, nickname) VALUES (1, 'x');",
     'has no column nickname'),
    (b'INSERT INTO message VALUES (1, 1, now(), 1, 0);',
     "cannot read the value 'now'"),
])
def test_what_is_not_a_legacy_database_gets_a_clear_error(
        tmp_path, content, error):
    path = tmp_path / 'legacy.sql'
    if content is not None:
        path.write_bytes(content)
    target = tmp_path / 'target.db'
    result = import_legacy(path, url='sqlite:///%s' % target)
    assert result.returncode == 2
    assert error in result.stderr
    assert 'Traceback' not in result.stderr
    assert not target.exists()


def test_an_sqlite_file_of_another_app_is_refused(tmp_path):
    path = tmp_path / 'other.db'
    conn = sqlite3.connect(path)
    conn.execute('CREATE TABLE user (id INTEGER, name TEXT)')
    conn.close()
    target = tmp_path / 'target.db'
    result = import_legacy(path, url='sqlite:///%s' % target)
    assert result.returncode == 2
    assert 'is not an ITU-MiniTwit database: table user lacks email, ' \
        'pw_hash, user_id, username' in result.stderr
    assert not target.exists()


@pytest.mark.parametrize('size', ['0', '10001', 'ten'])
def test_a_bad_batch_size_is_refused(tmp_path, generated, size):
    target = tmp_path / 'target.db'
    result = import_legacy(generated[0], '--batch-size', size,
                           url='sqlite:///%s' % target)
    assert result.returncode == 2
    assert 'is not a whole number from 1 to 10000' in result.stderr
    assert not target.exists()


def test_batches_of_one_give_the_same_result(api, generated):
    path, passwords = generated
    assert import_legacy(path, '--batch-size', '1').returncode == 0
    assert api_view(api, passwords) == original_view(path)


# --- MySQL dumps -----------------------------------------------------------------

TRICKY = ["it's", 'back\\slash', 'tab\there', 'new\nline', 'cr\rreturn',
          'quote " double', '“curly” æøå 🐋', '100% _under_', '\\%\\_',
          "''", '', 'semi; colon', '-- not a comment', '/* nor this */',
          'ctrl-Z \x1a', 'back\bspace']


@pytest.mark.skipif(not MARIADB_URL, reason='needs TEST_MARIADB_URL: '
                    'mysqldump dumps from a MariaDB server')
@pytest.mark.needs('mysqldump')
def test_a_mysqldump_of_the_original_reads_back_exactly(mariadb_admin,
                                                         tmp_path):
    """The original's tables in MySQL, dumped by mysqldump itself, convert
    to the same rows: every escape mysqldump writes is read back."""
    name = 'minitwit_test_dump_%d' % os.getpid()
    rows = [(i + 1, 1, text, 1580989428 + i, i % 2)
            for i, text in enumerate(TRICKY)] + [(99, 1, 'undated', None, None)]
    with mariadb_admin.cursor() as cur:
        cur.execute('CREATE DATABASE %s CHARACTER SET utf8mb4' % name)
        try:
            cur.execute('USE %s' % name)
            cur.execute(
                'CREATE TABLE user (user_id integer primary key auto_increment,'
                ' username varchar(100) not null, email varchar(200) null, '
                'pw_hash varchar(200) not null)')
            cur.execute('CREATE TABLE follower (who_id integer, whom_id integer)')
            cur.execute(
                'CREATE TABLE message (message_id integer primary key '
                'auto_increment, author_id integer not null, text varchar(500) '
                'not null, pub_date integer, flagged integer)')
            cur.execute('INSERT INTO user VALUES (1, %s, NULL, %s)',
                        ("O'Brien \\ x", 'h'))
            cur.executemany('INSERT INTO message VALUES (%s, %s, %s, %s, %s)',
                            rows)
            server = urlparse(MARIADB_URL)
            dump = tmp_path / 'dump.sql'
            with open(dump, 'wb') as out:
                subprocess.run(
                    ['mysqldump', '--host', server.hostname or '127.0.0.1',
                     '--port', str(server.port or 3306), '--user',
                     server.username or 'root',
                     '--password=%s' % (server.password or ''), name],
                    stdout=out, check=True, timeout=60)
        finally:
            cur.execute('DROP DATABASE %s' % name)
    # tests/legacy_db.py writes dumps as mysqldump does, to the byte.
    assert insert_statement('message', rows) in dump.read_text(encoding='utf-8')
    converted = tmp_path / 'legacy.db'
    result = import_legacy(dump, '--to-sqlite', converted, url='sqlite:///unused')
    assert result.returncode == 0, result.stderr
    assert '1 user rows, 0 follower rows, %d message rows' % len(rows) \
        in result.stdout
    conn = sqlite3.connect(converted)
    assert conn.execute('SELECT * FROM message ORDER BY message_id').fetchall() \
        == rows
    assert conn.execute('SELECT * FROM user').fetchall() == \
        [(1, "O'Brien \\ x", None, 'h')]
    conn.close()


def test_to_sqlite_refuses_to_overwrite(tmp_path):
    dump = tmp_path / 'dump.sql'
    dump.write_text("INSERT INTO user VALUES (1, 'a', 'a@b', 'h');")
    existing = tmp_path / 'existing.db'
    existing.write_bytes(b'keep me')
    result = import_legacy(dump, '--to-sqlite', existing, url='sqlite:///unused')
    assert result.returncode == 2
    assert 'exists already' in result.stderr
    assert existing.read_bytes() == b'keep me'


# --- the original's dump: a generated one, and the course's ---------------------

# The course's dump, when MINITWIT_DATA_DIR names a folder that holds it
# (make scenario fetches the scenario alone: the dump is not published).
COURSE_DUMP = os.path.join(course_data.data_dir() or '', course_data.LEGACY)
HAVE_COURSE_DUMP = bool(course_data.data_dir()) and os.path.isfile(COURSE_DUMP)
# The generated dump in each format the tests write: mysqldump's, and the
# course's file's own (one single-row INSERT a line, quotes doubled).
WRITERS = {'mysqldump': write_mysqldump, 'course-format': write_course_dump}
ORIGINALS = list(WRITERS) + (['course'] if HAVE_COURSE_DUMP else [])
# Each sign-in hashes with pbkdf2 150,000 rounds, then argon2 (~0.13 s):
# this many users, spread over all of them, keep the test short.
PASSWORD_SAMPLE = 20


class Original:
    """The original's data as a MySQL dump, and what the test knows of it."""

    def __init__(self, dump, actions, counts, hash_kinds, source=None):
        self.dump, self.actions, self.source = dump, actions, source
        self.counts, self.hash_kinds = counts, hash_kinds
        self.converted = None  # the dump read back into SQLite


@pytest.fixture(scope='module')
def generated_source(tmp_path_factory):
    """(path, actions) of the original's database after a generated scenario
    with, as tweets, every string a dump escapes: 40 users with both werkzeug
    hashes, repeated follows, unfollows, every 7th message flagged. Built
    once for both formats: the hashes take seconds."""
    actions = generate_actions(4, 40, 3000)
    names = [fields[0] for _, command, fields in actions if command == 'register']
    actions += [(len(actions) + i, 'tweet', [names[i % len(names)], text])
                for i, text in enumerate(TRICKY)]
    source = str(tmp_path_factory.mktemp('source') / 'original.db')
    build_from_scenario(source, actions)
    return source, actions


def generated_original(folder, style, source, actions):
    """The generated database, dumped in `style` (a WRITERS key)."""
    dump = str(folder / 'original.sql')
    WRITERS[style](source, dump)
    return Original(dump, actions, legacy_counts(source), set(HASH_METHODS),
                    source)


def course_original():
    """The course's dump, and the course's scenario that made it."""
    scenario = os.path.join(course_data.data_dir(), course_data.SCENARIO)
    if not os.path.isfile(scenario):
        pytest.fail("%s=%s holds the course's dump but not its scenario, %s"
                    % (course_data.DATA_DIR_VAR, course_data.data_dir(),
                       course_data.SCENARIO), pytrace=False)
    return Original(COURSE_DUMP, list(read_scenario(scenario)),
                    (200, 6265, 6265, 11306), {'pbkdf2:sha256:150000'})


@pytest.fixture(scope='module', params=ORIGINALS)
def original(request, tmp_path_factory):
    """Each dump, read back into the original's SQLite database."""
    folder = tmp_path_factory.mktemp(request.param)
    if request.param in WRITERS:
        found = generated_original(folder, request.param,
                                   *request.getfixturevalue('generated_source'))
    else:
        found = course_original()
    found.converted = str(folder / 'converted.db')
    result = import_legacy(found.dump, '--to-sqlite', found.converted,
                           url='sqlite:///unused')
    assert result.returncode == 0, result.stderr
    return found


@pytest.mark.parametrize('style, user, messages', [
    ('mysqldump', "INSERT INTO `user` VALUES\n(1,'D\\'Arcy \\\\ Ørsted',NULL,'h');",
     "INSERT INTO `message` VALUES\n(1,1,'it\\'s',1,0),\n"
     "(2,1,'new\\nline',1,0),\n(3,1,'\\\"🐋\\\"\t\\Z',1,0);"),
    ('course-format', "INSERT INTO user VALUES(1,'D''Arcy \\\\ Ørsted',NULL,'h');",
     "INSERT INTO message VALUES(1,1,'it''s',1,0);\n"
     "INSERT INTO message VALUES(2,1,'new\nline',1,0);\n"
     "INSERT INTO message VALUES(3,1,'\"🐋\"\t\x1a',1,0);\n"),
], ids=list(WRITERS))
def test_the_generated_dump_is_written_in_its_format(tmp_path, style, user,
                                                      messages):
    path = tmp_path / 'legacy.db'
    conn = create_legacy(path, not_null=False)
    conn.execute("INSERT INTO user VALUES (1, 'D''Arcy \\ Ørsted', NULL, 'h')")
    conn.executemany('INSERT INTO message VALUES (?, 1, ?, 1, 0)',
                     enumerate(["it's", 'new\nline', '"🐋"\t\x1a'], start=1))
    conn.commit()
    conn.close()
    WRITERS[style](path, tmp_path / 'dump.sql')
    text = (tmp_path / 'dump.sql').read_text(encoding='utf-8')
    assert 'CREATE DATABASE minitwit;\n\nUSE minitwit;\n\nCREATE TABLE user (\n' \
        '  user_id integer primary key auto_increment,\n' in text
    assert user in text
    assert messages in text


def course_lines(table, count, where=b''):
    """The course's dump's first `count` INSERT lines for `table` holding
    `where`, as bytes."""
    start = b'INSERT INTO %s VALUES(' % table.encode()
    with open(COURSE_DUMP, 'rb') as f:
        return [line for line in f
                if line.startswith(start) and where in line][:count]


def skeleton(text):
    """A dump's lines, each table's run of INSERT lines as one line: its
    head, its blank lines and its tables' order."""
    found = []
    for line in text.splitlines(keepends=True):
        if line.startswith(b'INSERT INTO '):
            line = line.split(b'(')[0]
            if found and found[-1] == line:
                continue
        found.append(line)
    return found


# Only with the course's dump, as the 'course' original: a skip would fail
# under MINITWIT_REQUIRE_ALL=1.
if HAVE_COURSE_DUMP:
    def test_the_course_format_is_the_course_dumps_to_the_byte(tmp_path):
        """A few of the course's rows, read by the importer and written
        again by write_course_dump, come out as the course's file has them,
        in a file laid out as the course's is."""
        # The first rows of each table, and messages with a quote in them.
        lines = (course_lines('user', 3) + course_lines('follower', 3) +
                 course_lines('message', 3) + course_lines('message', 2, b"''"))
        assert len(lines) == 11
        picked = tmp_path / 'picked.sql'
        picked.write_bytes(b''.join(lines))
        convert_dump(picked, tmp_path / 'picked.db')
        write_course_dump(tmp_path / 'picked.db', tmp_path / 'written.sql')
        written = (tmp_path / 'written.sql').read_bytes()
        # The tables' INSERTs, in the order the writer writes them (ids).
        assert [line for line in written.splitlines(keepends=True)
                if line.startswith(b'INSERT')] == lines
        with open(COURSE_DUMP, 'rb') as f:
            assert skeleton(written) == skeleton(f.read())


@pytest.mark.slow
def test_the_originals_dump_comes_across_exactly(api, original):
    users, rows, pairs, messages = original.counts
    assert legacy_counts(original.converted) == original.counts
    if original.source:
        # Every value is read back as it was: each escape, NULL, unicode.
        assert legacy_rows(original.converted) == legacy_rows(original.source)

    result = import_legacy(original.dump)  # the dump itself, converted on the way
    assert result.returncode == 0, result.stderr
    assert 'legacy:        %s users, %s follower rows (%s pairs), %s messages' \
        % (n(users), n(rows), n(pairs), n(messages)) in result.stdout
    assert 'target after:  %s users, %s follows, %s messages' \
        % (n(users), n(pairs), n(messages)) in result.stdout
    assert counts() == (users, pairs, messages)

    # What the API shows is what the original held, and what it held is
    # what the scenario implies (messages newest first, flagged ones too;
    # follows in the order followed).
    names, written, follows, _, _ = expected_state(original.actions)
    shown = api_view(api, names)
    assert shown == original_view(original.converted)
    held = legacy_texts(original.converted)
    for name in names:
        assert held.get(name, []) == written[name][::-1]
        assert shown[name][1] == list(follows[name])

    # The scenario's passwords sign in; new rows follow the imported ids.
    passwords = {fields[0]: fields[2] for _, command, fields in original.actions
                 if command == 'register'}
    assert {u.pw_hash.split('$')[0] for u in User.select()} == \
        original.hash_kinds
    for name in names[::max(1, len(names) // PASSWORD_SAMPLE)]:
        assert 'You were logged in' in sign_in(name, passwords[name]).text
        assert User.by_name(name).pw_hash.startswith('$argon2id$')
    assert register(api, 'after the import').status_int == 204
    assert tweet(api, 'after the import', 'hello').status_int == 204
    assert User.by_name('after the import').user_id > users
    assert Message.get(Message.text == 'hello').message_id > messages
