"""The SQL statements an app sends while a test watches, through peewee's
query hooks: every statement, and on MySQL every one-packet transaction
(BEGIN; ...; COMMIT, database/mysql.py) as one."""
import database


class StatementCounter:
    """Records each statement the app sends while the test runs."""

    def __init__(self, monkeypatch):
        self.statements = []
        target = database.db.obj
        monkeypatch.setattr(target, 'query_hooks', target.query_hooks + [
            lambda event: self.statements.append(event.sql)])
