"""@compiled: a model's query method whose SQL is built once per database.

Building a peewee query and compiling it to SQL costs 0.1-0.4 ms, several
times what running it costs (docs/benchmarks.md). A method decorated here
builds its query as any other, from its arguments, which are ints and
strings, all of them given. It is built once per database with a marker for
each argument, which shows where the SQL binds it, and checked against the
query built from the real ones; later calls only run that SQL with theirs.

A write returns its row count; a SELECT its rows, each an instance of the
query's model when it holds all its columns, else a namedtuple (a plain
tuple with `tuples=True`); with `one=True`, the first row or None.
"""
import functools
import weakref
from collections import namedtuple

from peewee import Select

import database


def compiled(build=None, *, one=False, tuples=False):
    if build is None:
        return functools.partial(compiled, one=one, tuples=tuples)
    return Compiled(build, one, tuples)


class Compiled:
    """Called, the method runs; .statement(...) is its (sql, params), for
    database.transaction."""

    def __init__(self, build, one, tuples):
        functools.update_wrapper(self, build)
        self.build, self.one, self.tuples = build, one, tuples
        self.plans = weakref.WeakKeyDictionary()  # database -> Plan

    def __set_name__(self, owner, name):
        self.model = owner

    def __get__(self, instance, owner=None):
        return self

    def plan(self, args):
        if not PLAIN.issuperset(map(type, args)):
            raise TypeError('%s takes ints and strings, not %r' % (self.__qualname__, args))
        plan = self.plans.get(database.db.obj)
        if plan is None:
            plan = self.plans[database.db.obj] = Plan(self, args)
        elif len(args) != plan.arity:
            raise TypeError('%s takes %d arguments' % (self.__qualname__, plan.arity))
        return plan

    def __call__(self, *args):
        rows = self.plan(args).run(database.db.obj, args)
        return (rows[0] if rows else None) if self.one else rows

    def statement(self, *args):
        plan = self.plan(args)
        return plan.sql, plan.params(args)


PLAIN = {int, str}


class Plan:
    """The SQL of a query, and where each parameter it binds comes from: an
    argument (its index) or the query itself (a constant)."""

    def __init__(self, method, args):
        self.arity = method.build.__code__.co_argcount - 1
        markers = [-(10 ** 15) - n if type(arg) is int else '\0%d' % n
                   for n, arg in enumerate(args)]
        query = method.build(method.model, *markers)
        self.sql, binds = query.sql()
        at = {(type(m), m): n for n, m in enumerate(markers)}
        self.slots = [(at.get((type(b), b)), b) for b in binds]
        # Most bind their arguments as they come: then nothing to rearrange.
        self.as_given = [n for n, _ in self.slots] == list(range(len(args)))
        if method.build(method.model, *args).sql() != (self.sql, self.params(args)):
            raise TypeError('%s builds a query from more than its arguments'
                            % method.build.__qualname__)
        self.model = getattr(query, 'model', None)
        self.select = isinstance(query, Select)
        self.row = tuple if method.tuples else None

    def params(self, args):
        if self.as_given:
            return list(args)
        return [value if n is None else args[n] for n, value in self.slots]

    def run(self, db, args):
        cursor = db.execute_sql(self.sql, self.params(args))
        if not self.select:
            return cursor.rowcount
        if self.row is None:
            names = [d[0] for d in cursor.description]
            if self.model and set(self.model._meta.columns) <= set(names):
                self.row = lambda row: self.model(**dict(zip(names, row, strict=True)))
            else:
                self.row = namedtuple('Row', names, rename=True)._make
        return list(map(self.row, cursor.fetchall()))
