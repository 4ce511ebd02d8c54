"""Prometheus metrics and the access log of both apps. `install(app, name)` counts
and times every request by route and status (refusals by cause too), logs it to
stdout as a JSON line, answers with an X-Request-Id (the caller's when sane, else
a new one) and serves GET /metrics with the database's users, messages, follows
and `latest`; with PROMETHEUS_MULTIPROC_DIR set, every process's samples added up."""
import itertools
import json
import logging
import os
import re
import secrets
import sys
import threading
import time

import prometheus_client as prometheus
from bottle import HTTPResponse
from prometheus_client import CONTENT_TYPE_LATEST, multiprocess
from prometheus_client.core import GaugeMetricFamily

import database
import models

REQUESTS = prometheus.Counter('minitwit_http_requests', 'HTTP requests answered',
                              ('app', 'method', 'route', 'status'))
# 0.3 s is the simulator's deadline: the alert on p99 needs it as a bucket.
LATENCY = prometheus.Histogram(
    'minitwit_http_request_duration_seconds', 'Time from request to answer',
    ('app', 'method', 'route'), buckets=(.005, .01, .025, .05, .1, .2, .3, .5, 1, 2.5, 5, 10))
REJECTIONS = prometheus.Counter('minitwit_rejections', 'Requests refused, by cause',
                                ('app', 'route', 'cause'))
# On a matched route, both apps' 404s all mean "there is no such user".
CAUSES = {400: 'invalid_request', 401: 'not_signed_in', 403: 'unauthorized',
          404: 'unknown_user', 405: 'method_not_allowed', 413: 'body_too_large',
          429: 'too_many_sign_ins', 500: 'server_error', 503: 'database_unavailable'}
# Any other method a client sends is one label, not a new series.
METHODS = {'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'}
REQUEST_ID = re.compile(r'[A-Za-z0-9._:-]{1,64}')
# New request ids: a random prefix per process and a count, no randomness per request.
PROCESS_ID, SEQUENCE = secrets.token_hex(6), itertools.count(1)
# One access-log line: its strings need no escaping (REQUEST_ID and METHODS see to
# it), and formatting rather than JSON-encoding saved a tenth of a request's Python.
LOG_LINE = ('{"time": "%s.%03dZ", "app": "%s", "method": "%s", "route": %s, '
            '"status": %d, "duration_ms": %.2f, "request_id": "%s"}\n')
LOG_LOCK = threading.Lock()

GAUGES = {
    'minitwit_database_up': 'Whether the database answers',
    'minitwit_users': 'Registered users',
    'minitwit_messages': 'Messages, flagged ones included',
    'minitwit_follows': 'Follow relations',
    'minitwit_latest': "The simulator's latest processed action id (-1 before any)",
    'minitwit_database_cluster_size':
        'Nodes in the Galera cluster this process uses (1: one server)',
    'minitwit_database_node_info':
        'The database node this process uses, in the label node (always 1)',
}


def gauge(name, value=None, **kwargs):
    return GaugeMetricFamily(name, GAUGES[name], value=value, **kwargs)


class DatabaseCollector:
    """The gauges all processes share, read from the database at each scrape; the
    counts from row_count, which schema.sql's triggers keep (never counting tables)."""

    def describe(self):
        return [gauge(name) for name in GAUGES]

    def collect(self):
        try:
            database.causal(False)
            with database.connection():
                totals = models.RowCount.totals()
                latest = models.Latest.get_value()
                status = database.status()
        except database.UNAVAILABLE_ERRORS:
            yield gauge('minitwit_database_up', 0)
            return
        yield gauge('minitwit_database_up', 1)
        for table in ('users', 'messages', 'follows'):
            yield gauge('minitwit_' + table, totals.get(table, 0))
        yield gauge('minitwit_latest', latest)
        yield gauge('minitwit_database_cluster_size', status.get('cluster_size', 1))
        node = gauge('minitwit_database_node_info', labels=['node'])
        node.add_metric([status['node']], 1)
        yield node


DATABASE = DatabaseCollector()
prometheus.REGISTRY.register(DATABASE)


def metrics():
    """Prometheus's text format (all processes' in multiprocess mode); not public."""
    registry = prometheus.REGISTRY
    if os.environ.get('PROMETHEUS_MULTIPROC_DIR'):
        registry = prometheus.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        registry.register(DATABASE)
    return HTTPResponse(prometheus.generate_latest(registry), content_type=CONTENT_TYPE_LATEST)


class Instrumented:
    """WSGI middleware on a Bottle app's `wsgi`: it sees every answer, Bottle's own too."""

    def __init__(self, wsgi, name):
        self.wsgi, self.name = wsgi, name
        # Each (method, route, status)'s metric children, looked up once:
        # prometheus_client's labels() was most of what a request cost here.
        self.children = {}

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        request_id = environ.get('HTTP_X_REQUEST_ID', '')
        if not REQUEST_ID.fullmatch(request_id):
            request_id = '%s-%x' % (PROCESS_ID, next(SEQUENCE))
        status = [500]

        def start(status_line, headers, exc_info=None):
            status[0] = int(status_line[:3])
            headers.append(('X-Request-Id', request_id))
            return start_response(status_line, headers, exc_info)

        try:
            return self.wsgi(environ, start)
        finally:
            self.observe(environ, status[0], time.perf_counter() - started, request_id)

    def observe(self, environ, status, seconds, request_id):
        """Count, time and log one answered request."""
        route = environ.get('bottle.route')
        route = 'unmatched' if route is None else route.rule
        method = environ.get('REQUEST_METHOD', '')
        method = method if method in METHODS else 'OTHER'
        key = (method, route, status)
        if key not in self.children:
            self.children[key] = self.metric_children(*key)
        count, latency, rejection, route_json = self.children[key]
        count.inc()
        latency.observe(seconds)
        if rejection is not None:
            rejection.inc()
        now = time.time()
        line = LOG_LINE % (time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now)),
                           now % 1 * 1000, self.name, method, route_json, status,
                           seconds * 1000, request_id)
        with LOG_LOCK:  # one whole line at a time
            sys.stdout.write(line)
            sys.stdout.flush()

    def metric_children(self, method, route, status):
        """The counter, histogram and rejection (if refused) children, and the route as JSON."""
        rejection = None
        if status >= 400:
            cause = CAUSES.get(status, 'http_%d' % status)
            if route == 'unmatched' and status == 404:
                cause = 'no_such_route'
            rejection = REJECTIONS.labels(self.name, route, cause)
        return (REQUESTS.labels(self.name, method, route, status),
                LATENCY.labels(self.name, method, route), rejection,
                json.dumps(route, ensure_ascii=False))


def install(app, name):
    """Serve /metrics on the Bottle `app` and instrument it as `name`."""
    # waitress logs every request that waits for a thread: under load, in a lock
    # every thread takes, a tenth of the API's time. The histogram shows queueing.
    logging.getLogger('waitress.queue').setLevel(logging.ERROR)
    # skip=True: no plugin of the app's (credentials, a connection) applies.
    app.route('/metrics', 'GET', metrics, skip=True)
    # Wrapping its `wsgi`, `app` stays the Bottle that servers and tests use.
    app.wsgi = Instrumented(app.wsgi, name)
    return app
