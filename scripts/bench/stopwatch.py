"""A stopwatch around any WSGI app and its MySQL driver, for
scripts/bench/profile_api.py (never served otherwise).

    STOPWATCH_APP=sim_api:app waitress-serve bench.stopwatch:app

Per request it notes the route, the wall time inside the app, and every
call into the MySQL driver that goes to the server: the SQL it sent, and
how long the driver took. GET /__profile answers all of that as JSON (and
forgets it). PyMySQL and mysqlclient are timed, whichever the app uses.
STOPWATCH_ROOT puts another checkout first on the path (to time the
release before, say).
"""
import importlib
import json
import os
import sys
import threading
import time

if os.environ.get('STOPWATCH_ROOT'):
    sys.path.insert(0, os.environ['STOPWATCH_ROOT'])

_local = threading.local()
_records = []
_lock = threading.Lock()


def _timed(cls, name, sends, label=None):
    """Wrap cls.name: its time counts as the driver's; `sends` calls are
    round trips, noted with the SQL they carry (or `label`)."""
    original = getattr(cls, name)

    def timed(self, *args, **kwargs):
        record = getattr(_local, 'record', None)
        if record is None:
            return original(self, *args, **kwargs)
        started = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            record['driver'] += time.perf_counter() - started
            if sends:
                sql = label or args[0]
                record['sent'].append(sql.decode('utf-8', 'replace')
                                      if isinstance(sql, bytes) else str(sql))
    setattr(cls, name, timed)


# What each driver's connection does that reaches the server: (method, a
# round trip?, what to note instead of its SQL).
TIMED = (('query', True, None), ('next_result', False, None),
         ('store_result', False, None), ('ping', True, 'PING'),
         ('commit', True, 'COMMIT'), ('rollback', True, 'ROLLBACK'))


def _instrument():
    for module in ('pymysql.connections', 'MySQLdb.connections'):
        try:
            connection = importlib.import_module(module).Connection
        except ImportError:
            continue
        for name, sends, label in TIMED:
            if hasattr(connection, name):
                _timed(connection, name, sends, label)


_instrument()
_module, _, _name = os.environ['STOPWATCH_APP'].partition(':')
_app = getattr(importlib.import_module(_module), _name)


def app(environ, start_response):
    if environ['PATH_INFO'] == '/__profile':
        with _lock:
            body = json.dumps(_records).encode()
            _records.clear()
        start_response('200 OK', [('Content-Type', 'application/json'),
                                  ('Content-Length', str(len(body)))])
        return [body]
    record = _local.record = {'driver': 0.0, 'sent': []}
    started = time.perf_counter()
    try:
        return _app(environ, start_response)
    finally:
        record['app'] = time.perf_counter() - started
        route = environ.get('bottle.route')
        record['endpoint'] = '%s %s' % (environ['REQUEST_METHOD'],
                                        route.rule if route else '?')
        _local.record = None
        with _lock:
            _records.append(record)
