"""What MiniTwit shows its operators: Prometheus metrics and an access log.

`install(app, name)` instruments a Bottle app, the simulator API ('api') or
the web UI ('web'):

- every request is counted by route and status, timed in a histogram by
  route, and, when it is refused (4xx/5xx), counted by cause;
- every request writes one JSON line to stdout (journald keeps and rotates
  it): time, app, method, route, status, duration_ms and request_id;
- every answer carries X-Request-Id: the caller's own when it is sane (nginx
  can pass its $request_id), otherwise a new one;
- GET /metrics answers in Prometheus's text format, with the users,
  messages, follows and the simulator's `latest` read from the database.

Under several processes (PROMETHEUS_MULTIPROC_DIR set, one empty directory
per app, emptied when the app starts) each process writes its samples to
that directory and /metrics adds up all of them.
"""
import itertools
import json
import logging
import os
import re
import secrets
import sys
import threading
import time

from bottle import HTTPResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

import database
import models

REQUESTS = Counter('minitwit_http_requests', 'HTTP requests answered',
                   ('app', 'method', 'route', 'status'))
# 0.3 s is the simulator's deadline: the alert on p99 needs it as a bucket.
LATENCY = Histogram('minitwit_http_request_duration_seconds',
                    'Time from request to answer', ('app', 'method', 'route'),
                    buckets=(.005, .01, .025, .05, .1, .2, .3, .5, 1, 2.5,
                             5, 10))
REJECTIONS = Counter('minitwit_rejections', 'Requests refused, by cause',
                     ('app', 'route', 'cause'))

# Why a request was refused, as its status says it: on a matched route,
# both apps' 404s all mean "there is no such user".
CAUSES = {400: 'invalid_request', 401: 'not_signed_in', 403: 'unauthorized',
          404: 'unknown_user', 405: 'method_not_allowed',
          413: 'body_too_large', 429: 'too_many_sign_ins', 500: 'server_error',
          503: 'database_unavailable'}
UNMATCHED = 'unmatched'
# Anything else a client sends as a method is one label, not a new series.
METHODS = {'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'}
REQUEST_ID = re.compile(r'[A-Za-z0-9._:-]{1,64}')
# New request ids: this process's random prefix and a count, unique without
# asking the system for randomness at every request.
PROCESS_ID = secrets.token_hex(6)
SEQUENCE = itertools.count(1)


class DatabaseCollector:
    """users, messages, follows and `latest`, read when /metrics is read.

    They live in the database that every process shares, so they are read
    there rather than kept per process: the counts from row_count, which
    schema.sql's triggers keep current (192 small rows, whatever the size
    of the tables), never by counting the tables.
    """

    COUNTS = (('minitwit_users', 'Registered users', 'users'),
              ('minitwit_messages', 'Messages, flagged ones included',
               'messages'),
              ('minitwit_follows', 'Follow relations', 'follows'))
    UP = ('minitwit_database_up', 'Whether the database answers')
    LATEST = ('minitwit_latest',
              "The simulator's latest processed action id (-1 before any)")
    SIZE = ('minitwit_database_cluster_size',
            'Nodes in the Galera cluster this process uses (1: one server)')
    NODE = ('minitwit_database_node_info', 'The database node this process '
            'uses, in the label node (always 1)')

    def describe(self):
        """The families collect() yields, without touching the database."""
        return [GaugeMetricFamily(name, doc) for name, doc in
                [self.UP, self.LATEST, self.SIZE, self.NODE] +
                [c[:2] for c in self.COUNTS]]

    def collect(self):
        """Yield the gauges; only database_up, 0, when it does not answer."""
        try:
            database.causal(False)
            with database.connection():
                totals = models.RowCount.totals()
                latest = models.Latest.get_value()
                status = database.status()
        except database.UNAVAILABLE_ERRORS:
            yield GaugeMetricFamily(*self.UP, value=0)
            return
        yield GaugeMetricFamily(*self.UP, value=1)
        for name, doc, table in self.COUNTS:
            yield GaugeMetricFamily(name, doc, value=totals.get(table, 0))
        yield GaugeMetricFamily(*self.LATEST, value=latest)
        yield GaugeMetricFamily(*self.SIZE, value=status.get('cluster_size', 1))
        node = GaugeMetricFamily(*self.NODE, labels=['node'])
        node.add_metric([status['node']], 1)
        yield node


DATABASE = DatabaseCollector()
REGISTRY.register(DATABASE)


def exposition():
    """This process's metrics, or every process's in multiprocess mode."""
    if os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(DATABASE)
    else:
        registry = REGISTRY
    return generate_latest(registry)


def metrics():
    """Prometheus's text format. Not for the public: nginx refuses it."""
    return HTTPResponse(exposition(), 200, content_type=CONTENT_TYPE_LATEST)


_log_lock = threading.Lock()
# One access-log line. Its strings are the app's name, a method of METHODS,
# a route rule (as JSON) and a request id that REQUEST_ID accepted: none
# needs escaping, so the line is formatted rather than JSON-encoded, which
# cost a simulator request a tenth of its Python.
LOG_LINE = ('{"time": "%s.%03dZ", "app": "%s", "method": "%s", "route": %s, '
            '"status": %d, "duration_ms": %.2f, "request_id": "%s"}\n')


def log_request(line):
    """Write one access-log line to stdout, whole, and flush it."""
    with _log_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def quiet_waitress_queue():
    """waitress logs a warning for every request that has to wait for a
    free thread: under load, thousands of lines a second, each written
    while holding the lock that every thread takes for its next request
    (a tenth of the API's time in `make loadtest`). Queueing shows in the
    latency histogram instead."""
    logging.getLogger('waitress.queue').setLevel(logging.ERROR)


class Instrumented:
    """WSGI middleware around a Bottle app's `wsgi`: it sees every answer,
    the ones Bottle makes itself (no such route, 405, 500) included."""

    def __init__(self, wsgi, name):
        self.wsgi = wsgi
        self.name = name
        # Each (method, route, status)'s metric children, looked up once:
        # prometheus_client's labels() is most of what a request cost here.
        self.children = {}

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request_id = environ.get('HTTP_X_REQUEST_ID', '')
        if not REQUEST_ID.fullmatch(request_id):
            request_id = '%s-%x' % (PROCESS_ID, next(SEQUENCE))
        environ['minitwit.request_id'] = request_id
        status = []

        def start(status_line, headers, exc_info=None):
            status[:] = [int(status_line[:3])]
            headers.append(('X-Request-Id', request_id))
            return start_response(status_line, headers, exc_info)

        try:
            return self.wsgi(environ, start)
        finally:
            self.observe(environ, status[0] if status else 500,
                         time.perf_counter() - started)

    def observe(self, environ, status, seconds):
        """Count, time and log one answered request."""
        route = environ.get('bottle.route')
        route = route.rule if route is not None else UNMATCHED
        method = environ.get('REQUEST_METHOD', '')
        method = method if method in METHODS else 'OTHER'
        key = (method, route, status)
        children = self.children.get(key)
        if children is None:
            children = self.children[key] = self.metric_children(*key)
        count, latency, rejection, route_json = children
        count.inc()
        latency.observe(seconds)
        if rejection is not None:
            rejection.inc()
        now = time.time()
        log_request(LOG_LINE % (
            time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now)),
            now % 1 * 1000, self.name, method, route_json, status,
            seconds * 1000, environ['minitwit.request_id']))

    def metric_children(self, method, route, status):
        """The counter, histogram and (for refusals) rejection children of
        one kind of request, and its route as the log writes it."""
        rejection = None
        if status >= 400:
            cause = CAUSES.get(status, 'http_%d' % status)
            if route == UNMATCHED and status == 404:
                cause = 'no_such_route'
            rejection = REJECTIONS.labels(self.name, route, cause)
        return (REQUESTS.labels(self.name, method, route, status),
                LATENCY.labels(self.name, method, route), rejection,
                json.dumps(route, ensure_ascii=False))


def install(app, name):
    """Serve /metrics on the Bottle `app` and instrument it as `name`."""
    quiet_waitress_queue()
    # skip=True: no plugin of the app's (credentials, a database
    # connection, `latest`) applies to the scrape.
    app.route('/metrics', 'GET', metrics, skip=True)
    # A Bottle app's __call__ hands each request to its `wsgi` method;
    # wrapping that, rather than the app, keeps `app` a Bottle that the
    # servers, the tests and the routes above all still use as before.
    app.wsgi = Instrumented(app.wsgi, name)
    return app
