"""What operators see: the access log, X-Request-Id, /metrics (one process
and several), and the monitoring/ files that read them."""
import json
import os
import re
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from serving import ROOT, free_port, in_threads, wait_until
from sim_client import AUTH, path, post, register, tweet
from statement_log import StatementCounter
from ui_client import browser

import minitwit

MONITORING = os.path.join(ROOT, 'monitoring')
LOG_FIELDS = {'time', 'app', 'method', 'route', 'status', 'duration_ms',
              'request_id'}

# A request id this process made: its random prefix, a count.
NEW_ID = '[0-9a-f]{12}-[0-9a-f]+'


def samples(text):
    """{(name, ((label, value), ...)): value} of a Prometheus text page."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples}


def value(scraped, name, **labels):
    return scraped.get((name, tuple(sorted(labels.items()))), 0)


def grew(before, after, name, **labels):
    """How much a sample grew between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


def scrape(api):
    answer = api.get('/metrics')
    assert answer.content_type == 'text/plain'
    return samples(answer.text)


def log_lines(text):
    """The access-log records among a process's output lines."""
    records = []
    for line in text.splitlines():
        if line.startswith('{'):
            records.append(json.loads(line))
    return records


# --- the access log and request ids ------------------------------------------

def test_every_request_writes_one_json_line(api, capsys):
    capsys.readouterr()
    register(api, 'ann')
    tweet(api, 'ann', 'hello')
    api.get(path('msgs', 'ann'), headers=AUTH)
    api.get('/nowhere', status=404)
    records = log_lines(capsys.readouterr().out)
    assert [(r['method'], r['route'], r['status']) for r in records] == [
        ('POST', '/register', 204),
        ('POST', '/msgs/<username:path>', 204),
        ('GET', '/msgs/<username:path>', 200),
        ('GET', 'unmatched', 404)]
    for record in records:
        assert set(record) == LOG_FIELDS
        assert record['app'] == 'api'
        assert record['time'].endswith('Z')
        assert isinstance(record['duration_ms'], float)
        assert record['duration_ms'] >= 0


def test_the_request_id_is_returned_and_logged(api, capsys):
    capsys.readouterr()
    fresh = [api.get('/latest').headers['X-Request-Id'] for _ in range(2)]
    assert all(re.fullmatch(NEW_ID, i) for i in fresh)
    assert fresh[0] != fresh[1]
    # nginx's $request_id, or any other sane one, is kept ...
    kept = api.get('/latest', headers={'X-Request-Id': 'abc-123.x:y'})
    assert kept.headers['X-Request-Id'] == 'abc-123.x:y'
    # ... anything else is replaced, never echoed.
    for bad in ['', 'a' * 65, 'no spaces', '<script>', 'é']:
        answer = api.get('/latest', headers={'X-Request-Id': bad})
        assert re.fullmatch(NEW_ID, answer.headers['X-Request-Id'])
    logged = [r['request_id'] for r in log_lines(capsys.readouterr().out)]
    assert logged[:3] == fresh + ['abc-123.x:y']


def test_errors_bottle_makes_itself_are_logged_and_carry_an_id(api, capsys):
    capsys.readouterr()
    answer = api.delete('/msgs', headers=AUTH, status=405)
    assert answer.headers['X-Request-Id']
    [record] = log_lines(capsys.readouterr().out)
    # No route answers DELETE: the router refuses it before any view.
    assert (record['method'], record['route'], record['status']) == \
        ('DELETE', 'unmatched', 405)
    assert record['request_id'] == answer.headers['X-Request-Id']


# --- /metrics ------------------------------------------------------------------

def test_requests_are_counted_by_route_and_status(api):
    before = scrape(api)
    register(api, 'ann')
    for _ in range(3):
        api.get('/msgs', headers=AUTH)
    api.get('/msgs', status=403)
    after = scrape(api)

    assert grew(before, after, 'minitwit_http_requests_total', app='api', method='GET',
                route='/msgs', status='200') == 3
    assert grew(before, after, 'minitwit_http_requests_total', app='api', method='GET',
                route='/msgs', status='403') == 1
    assert grew(before, after, 'minitwit_http_requests_total', app='api', method='POST',
                route='/register', status='204') == 1
    assert grew(before, after, 'minitwit_http_request_duration_seconds_count', app='api',
                method='GET', route='/msgs') == 4
    # Every request is in the +Inf bucket; the 0.3 s bucket is there for
    # the alert on the simulator's deadline.
    assert grew(before, after, 'minitwit_http_request_duration_seconds_bucket', app='api',
                method='GET', route='/msgs', le='+Inf') == 4
    assert ('minitwit_http_request_duration_seconds_bucket',
            (('app', 'api'), ('le', '0.3'), ('method', 'GET'),
             ('route', '/msgs'))) in after


def test_rejections_are_counted_by_cause(api):
    before = scrape(api)
    register(api, 'ann')
    register(api, 'ann')  # taken
    tweet(api, 'nobody', 'hi')
    api.get('/msgs', status=403)
    post(api, '/msgs/ann', {'content': 'x' * 100_000})
    api.get('/nowhere', status=404)
    after = scrape(api)
    causes = {('/register', 'invalid_request'): 1,
              ('/msgs/<username:path>', 'unknown_user'): 1,
              ('/msgs', 'unauthorized'): 1,
              ('/msgs/<username:path>', 'body_too_large'): 1,
              ('unmatched', 'no_such_route'): 1}
    for (route, cause), count in causes.items():
        labels = dict(app='api', route=route, cause=cause)
        assert value(after, 'minitwit_rejections_total', **labels) - \
            value(before, 'minitwit_rejections_total', **labels) == count


def test_metrics_show_users_messages_follows_and_latest(api):
    for n, name in enumerate(['ann', 'bob', 'cat'], 1):
        register(api, name, latest=n)
    tweet(api, 'ann', 'one')
    tweet(api, 'bob', 'two', latest=7)
    post(api, path('fllws', 'ann'), {'follow': 'bob'})
    post(api, path('fllws', 'cat'), {'follow': 'bob'})
    scraped = scrape(api)
    assert value(scraped, 'minitwit_database_up') == 1
    assert value(scraped, 'minitwit_users') == 3
    assert value(scraped, 'minitwit_messages') == 2
    assert value(scraped, 'minitwit_follows') == 2
    assert value(scraped, 'minitwit_latest') == 7


def test_a_scrape_reads_no_table_whose_size_grows(api, monkeypatch):
    """The same few statements at 10 rows and at 10 million: none of them
    reads user, message or follower."""
    register(api, 'ann')
    counter = StatementCounter(monkeypatch)
    assert value(scrape(api), 'minitwit_users') == 1
    assert len(counter.statements) == 2
    for sql in counter.statements:
        assert not re.search(r'\b(user|message|follower)\b', sql.replace(
            '"', ' ').replace('`', ' ')), sql


def test_metrics_need_no_credentials_and_leave_latest_alone(api):
    register(api, 'ann', latest=3)
    api.get('/metrics?latest=99')
    assert api.get('/latest').json == {'latest': 3}


def test_metrics_answer_when_the_database_is_down(start_server):
    port = free_port()  # nothing listens there
    server = start_server('sim_api:app', 'mysql://root@127.0.0.1:%d/x' % port,
                          wait=False)
    answers = []

    def scrape_live():
        try:
            with urllib.request.urlopen(server.url + '/metrics') as answer:
                answers.append(answer.read().decode())
        except OSError:
            return False  # not listening yet
        return True

    wait_until(scrape_live, 'the API to start without its database')
    scraped = samples(answers[0])
    assert value(scraped, 'minitwit_database_up') == 0
    assert ('minitwit_users', ()) not in scraped


@pytest.mark.slow
def test_several_processes_add_up_in_multiprocess_mode(
        tmp_path, make_db_url, start_server):
    """Two processes of one app share PROMETHEUS_MULTIPROC_DIR: either one's
    /metrics counts the requests both served. Their logs go to stdout."""
    env = {'PROMETHEUS_MULTIPROC_DIR': str(tmp_path)}
    url = make_db_url()
    servers = [start_server('sim_api:app', url, env=env) for _ in range(2)]
    for server, count in zip(servers, (2, 3), strict=True):
        for _ in range(count):
            urllib.request.urlopen(server.url + '/latest').close()
    for server in servers:
        with urllib.request.urlopen(server.url + '/metrics') as answer:
            scraped = samples(answer.read().decode())
        assert value(scraped, 'minitwit_http_requests_total', app='api',
                     method='GET', route='/latest', status='200') == 5
    for server, count in zip(servers, (2, 3), strict=True):
        routes = [r['route'] for r in log_lines(server.output())]
        assert routes.count('/latest') == count


@pytest.mark.slow
@pytest.mark.parametrize('app', ['sim_api:app', 'minitwit:app'])
def test_requests_waiting_for_a_thread_are_not_logged_one_by_one(
        app, make_db_url, start_server):
    """waitress warns of every request that waits for a free thread: under
    load, a line per request. The apps keep those out of their logs."""
    server = start_server(app, make_db_url(), args=['--threads=1'])
    logged = len(log_lines(server.output()))  # the start's /healthz
    answers = []

    def client(_):
        for _ in range(10):
            with urllib.request.urlopen(server.url + '/healthz') as answer:
                answers.append(answer.status)
    in_threads(client, 8, timeout=30)
    assert answers == [200] * 80
    assert len(log_lines(server.output())) == logged + 80
    assert 'Task queue depth' not in server.output()


# --- monitoring/ -----------------------------------------------------------------

def load_yaml(name):
    with open(os.path.join(MONITORING, name), encoding='utf-8') as f:
        return yaml.safe_load(f)


def dashboard():
    with open(os.path.join(MONITORING, 'grafana-dashboard.json'),
              encoding='utf-8') as f:
        return json.load(f)


def expressions():
    """Every PromQL expression of the alerts and the dashboard."""
    exprs = [rule['expr'] for group in load_yaml('alerts.yml')['groups']
             for rule in group['rules']]
    exprs += [target['expr'] for panel in dashboard()['panels']
              for target in panel['targets']]
    return exprs


def test_prometheus_scrapes_both_apps_and_loads_the_alerts():
    config = load_yaml('prometheus.yml')
    assert config['rule_files'] == ['alerts.yml']
    [job] = config['scrape_configs']
    assert job['metrics_path'] == '/metrics'
    assert job['static_configs'][0]['targets'] == ['127.0.0.1:80',
                                                   '127.0.0.1:5001']


def test_alerts_cover_error_rate_and_p99_over_300_ms():
    rules = {rule['alert']: rule for group in load_yaml('alerts.yml')['groups']
             for rule in group['rules']}
    assert 'status=~"5.."' in rules['MiniTwitErrorRate']['expr']
    slow = rules['MiniTwitSlowP99']['expr']
    assert 'histogram_quantile(0.99' in slow and slow.strip().endswith('> 0.3')
    for rule in rules.values():
        assert {'summary', 'description'} <= set(rule['annotations'])
        assert rule['labels']['severity'] in ('page', 'warning')


def test_the_dashboard_has_the_panels_it_promises():
    board = dashboard()
    titles = {panel['title'] for panel in board['panels']}
    assert {'Throughput by app and status', 'Error rate (5xx share)',
            'p50 latency per route', 'p99 latency per route',
            'Simulator latest over time'} <= titles
    assert len({panel['id'] for panel in board['panels']}) == \
        len(board['panels'])
    # It loads on any Grafana: the Prometheus data source is chosen in a
    # variable, not fixed to one installation's uid.
    [variable] = board['templating']['list']
    assert (variable['type'], variable['query']) == ('datasource',
                                                    'prometheus')
    for panel in board['panels']:
        assert panel['datasource']['uid'] == '${datasource}'


def test_every_metric_the_monitoring_reads_is_exported(api):
    """The alerts and the dashboard name only series /metrics has."""
    register(api, 'ann')
    api.get('/msgs', headers=AUTH)
    api.get('/msgs', status=403)  # a rejection
    names = {name for name, _ in scrape(api)}
    used = {name for expr in expressions()
            for name in re.findall(r'\bminitwit_[a-z_]+', expr)}
    assert used and used <= names, used - names


# --- the web UI --------------------------------------------------------------------

def test_the_web_ui_is_logged_and_counted_too(fresh_db, capsys):
    ui = browser(minitwit.app)
    before = samples(ui.get('/metrics').text)
    capsys.readouterr()
    ui.get('/public')
    ui.get('/nobody-at-all', status=404)
    answer = ui.get('/metrics')
    records = log_lines(capsys.readouterr().out)
    assert [(r['app'], r['route'], r['status']) for r in records] == [
        ('web', '/public', 200), ('web', '/<username:path>', 404),
        ('web', '/metrics', 200)]
    assert answer.headers['X-Request-Id'] == records[-1]['request_id']
    after = samples(answer.text)

    assert grew(before, after, 'minitwit_http_requests_total', app='web', method='GET',
                route='/public', status='200') == 1
    assert grew(before, after, 'minitwit_rejections_total', app='web',
                route='/<username:path>', cause='unknown_user') == 1
