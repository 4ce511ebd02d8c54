"""The SQL statements an app sends while a test watches, whichever path
they take: execute_sql (a cursor) or fetch_rows (a query's rows, which on
MySQL bypass the cursor and on SQLite call execute_sql)."""
import database


class StatementCounter:
    """Records each statement the app runs, once, while the test runs."""

    def __init__(self, monkeypatch):
        self.statements = []
        self.inside = False
        target = database.db.obj
        for name in ('execute_sql', 'fetch_rows'):
            monkeypatch.setattr(target, name, self.recorder(getattr(target, name)))

    def recorder(self, run):
        def record(sql, params=None, *args, **kwargs):
            if self.inside:  # fetch_rows calling execute_sql: counted already
                return run(sql, params, *args, **kwargs)
            self.statements.append(sql)
            self.inside = True
            try:
                return run(sql, params, *args, **kwargs)
            finally:
                self.inside = False
        return record
