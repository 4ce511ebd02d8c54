"""The benchmarks still run, end to end, on a small generated scenario: the
figures in docs/benchmarks.md come from them, so they must not rot. Only
that they finish and that what they check holds (no error, the final
state exact) is asserted here, never a figure."""
import os
import subprocess
import sys

import pytest
from conftest import MARIADB_URL
from serving import ROOT

from scripts.simulator import gen_scenario

pytestmark = pytest.mark.slow
GALERA = ('mariadbd', 'mariadb-install-db', 'rsync',
          '/usr/lib/galera/libgalera_smm.so')


@pytest.fixture(scope='module')
def scenario(tmp_path_factory):
    path = tmp_path_factory.mktemp('bench') / 'scenario.csv'
    gen_scenario.main(['--seed', '21', '--users', '20', '--actions', '400',
                       '-o', str(path)])
    return str(path)


def run(*args, timeout=240):
    done = subprocess.run([sys.executable, '-m', *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def table_rows(out):
    """{label: cells} of bench.bench's table rows of apps (their final
    state is one word: exact or -)."""
    return {cells[0]: cells[1:] for cells in (
        line.rsplit(None, 8) for line in out.splitlines()
        if line.startswith(('sim_api on', 'floor with')))}


def test_bench_replays_on_each_backend_beside_the_floor(scenario, backend,
                                                        request):
    args = ['scripts.bench.bench', '--scenario', scenario, '--backends', backend]
    if backend == 'mariadb':
        args += ['--mariadb', MARIADB_URL, '--drivers', 'pymysql,mysqlclient']
    out = run(*args)
    assert 'floor (no-op app)' in out
    rows = [line for line in out.splitlines() if line.startswith('sim_api on')]
    assert len(rows) == (2 if backend == 'mariadb' else 1)
    assert all(line.endswith('exact') for line in rows), out


@pytest.mark.skipif(not MARIADB_URL, reason='TEST_MARIADB_URL is not set')
def test_bench_compares_transports_floors_and_a_checkout_before(
        scenario, mariadb_socket_url):
    out = run('scripts.bench.bench', '--scenario', scenario, '--backends', 'mariadb',
              '--mariadb', MARIADB_URL, '--mariadb', mariadb_socket_url,
              '--before', ROOT, '--db-floor')
    rows = table_rows(out)
    assert sorted(rows) == ['floor with MariaDB via TCP',
                            'floor with MariaDB via socket',
                            'sim_api on mariadb (before: %s)'
                            % os.path.basename(ROOT),
                            'sim_api on mariadb via TCP',
                            'sim_api on mariadb via socket'], out
    for label, cells in rows.items():
        assert cells[-2:] == (['0', '-'] if label.startswith('floor') else
                              ['0', 'exact']), out


@pytest.mark.needs('mariadbd', 'mariadb-install-db')
def test_bench_measures_servers_of_its_own_with_other_settings(scenario):
    out = run('scripts.bench.bench', '--scenario', scenario, '--backends', 'mariadb',
              '--db-floor', '--own-mariadb', 'innodb_flush_log_at_trx_commit=1',
              '--own-mariadb', 'innodb_flush_log_at_trx_commit=2,'
              'innodb_doublewrite=0')
    rows = table_rows(out)
    settings = ['innodb_flush_log_at_trx_commit=1',
                'innodb_flush_log_at_trx_commit=2,innodb_doublewrite=0']
    assert sorted(rows) == sorted(
        ['floor with MariaDB with ' + s for s in settings] +
        ['sim_api on mariadb with ' + s for s in settings]), out
    for label, cells in rows.items():
        assert cells[-2:] == (['0', '-'] if label.startswith('floor') else
                              ['0', 'exact']), out


def test_loadtest_takes_turns_with_the_floor_and_a_checkout_before():
    out = run('scripts.bench.loadtest', '--clients', '4', '--processes', '2',
              '--seconds', '2', '--rounds', '2', '--before', ROOT)
    for label in ('floor (no-op app)', 'MiniTwit',
                  'MiniTwit before (%s)' % os.path.basename(ROOT)):
        assert '\n%s: ' % label in '\n' + out, out
    assert out.count('errors: 0') == 3, out


@pytest.mark.needs('mariadbd', 'mariadb-install-db')
def test_the_profile_accounts_for_every_action(scenario):
    out = run('scripts.bench.profile_api', '--scenario', scenario)
    table = {line.split()[0]: line.split()[1:] for line in out.splitlines()
             if line.split() and line.split()[0] in
             ('register', 'tweet', 'follow', 'unfollow')}
    assert '0 errors' in out
    assert sum(int(cells[0]) for cells in table.values()) == 400
    # A tweet with its `latest` is one round trip of BEGIN, its idempotency
    # key, the message, latest, COMMIT.
    assert table['tweet'][1:3] == ['5.00', '1.00']


@pytest.mark.needs(*GALERA)
@pytest.mark.timeout(400)
def test_bench_cluster_runs_on_one_node_and_on_three(scenario):
    out = run('scripts.bench.bench_cluster', '--scenario', scenario, '--clients', '4',
              '--processes', '2', '--seconds', '1', timeout=360)
    for label in ('one node', 'the cluster', 'the cluster, causal=false'):
        assert any(line.startswith('sim_api on %s ' % label) and
                   line.endswith('exact') for line in out.splitlines()), out
    assert out.count('errors: 0') == 3
