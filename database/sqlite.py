"""SQLite, the embedded default: its settings, and a WAL checkpointer."""
import sqlite3
import threading
from urllib.parse import quote

from peewee import __exception_wrapper__
from playhouse.pool import PooledSqliteDatabase

# What a sqlite:/// URL may set in its query string.
OPTIONS = {'synchronous', 'max_connections', 'stale_timeout', 'timeout'}


def make(path, params):
    """A pooled SQLite database at `path`, with MiniTwit's settings."""
    options = dict(
        # WAL lets readers run beside the writer. With synchronous=NORMAL a
        # commit survives the process being killed, not a power cut;
        # ?synchronous=full in the URL buys that too, at ~0.8 ms a write.
        pragmas={'journal_mode': 'wal',
                 'synchronous': params.pop('synchronous', 'normal'),
                 'foreign_keys': 1, 'busy_timeout': 2000},
        # Take the write lock when a transaction starts, so two writers
        # queue on the busy timeout instead of one failing on upgrade.
        lock_type='IMMEDIATE',
        # Pooled connections move between waitress's threads.
        check_same_thread=False,
        max_connections=64, stale_timeout=3600)
    options.update(params)
    return SqlitePool(path, **options)


class SqlitePool(PooledSqliteDatabase):
    """peewee's SQLite pool, and a transaction of several statements."""

    def fetch_rows(self, sql, params):
        """The rows of one query."""
        return self.execute_sql(sql, params).fetchall()

    def run_transaction(self, statements):
        """Run (sql, params) statements in one transaction: the cursor of each."""
        with self.atomic():
            with __exception_wrapper__:
                return [self.execute_sql(sql, params) for sql, params in statements]


class WalCheckpointer(threading.Thread):
    """Copies SQLite's write-ahead log into the database file, 10 times a second.

    SQLite does it inside a commit, every 1000 pages: that made every ~250th
    simulator write wait ~15 ms. Done here, beside the requests (PASSIVE
    never blocks them), the checkpoint a commit still runs finds almost
    nothing left to copy.
    """

    def __init__(self, path, interval=0.1):
        super().__init__(name='sqlite-wal-checkpoint', daemon=True)
        self.path, self.interval = path, interval
        self.stopped = threading.Event()

    def run(self):
        conn = None
        while not self.stopped.wait(self.interval):
            try:
                if conn is None:
                    # mode=rw: creating the file is the apps' job, not this.
                    conn = sqlite3.connect('file:%s?mode=rw' % quote(self.path),
                                           uri=True, timeout=0,
                                           isolation_level=None)
                    # Otherwise a file this creates is not in WAL mode and
                    # the checkpoints below do nothing.
                    conn.execute('PRAGMA journal_mode=wal')
                conn.execute('PRAGMA wal_checkpoint(PASSIVE)')
            except sqlite3.Error:
                pass  # busy, or not created yet: next time
        if conn is not None:
            conn.close()

    def stop(self):
        self.stopped.set()
