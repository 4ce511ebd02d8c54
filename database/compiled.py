"""@compiled: a model's query method whose SQL is built once per database.

Building a peewee query and compiling it to SQL costs 0.1-0.4 ms, several
times what running it costs: a third of a simulator request's time on
SQLite (docs/benchmarks.md). A method decorated here builds its query as
any other (plain peewee, from its arguments), once per database and shape:
it is built with a marker for each argument, which shows where the SQL
binds each one, and checked against the query built from the real ones.
Later calls only run that SQL with their own arguments.

So the query may depend on its arguments only as values to bind, and on
which of them are None; arguments are ints, strings, None, or tuples of
these. It returns the row count of a write, the rows of a SELECT: each an
instance of the query's model when it holds all its columns, else a
namedtuple; with `one=True`, the first row or None.
"""
import functools
import weakref
from collections import namedtuple

from peewee import Select

import database


def compiled(build=None, *, one=False, tuples=False):
    """The decorator; `one`: the first row, or None; `tuples`: rows as plain
    tuples (the API's lists: a namedtuple a row cost /msgs a tenth)."""
    if build is None:
        return functools.partial(compiled, one=one, tuples=tuples)
    return Compiled(build, one, tuples)


class Compiled:
    """A compiled query method of the class it is defined in: called, it
    runs; .statement(...) is its (sql, params), for database.transaction."""

    def __init__(self, build, one, tuples):
        functools.update_wrapper(self, build)
        self.build, self.one, self.tuples = build, one, tuples
        # Positional arguments only, the defaults filled in here: binding
        # them through inspect cost a request 5% of its time.
        self.arity = build.__code__.co_argcount - 1
        self.defaults = build.__defaults__ or ()
        self.plans = weakref.WeakKeyDictionary()  # database -> {shape: Plan}
        self.last = (None, None)  # the last database, and its plans

    def __set_name__(self, owner, name):
        self.model = owner

    def __get__(self, instance, owner=None):
        return self

    def plan(self, args):
        """The Plan of these arguments' shape, and their values."""
        if len(args) != self.arity:
            missing = self.arity - len(args)
            if not 0 < missing <= len(self.defaults):
                raise TypeError('%s takes %d arguments' % (self.__qualname__,
                                                           self.arity))
            args += self.defaults[-missing:]
        shape = tuple(map(type, args))
        if PLAIN.issuperset(shape):  # the usual case: nothing to flatten
            values = args
        else:
            values = []
            shape = flatten(args, values)
        obj = database.db.obj
        last, plans = self.last
        if obj is not last:
            plans = self.plans.setdefault(obj, {})
            self.last = (obj, plans)
        plan = plans.get(shape)
        if plan is None:
            plan = plans[shape] = Plan(self.build, self.model, args, values, self.tuples)
        return plan, values

    def __call__(self, *args):
        plan, values = self.plan(args)
        rows = plan.run(database.db.obj, values)
        return (rows[0] if rows else None) if self.one else rows

    def statement(self, *args):
        plan, values = self.plan(args)
        return plan.sql, plan.params(values)


PLAIN = {int, str}


def flatten(args, values):
    """Append the ints and strings of `args` to `values`; their shape."""
    shape = []
    for arg in args:
        if isinstance(arg, tuple):
            shape.append(flatten(arg, values))
        elif arg is None:
            shape.append(None)
        elif type(arg) in (int, str):
            values.append(arg)
            shape.append(type(arg))
        else:
            raise TypeError('a compiled query takes ints, strings, None and '
                            'tuples of them, not %r' % (arg,))
    return tuple(shape)


def marked(args, markers):
    """`args` with each int and string replaced by a marker of its type."""
    def marker(arg):
        n = len(markers)
        markers.append(-(10 ** 15) - n if type(arg) is int else '\0%d' % n)
        return markers[-1]
    return tuple(marked(a, markers) if isinstance(a, tuple) else
                 a if a is None else marker(a) for a in args)


class Plan:
    """The SQL of one shape of a query, and where each parameter it binds
    comes from: an argument (its index) or the query itself (a constant)."""

    def __init__(self, build, cls, args, values, tuples):
        markers = []
        query = build(cls, *marked(args, markers))
        self.sql, binds = query.sql()
        at = {(type(m), m): n for n, m in enumerate(markers)}
        self.slots = [(at[type(b), b], None) if (type(b), b) in at else
                      (None, b) for b in binds]
        # Most bind their arguments as they come: then no rearranging.
        self.as_given = self.slots == [(n, None) for n in range(len(values))]
        sql, binds = build(cls, *args).sql()
        if (sql, list(binds)) != (self.sql, list(self.params(values))):
            raise TypeError('%s builds a query from more than its arguments'
                            % build.__qualname__)
        self.model = getattr(query, 'model', None)
        self.select = isinstance(query, Select)
        self.row = tuple if tuples else None

    def params(self, values):
        if self.as_given:
            return values
        return [value if n is None else values[n] for n, value in self.slots]

    def run(self, db, values):
        cursor = db.execute_sql(self.sql, self.params(values))
        if not self.select:
            return cursor.rowcount
        if self.row is None:
            names = [d[0] for d in cursor.description]
            if self.model and set(self.model._meta.columns) <= set(names):
                self.row = lambda row: self.model(**dict(zip(names, row, strict=True)))
            else:
                self.row = namedtuple('Row', names, rename=True)._make
        return list(map(self.row, cursor.fetchall()))
