"""Copy the original ITU-MiniTwit's database into MiniTwit's.

    python -m scripts.ops.import_legacy LEGACY [--dry-run] [--batch-size N]
    python -m scripts.ops.import_legacy DUMP.sql --to-sqlite LEGACY.db

LEGACY is the original's SQLite file (tables user, follower and message), or
a MySQL-syntax dump of it such as the course's itu_minitwit_legacy.sql,
which is first read into a temporary SQLite file (`--to-sqlite` keeps that
file and stops there). The rows go into DATABASE_URL with their ids, in
batches of one transaction each. Follower rows that repeat a pair become
one follow, kept in the order the pair was first followed. A row that cannot
come across is reported and skipped, never changed or merged: an orphan (its
user is not in the legacy database), a user whose id or name belongs to a
different user in the target, a message whose id does, and a value the
target's columns cannot hold. Rows already in the target are left as they
are, so a second run adds nothing. `--dry-run` reports the same without
writing anything.

Exit status: 0 when every row is in the target, 1 when some were skipped
or the target failed, 2 when LEGACY or the arguments cannot be used.
"""
import argparse
import contextlib
import os
import re
import sqlite3
import sys
import tempfile
from decimal import Decimal
from itertools import groupby, islice
from urllib.parse import quote

import peewee
from sqlglot import Dialect, exp
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

import database
import models
from database import db
from models import Follower, Message, User
from scripts.ops.progress import Progress

# The original's schema.sql, as it created minitwit.db.
LEGACY_SCHEMA = """
create table user (
  user_id integer primary key autoincrement,
  username string not null,
  email string not null,
  pw_hash string not null
);
create table follower (
  who_id integer,
  whom_id integer
);
create table message (
  message_id integer primary key autoincrement,
  author_id integer not null,
  text string not null,
  pub_date integer,
  flagged integer
);
"""
LEGACY_COLUMNS = {
    'user': ('user_id', 'username', 'email', 'pw_hash'),
    'follower': ('who_id', 'whom_id'),
    'message': ('message_id', 'author_id', 'text', 'pub_date', 'flagged'),
}
SQLITE_MAGIC = b'SQLite format 3\x00'

DEFAULT_BATCH = 5000
# A batch's lookup binds two values a row; SQLite binds at most 32,766.
MAX_BATCH = 10000
# Skipped rows are all counted; this many per table are also named.
MAX_NOTES = 20
# The target's INTEGER columns are 32-bit on MySQL; its TEXT holds 65,535
# bytes, which is 16,383 characters at utf8mb4's worst.
MIN_INT, MAX_INT = -2 ** 31, 2 ** 31 - 1
MAX_TEXT = 16383


class LegacyError(Exception):
    """LEGACY is not something this script can read."""


# --- the legacy database -----------------------------------------------------

def create_legacy(path, not_null=True):
    """A new SQLite file at `path` with the original's schema; returns an
    open connection. Refuses to touch a file that exists.

    `not_null=False` leaves out the NOT NULLs: the original's MySQL schema
    allows a NULL email, and a dump's rows should all land so that the
    import can report the ones it cannot take.
    """
    if os.path.exists(path):
        raise LegacyError('%s exists already; remove it or choose another '
                          'name' % path)
    conn = sqlite3.connect(path)
    conn.executescript(LEGACY_SCHEMA if not_null else
                       LEGACY_SCHEMA.replace(' not null', ''))
    return conn


def open_legacy(path):
    """A read-only connection to the original's SQLite database at `path`."""
    try:
        conn = sqlite3.connect('file:%s?mode=ro' % quote(os.path.abspath(path)),
                               uri=True)
        # SQLite stores whatever bytes it was given: text that is not UTF-8
        # is read with surrogates in it, and reported, row by row.
        conn.text_factory = lambda data: data.decode('utf-8', 'surrogateescape')
        tables = {name: {row[1] for row in
                         conn.execute('PRAGMA table_info("%s")' % name)}
                  for name in LEGACY_COLUMNS}
    except sqlite3.DatabaseError as error:
        raise LegacyError('%s is not a readable SQLite database: %s'
                          % (path, error)) from None
    for name, columns in LEGACY_COLUMNS.items():
        missing = set(columns) - tables[name]
        if missing:
            conn.close()
            raise LegacyError('%s is not an ITU-MiniTwit database: table %s '
                              'lacks %s' % (path, name,
                                            ', '.join(sorted(missing))))
    return conn


def is_sqlite_file(path):
    """Whether the file at `path` is an SQLite database (else a dump)."""
    with open(path, 'rb') as f:
        return f.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC


# --- reading a MySQL dump --------------------------------------------------

MYSQL = Dialect.get_or_raise('mysql')


class DumpError(LegacyError):
    """A dump this script cannot read, at `line`."""

    def __init__(self, line, message):
        super().__init__('line %d: %s' % (line, message))


def dump_statements(text):
    """Yield (line, statement) for each CREATE TABLE and INSERT of a MySQL
    dump, as sqlglot parses them; the other statements (CREATE DATABASE, USE,
    SET, LOCK ...) are not parsed at all."""
    tokenizer = MYSQL.tokenizer()
    try:
        tokens = tokenizer.tokenize(text)
    except TokenError:
        # The text goes wrong right after the last token read.
        done = tokenizer.tokens[-1].end + 1 if tokenizer.tokens else 0
        at = len(text) - len(text[done:].lstrip())
        raise DumpError(text.count('\n', 0, at) + 1, 'unexpected %r (an '
                        'unterminated string?)' % text[at:at + 1]) from None
    parser = MYSQL.parser()
    for end, statement in groupby(
            tokens, lambda token: token.token_type == TokenType.SEMICOLON):
        statement = list(statement)
        kinds = [token.token_type for token in statement[:2]]
        line = statement[0].line
        if kinds[0] == TokenType.REPLACE:
            # sqlglot reads no REPLACE (mysqldump --replace): dump without.
            raise DumpError(line, 'REPLACE cannot be read; dump with INSERT')
        if not end and (kinds[0] == TokenType.INSERT or
                        kinds == [TokenType.CREATE, TokenType.TABLE]):
            try:
                yield line, parser.parse(statement, text)[0]
            except ParseError as error:
                found = error.errors[0]
                raise DumpError(found['line'], found['description']) from None


def table_columns(node):
    """(table, column names) of `user` or `user (a, b)` in CREATE TABLE or
    INSERT; no names when the statement gives none."""
    if not isinstance(node, exp.Schema):
        return node.name.lower(), []
    return node.this.name.lower(), [
        column.name.lower() for column in node.expressions
        if isinstance(column, (exp.ColumnDef, exp.Identifier))]


def row_values(line, row, text):
    """A row of VALUES as Python values: strings, numbers and None."""
    values = []
    for node in row.expressions:
        try:
            value = node.to_py()
        except ValueError:
            meta = node.meta
            raise DumpError(line, 'cannot read the value %r' % (
                text[meta['start']:meta['end'] + 1] if 'start' in meta
                else node.sql(MYSQL))) from None
        values.append(float(value) if isinstance(value, Decimal) else value)
    return values


def convert_dump(dump_path, sqlite_path):
    """Write the original's SQLite database that a MySQL dump describes.

    Reads CREATE TABLE and INSERT for the tables user, follower and message
    and ignores every other statement (CREATE DATABASE, USE, SET, LOCK ...).
    Returns {table: rows written}.
    """
    # newline='': a carriage return inside a string is data, not a line end.
    with open(dump_path, encoding='utf-8', newline='') as f:
        try:
            text = f.read()
        except UnicodeDecodeError as error:
            raise LegacyError('%s is neither an SQLite database nor a UTF-8 '
                              'SQL dump: %s' % (dump_path, error)) from None
    conn = create_legacy(sqlite_path, not_null=False)
    try:
        counts, columns = {}, dict(LEGACY_COLUMNS)
        for line, statement in dump_statements(text):
            if not isinstance(statement, (exp.Create, exp.Insert)):
                continue  # a CREATE TABLE sqlglot reads as a mere command
            table, names = table_columns(statement.this)
            if table not in LEGACY_COLUMNS:
                continue
            if isinstance(statement, exp.Create) and names:
                columns[table] = names
                counts.setdefault(table, 0)
            elif isinstance(statement, exp.Insert):
                names = names or columns[table]
                unknown = set(names) - set(LEGACY_COLUMNS[table])
                if unknown:
                    raise DumpError(line, 'the original table %s has no '
                                    'column %s' % (table,
                                                   ', '.join(sorted(unknown))))
                if not isinstance(statement.expression, exp.Values):
                    raise DumpError(line, 'expected VALUES')
                rows = [row_values(line, row, text)
                        for row in statement.expression.expressions]
                for row in rows:
                    if len(row) != len(names):
                        raise DumpError(line, '%d values for %d columns'
                                        % (len(row), len(names)))
                # Both names are the original's, checked above.
                conn.executemany('INSERT INTO %s (%s) VALUES (%s)' % (  # noqa: S608
                    table, ', '.join(names), ', '.join('?' * len(names))),
                    rows)
                counts[table] = counts.get(table, 0) + len(rows)
        if not counts:
            raise LegacyError('%s holds none of the tables user, follower and '
                              'message' % dump_path)
        conn.commit()
    except (LegacyError, sqlite3.Error) as error:
        conn.close()
        os.remove(sqlite_path)
        if isinstance(error, DumpError):
            raise LegacyError('%s %s' % (dump_path, error)) from None
        raise
    conn.close()
    return counts


# --- what can come across ----------------------------------------------------

def text_problem(name, value, max_chars):
    """Why `value` cannot be stored in a text column, or None."""
    if not isinstance(value, str):
        return '%s is %s' % (name, 'missing' if value is None else
                             'not text (%r)' % (value,))
    elif models.unusable_text(value):
        return '%s holds NUL or is not valid UTF-8' % name
    elif len(value) > max_chars:
        return '%s is longer than %d characters' % (name, max_chars)
    return None


def int_problem(name, value):
    """Why `value` cannot be stored in an INTEGER column, or None."""
    if not isinstance(value, int):
        return '%s is %s' % (name, 'missing' if value is None else
                             'not a whole number (%r)' % (value,))
    elif not MIN_INT <= value <= MAX_INT:
        return '%s %d is out of range' % (name, value)
    return None


def user_problem(user_id, username, email, pw_hash):
    """Why a legacy user cannot be stored as it is, or None."""
    return (int_problem('user_id', user_id) or
            text_problem('username', username, User.username.max_length) or
            ('username is empty' if not username.strip() else None) or
            text_problem('email', email, User.email.max_length) or
            text_problem('pw_hash', pw_hash, User.pw_hash.max_length))


def message_problem(message_id, text, pub_date):
    """Why a legacy message cannot be stored as it is, or None."""
    return (int_problem('message_id', message_id) or
            text_problem('text', text, MAX_TEXT) or
            int_problem('pub_date', pub_date))


class Tally:
    """What became of one table's rows."""

    def __init__(self, name):
        self.name = name
        self.added = self.present = self.skipped = self.collapsed = 0
        self.notes = []

    def skip(self, what, why):
        """Count a skipped row; name it and say why, for the first few."""
        self.skipped += 1
        if len(self.notes) < MAX_NOTES:
            self.notes.append('%s: %s' % (what, why))


def batches(cursor, size):
    """The rows of `cursor`, `size` at a time."""
    rows = iter(cursor)
    while batch := list(islice(rows, size)):
        yield batch


class Importer:
    """One run: source, target, what was done."""

    def __init__(self, source, dry_run, batch_size, target_ready):
        self.source, self.dry_run = source, dry_run
        self.batch_size, self.target_ready = batch_size, target_ready
        self.legacy_ids = set()    # every user id the legacy database holds
        self.user_ids = set()      # those that are the same user in the target
        self.names = {}            # legacy name -> the first id that has it
        self.users, self.follows, self.messages = (
            Tally('users'), Tally('follows'), Tally('messages'))

    def transaction(self):
        """One batch's check and write, atomic; nothing in a dry run."""
        return contextlib.nullcontext() if self.dry_run else db.atomic()

    def target(self, query):
        """Rows of a query on the target; none when it has no tables yet."""
        return query.tuples() if self.target_ready else []

    def source_batches(self, label, total, sql):
        """The rows of `sql` on the legacy database, a batch at a time,
        with a progress bar of `total` rows."""
        progress = Progress(label, total)
        for batch in batches(self.source.execute(sql), self.batch_size):
            yield batch
            progress.add(len(batch))

    def write(self, tally, fields, new):
        """Insert the `new` rows (unless this is a dry run); count them."""
        if new and not self.dry_run:
            database.insert_many(fields, new)
        tally.added += len(new)

    def copy_users(self, total):
        """Bring the users across: those whose id and name are free, or
        already theirs in the target."""
        tally = self.users
        for batch in self.source_batches(
                'users', total, 'SELECT user_id, username, email, pw_hash '
                'FROM user ORDER BY user_id'):
            ids = [row[0] for row in batch]
            names = [row[1] for row in batch if isinstance(row[1], str)]
            self.legacy_ids.update(ids)
            new = []
            with self.transaction():
                found = list(self.target(
                    User.select(User.user_id, User.username, User.email)
                    .where(User.user_id.in_(ids) | User.username.in_(names))))
                by_id = {row[0]: row[1:] for row in found}
                by_name = {row[1]: row[0] for row in found}
                for user_id, username, email, pw_hash in batch:
                    what = 'user %r (id %s)' % (username, user_id)
                    problem = user_problem(user_id, username, email, pw_hash)
                    if problem:
                        tally.skip(what, problem)
                    elif username in self.names:
                        tally.skip(what, 'legacy user %d has the same name'
                                   % self.names[username])
                    elif by_id.get(user_id) == (username, email):
                        self.names[username] = user_id
                        self.user_ids.add(user_id)
                        tally.present += 1
                    elif user_id in by_id:
                        tally.skip(what, 'the target gives id %d to a different '
                                   'user, %r' % (user_id, by_id[user_id][0]))
                    elif username in by_name:
                        tally.skip(what, 'the target has a different user of '
                                   'that name (id %d)' % by_name[username])
                    else:
                        self.names[username] = user_id
                        self.user_ids.add(user_id)
                        new.append((user_id, username, email, pw_hash))
                self.write(tally, (User.user_id, User.username, User.email,
                                   User.pw_hash), new)

    def missing_user(self, user_id):
        """Why a row that points at `user_id` cannot come across, or None."""
        if user_id in self.user_ids:
            return None
        if user_id in self.legacy_ids:
            return 'user %s was not imported (see users)' % user_id
        return 'orphan: there is no user %s' % (user_id,)

    def copy_follows(self, total):
        """Bring each followed pair across once, between users that came
        across."""
        tally = self.follows
        # One row per pair, in the order each pair was first followed: the
        # order MiniTwit lists follows in.
        for batch in self.source_batches(
                'follows', total, 'SELECT who_id, whom_id, count(*) FROM '
                'follower GROUP BY who_id, whom_id ORDER BY min(rowid)'):
            whos = {row[0] for row in batch if row[0] in self.user_ids}
            new = []
            with self.transaction():
                found = set(self.target(
                    Follower.select(Follower.who, Follower.whom)
                    .where(Follower.who.in_(list(whos)))))
                for who, whom, count in batch:
                    tally.collapsed += count - 1
                    problem = self.missing_user(who) or self.missing_user(whom)
                    if problem:
                        tally.skip('follow %s -> %s' % (who, whom), problem)
                    elif (who, whom) in found:
                        tally.present += 1
                    else:
                        new.append((who, whom))
                self.write(tally, (Follower.who, Follower.whom), new)

    def copy_messages(self, total):
        """Bring the messages of users that came across, flags and all."""
        tally = self.messages
        for batch in self.source_batches(
                'messages', total, 'SELECT message_id, author_id, text, '
                'pub_date, flagged FROM message ORDER BY message_id'):
            new = []
            with self.transaction():
                found = {row[0]: row[1:] for row in self.target(
                    Message.select(Message.message_id, Message.author,
                                   Message.text, Message.pub_date)
                    .where(Message.message_id.between(batch[0][0],
                                                      batch[-1][0])))}
                for message_id, author_id, text, pub_date, flagged in batch:
                    what = 'message %s' % message_id
                    problem = (message_problem(message_id, text, pub_date) or
                               self.missing_user(author_id))
                    if problem:
                        tally.skip(what, problem)
                    elif found.get(message_id) == (author_id, text, pub_date):
                        # Moderation since an earlier run stays as it is.
                        tally.present += 1
                    elif message_id in found:
                        tally.skip(what, 'the target has a different message '
                                   'with that id')
                    else:
                        # The original showed only `flagged = 0`: anything
                        # else, NULL too, was hidden, and stays hidden.
                        new.append((message_id, author_id, text, pub_date,
                                    flagged != 0))
                self.write(tally, (Message.message_id, Message.author,
                                   Message.text, Message.pub_date,
                                   Message.flagged), new)

    def run(self, users, pairs, messages):
        """Users first: the follows and messages check theirs. The
        arguments are the legacy database's counts, for the progress bars."""
        self.copy_users(users)
        self.copy_follows(pairs)
        self.copy_messages(messages)
        return self.users, self.follows, self.messages


# --- the command -------------------------------------------------------------

def source_counts(source):
    """(users, follower rows, distinct pairs, messages) of the legacy DB."""
    return source.execute(
        'SELECT (SELECT count(*) FROM user), (SELECT count(*) FROM follower), '
        '(SELECT count(*) FROM (SELECT DISTINCT who_id, whom_id FROM '
        'follower)), (SELECT count(*) FROM message)').fetchone()


def target_counts(ready):
    """(users, follows, messages) in the target."""
    if not ready:
        return 0, 0, 0
    return tuple(model.select().count() for model in (User, Follower, Message))


def target_has_tables(target):
    """Whether the target exists and has MiniTwit's tables, without creating
    either (a dry run writes nothing, not even a file or a table)."""
    if not database.is_mysql() and not os.path.exists(target.database):
        return False
    return all(target.table_exists(model._meta.table_name)
               for model in (User, Follower, Message))


def n(number):
    """A count as people read it: 11,306."""
    return format(number, ',')


def import_legacy(path, dry_run=False, batch_size=DEFAULT_BATCH,
                  out=sys.stdout):
    """Import the legacy SQLite database at `path` into the configured
    database; print what happened; return the tallies."""
    source = open_legacy(path)
    try:
        target = db.obj
        if dry_run:
            ready = target_has_tables(target)
            context = db.connection_context() if ready else \
                contextlib.nullcontext()
        else:
            ready, context = True, database.connection()
        with context:
            if not dry_run and not database.is_mysql():
                # The indexes of a million messages outgrow SQLite's default
                # 2 MB page cache: with 64 MB, importing them took 7 s of
                # system time instead of 16.
                db.execute_sql('PRAGMA cache_size = -65536')
            users, rows, pairs, messages = source_counts(source)
            print('legacy:        %s users, %s follower rows (%s pairs), %s '
                  'messages' % (n(users), n(rows), n(pairs), n(messages)),
                  file=out)
            before = target_counts(ready)
            print('target before: %s users, %s follows, %s messages%s' % (
                *map(n, before), '' if ready else ' (no tables yet)'),
                file=out)
            tallies = Importer(source, dry_run, batch_size, ready).run(
                users, pairs, messages)
            after = target_counts(ready) if not dry_run else tuple(
                count + tally.added
                for count, tally in zip(before, tallies, strict=True))
    finally:
        source.close()
    report(tallies, after, dry_run, out)
    return tallies


def report(tallies, after, dry_run, out):
    """What became of each table's rows, and then which were skipped why."""
    verb = 'would add' if dry_run else 'added'
    for tally in tallies:
        print('%-9s %s %s, %s already there, %s skipped%s' % (
            tally.name + ':', verb, n(tally.added), n(tally.present),
            n(tally.skipped), ', %s repeated follower rows collapsed'
            % n(tally.collapsed) if tally.name == 'follows' else ''),
            file=out)
    print('target %s %s users, %s follows, %s messages' % (
        'would then hold:' if dry_run else 'after: ', *map(n, after)),
        file=out)
    for tally in tallies:
        for note in tally.notes:
            print('skipped %s' % note, file=sys.stderr)
        if tally.skipped > len(tally.notes):
            print('... and %s more %s skipped' % (
                n(tally.skipped - len(tally.notes)), tally.name),
                file=sys.stderr)


def batch_size(text):
    """The --batch-size argument, or a clear error."""
    if not re.fullmatch('[0-9]{1,9}', text) or \
            not 1 <= int(text) <= MAX_BATCH:
        raise argparse.ArgumentTypeError('%r is not a whole number from 1 to '
                                         '%d' % (text, MAX_BATCH))
    return int(text)


def main(argv=None):
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog='import_legacy.py', description=__doc__.split('\n\n')[0],
        epilog='The target is DATABASE_URL (default %s).'
        % database.DEFAULT_DATABASE_URL)
    parser.add_argument('legacy', metavar='LEGACY',
                        help="the original's SQLite database, or a MySQL dump "
                        "of it (.sql)")
    parser.add_argument('--dry-run', action='store_true',
                        help='report what the import would do; write nothing')
    parser.add_argument('--batch-size', type=batch_size, default=DEFAULT_BATCH,
                        metavar='N', help='rows per transaction (default %d)'
                        % DEFAULT_BATCH)
    parser.add_argument('--to-sqlite', metavar='FILE',
                        help='only convert the dump LEGACY into the '
                        "original's SQLite database FILE")
    args = parser.parse_args(argv)
    try:
        if not os.path.isfile(args.legacy):
            raise LegacyError('%s is not a file' % args.legacy)
        if args.to_sqlite:
            if is_sqlite_file(args.legacy):
                raise LegacyError('%s is an SQLite database already'
                                  % args.legacy)
            counts = convert_dump(args.legacy, args.to_sqlite)
            print('%s: %s' % (args.to_sqlite, ', '.join(
                '%s %s rows' % (n(counts.get(table, 0)), table)
                for table in LEGACY_COLUMNS)))
            return 0
        database.configure()
        with tempfile.TemporaryDirectory(prefix='minitwit-legacy-') as tmp:
            path = args.legacy
            if not is_sqlite_file(path):
                path = os.path.join(tmp, 'legacy.db')
                convert_dump(args.legacy, path)
            tallies = import_legacy(path, args.dry_run, args.batch_size)
    except (LegacyError, OSError, ValueError) as error:
        parser.error(str(error))
    except sqlite3.Error as error:
        parser.error('%s cannot be read: %s' % (args.legacy, error))
    except peewee.IntegrityError as error:
        print('import_legacy.py: the target changed while importing (%s); '
              'run the import again' % error, file=sys.stderr)
        return 1
    except peewee.DatabaseError as error:
        print('import_legacy.py: the target database failed: %s' % error,
              file=sys.stderr)
        return 1
    return 1 if any(tally.skipped for tally in tallies) else 0


if __name__ == '__main__':
    sys.exit(main())
