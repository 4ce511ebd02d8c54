"""schema.sql, as statements to run one by one, and what a MySQL database
has of it already."""
import os
import re

PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                    'schema.sql')
CREATES = re.compile(r'CREATE (?:UNIQUE )?(TABLE|INDEX|TRIGGER|VIEW) IF NOT EXISTS (\w+)')
CATALOGUE = (
    ('TABLE', 'SELECT table_name FROM information_schema.tables '
              'WHERE table_schema = DATABASE()'),
    ('INDEX', 'SELECT index_name FROM information_schema.statistics '
              'WHERE table_schema = DATABASE()'),
    ('TRIGGER', 'SELECT trigger_name FROM information_schema.triggers '
                'WHERE trigger_schema = DATABASE()'))


def statements(path=PATH):
    """The statements of schema.sql, without its comments. A statement
    ends with a line ending in ';', a trigger at the line 'END;'."""
    found, lines = [], []
    with open(path, encoding='utf-8') as f:
        for line in f:
            if line.lstrip().startswith('--') or not (line.strip() or lines):
                continue
            lines.append(line.rstrip())
            trigger = lines[0].startswith('CREATE TRIGGER')
            if (lines[-1] == 'END;') if trigger else lines[-1].endswith(';'):
                found.append('\n'.join(lines)[:-1].strip())
                lines = []
    if lines:
        raise ValueError('%s ends inside a statement: %s' % (path, lines[0]))
    return found


def existing(db):
    """{(kind, name)} of what the MySQL database `db` has. On Galera every
    DDL statement, even a CREATE ... IF NOT EXISTS that changes nothing,
    stalls the cluster's writes, and a CREATE TRIGGER on a table other
    nodes are writing to can hang a node: what exists is not sent."""
    found = set()
    for kind, query in CATALOGUE:
        for (name,) in db.execute_sql(query).fetchall():
            found.add((kind, name))
            if kind == 'TABLE':
                found.add(('VIEW', name))
    return found
