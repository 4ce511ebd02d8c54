"""A stopwatch around any WSGI app and its MySQL driver, for profile_api.py.

    STOPWATCH_APP=sim_api:app [STOPWATCH_ROOT=CHECKOUT] waitress-serve scripts.bench.stopwatch:app

GET /__profile answers (and forgets) each request's time, and its driver calls' SQL and time.
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
    """Wrap cls.name: its time is the driver's; a `sends` call is a round trip,
    noted with its SQL (or `label`)."""
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
                record['sent'].append(
                    sql.decode('utf-8', 'replace') if isinstance(sql, bytes) else str(sql))
    setattr(cls, name, timed)


# (method, a round trip?, what to note instead of its SQL) of a connection's calls.
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
        _local.record = None
        with _lock:
            _records.append(record)
