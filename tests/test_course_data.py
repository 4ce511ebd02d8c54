"""scripts/simulator/course_data.py and the make targets that use it: `make scenario`
fetches the course's scenario and checks it, and the replays, benchmarks and
the legacy import choose their file, all without the network (the download
comes from a server on 127.0.0.1, through MINITWIT_SCENARIO_URL).

With MINITWIT_DATA_DIR set, the folder it names must hold the course's
scenario, and `make scenario` takes it from there."""
import functools
import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import types

import pytest
from serving import ROOT

from scripts.simulator import course_data
from scripts.simulator.gen_scenario import generate

SCENARIO_TEXT = '0\t0\t1582246860738\tregister\tann\tann@example.com\tsecret\n'
SCENARIO_SHA256 = hashlib.sha256(SCENARIO_TEXT.encode()).hexdigest()


def free_port():
    """A TCP port nothing listens on, on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder's files, without an access log."""

    def log_message(self, *args):
        """Nothing: the test's output is the tool's."""


@pytest.fixture
def served(tmp_path):
    """A web server on 127.0.0.1: .folder is what it serves, .url its root."""
    folder = tmp_path / 'served'
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(QuietHandler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield types.SimpleNamespace(folder=folder,
                                url='http://127.0.0.1:%d' % server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def no_data_dir(monkeypatch):
    """MINITWIT_DATA_DIR unset, whatever the run has."""
    monkeypatch.delenv(course_data.DATA_DIR_VAR, raising=False)


def env_without_data_dir(**settings):
    """The environment for a command, without MINITWIT_DATA_DIR."""
    env = {key: value for key, value in os.environ.items()
           if key != course_data.DATA_DIR_VAR}
    return dict(env, **settings)


def make(*args, **settings):
    """Run `make ARGS` in the checkout, without MINITWIT_DATA_DIR unless
    `settings` give it."""
    return subprocess.run(['make', '--no-print-directory', *args], cwd=ROOT,
                          env=env_without_data_dir(**settings),
                          capture_output=True, text=True, timeout=120)


# --- make scenario -------------------------------------------------------------

def test_offline_make_scenario_says_so_in_one_line_and_succeeds(tmp_path):
    cache = tmp_path / 'data'
    done = make('scenario', 'DATA_CACHE=%s' % cache,
                MINITWIT_SCENARIO_URL='http://127.0.0.1:%d/s.csv' % free_port())
    assert done.returncode == 0, done.stderr
    assert done.stderr == ''
    line, = done.stdout.splitlines()
    assert line.startswith("make scenario: cannot download the course's scenario")
    assert line.endswith('make simulate and make bench will use the generated scenario')
    assert os.listdir(cache) == []


def test_a_file_with_the_wrong_checksum_is_refused_and_deleted(tmp_path, served):
    (served.folder / 'minitwit_scenario.csv').write_text('not the course\'s\n')
    cache = tmp_path / 'data'
    done = make('scenario', 'DATA_CACHE=%s' % cache,
                MINITWIT_SCENARIO_URL=served.url + '/minitwit_scenario.csv')
    assert done.returncode != 0
    assert 'refused %s/minitwit_scenario.csv: its sha256 is %s, not %s; deleted' % (
        served.url, hashlib.sha256(b"not the course's\n").hexdigest(),
        course_data.SCENARIO_SHA256) in done.stderr
    assert os.listdir(cache) == []


def test_a_missing_file_on_the_server_fails(tmp_path, served, no_data_dir):
    cache = tmp_path / 'data'
    assert course_data.fetch(str(cache), served.url + '/nothing.csv') == 1
    assert os.listdir(cache) == []


def test_the_scenario_is_fetched_checked_and_then_kept(tmp_path, served, capsys,
                                                       no_data_dir):
    (served.folder / 'minitwit_scenario.csv').write_text(SCENARIO_TEXT)
    url = served.url + '/minitwit_scenario.csv'
    cache = tmp_path / 'data'
    assert course_data.fetch(str(cache), url, SCENARIO_SHA256) == 0
    kept = cache / 'minitwit_scenario.csv'
    assert kept.read_text() == SCENARIO_TEXT
    assert os.listdir(cache) == ['minitwit_scenario.csv']
    # The next run finds it, and does not download it again.
    (served.folder / 'minitwit_scenario.csv').unlink()
    assert course_data.fetch(str(cache), url, SCENARIO_SHA256) == 0
    assert capsys.readouterr().out.splitlines()[-1] == \
        'make scenario: %s is there already' % kept
    # A kept file that is not the course's is replaced.
    kept.write_text('changed\n')
    (served.folder / 'minitwit_scenario.csv').write_text(SCENARIO_TEXT)
    assert course_data.fetch(str(cache), url, SCENARIO_SHA256) == 0
    assert kept.read_text() == SCENARIO_TEXT


def test_the_scenario_is_taken_from_minitwit_data_dir(tmp_path, monkeypatch):
    given = tmp_path / 'course'
    given.mkdir()
    (given / 'minitwit_scenario.csv').write_text(SCENARIO_TEXT)
    monkeypatch.setenv(course_data.DATA_DIR_VAR, str(given))
    cache = tmp_path / 'data'
    offline = 'http://127.0.0.1:%d/s.csv' % free_port()
    assert course_data.fetch(str(cache), offline, SCENARIO_SHA256) == 0
    assert (cache / 'minitwit_scenario.csv').read_text() == SCENARIO_TEXT
    # A file there that is not the course's is not taken.
    (given / 'minitwit_scenario.csv').write_text('changed\n')
    (cache / 'minitwit_scenario.csv').unlink()
    assert course_data.fetch(str(cache), offline, SCENARIO_SHA256) == 0
    assert os.listdir(cache) == []


def test_make_scenario_needs_no_venv():
    """CircleCI runs it on the machine, before the container installs .venv."""
    done = make('-n', 'scenario')
    assert done.returncode == 0, done.stderr
    assert '.venv' not in done.stdout
    assert done.stdout.split()[1:] == ['-m', 'scripts.simulator.course_data', '--cache',
                                       'data', 'fetch']


def test_only_ci_names_the_folder_beside_the_clone():
    """The project needs nothing beside the checkout: only .ci/run, on the
    workstation that keeps the course's files there, looks for them."""
    files = subprocess.run(['git', 'ls-files', '--cached', '--others',
                            '--exclude-standard'], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    beside = os.path.join('..', 'shared', 'data')  # joined: this file does not name it
    naming = []
    for name in files:
        path = os.path.join(ROOT, name)
        if os.path.isfile(path):
            with open(path, encoding='utf-8', errors='replace') as f:
                if beside in f.read():
                    naming.append(name)
    assert naming == ['.ci/run']


# --- which scenario, which dump ---------------------------------------------------

def test_the_scenario_chosen_is_the_given_then_the_courses_then_a_generated_one(
        tmp_path, monkeypatch, no_data_dir):
    cache = tmp_path / 'data'
    # Nothing: a generated one, of the course's size, made once.
    path, why = course_data.choose_scenario(None, str(cache))
    assert path == str(cache / 'generated_scenario.csv')
    assert why.startswith('generated')
    lines = open(path, encoding='utf-8').read().splitlines()
    assert len(lines) == 25922
    assert lines[:3] == ['\t'.join(row) for row in generate(1, 200, 3)]
    assert course_data.choose_scenario('', str(cache))[0] == path
    # The course's, as make scenario keeps it.
    (cache / 'minitwit_scenario.csv').write_text(SCENARIO_TEXT)
    assert course_data.choose_scenario(None, str(cache)) == (
        str(cache / 'minitwit_scenario.csv'), "the course's, from make scenario")
    # The course's in MINITWIT_DATA_DIR.
    given = tmp_path / 'course'
    given.mkdir()
    (given / 'minitwit_scenario.csv').write_text(SCENARIO_TEXT)
    monkeypatch.setenv(course_data.DATA_DIR_VAR, str(given))
    assert course_data.choose_scenario(None, str(cache)) == (
        str(given / 'minitwit_scenario.csv'),
        "the course's, from MINITWIT_DATA_DIR")
    # SCENARIO, when given.
    assert course_data.choose_scenario(path, str(cache)) == (path, 'SCENARIO')


@pytest.mark.parametrize('command, settings, error', [
    (['scenario'], {'MINITWIT_DATA_DIR': '/nonexistent'},
     'scenario: MINITWIT_DATA_DIR=/nonexistent holds no minitwit_scenario.csv'),
    (['scenario', 'no-such.csv'], {}, 'scenario: SCENARIO=no-such.csv is not a file'),
    (['legacy'], {}, "legacy: set LEGACY to the original's database (.db or .sql "
     'dump), or MINITWIT_DATA_DIR to a folder holding itu_minitwit_legacy.sql'),
    (['legacy'], {'MINITWIT_DATA_DIR': '/nonexistent'},
     'legacy: MINITWIT_DATA_DIR=/nonexistent holds no itu_minitwit_legacy.sql'),
])
def test_what_is_missing_is_one_clear_line(tmp_path, command, settings, error):
    done = subprocess.run(
        [sys.executable, '-m', 'scripts.simulator.course_data', '--cache', str(tmp_path),
         *command], cwd=ROOT, env=env_without_data_dir(**settings),
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == error + '\n'
    assert done.stdout == ''


def test_make_import_legacy_without_legacy_says_what_to_set():
    done = make('import-legacy')
    assert done.returncode != 0
    assert done.stderr.splitlines()[0] == (
        "legacy: set LEGACY to the original's database (.db or .sql dump), "
        'or MINITWIT_DATA_DIR to a folder holding itu_minitwit_legacy.sql')


@pytest.mark.slow
def test_make_simulate_replays_the_generated_scenario_by_default(
        tmp_path, start_server):
    server = start_server('sim_api:app', 'sqlite:///%s' % (tmp_path / 'api.db'))
    done = make('simulate', 'DATA_CACHE=%s' % (tmp_path / 'data'),
                'URL=%s' % server.url, 'SIMULATE_ARGS=--limit 50 --progress off')
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'scenario: %s (generated: gen_scenario.py --seed 1 --users 200 ' \
        '--actions 25922;' % (tmp_path / 'data' / 'generated_scenario.csv') \
        in done.stderr
    assert '50 requests' in done.stdout
    assert 'verify: state exact' in done.stdout


# --- the course's files, when MINITWIT_DATA_DIR names them ---------------------------

# Defined only when MINITWIT_DATA_DIR is set: without it there is nothing to
# run, and nothing is skipped.
if course_data.data_dir():
    def test_minitwit_data_dir_holds_the_courses_scenario(tmp_path):
        """The folder has the course's scenario (it fails without), and
        `make scenario` takes it from there, offline."""
        path = os.path.join(course_data.data_dir(), course_data.SCENARIO)
        if not os.path.isfile(path):
            pytest.fail('%s=%s holds no %s' % (course_data.DATA_DIR_VAR,
                        course_data.data_dir(), course_data.SCENARIO), pytrace=False)
        assert course_data.sha256(path) == course_data.SCENARIO_SHA256
        done = make('scenario', 'DATA_CACHE=%s' % tmp_path,
                    MINITWIT_DATA_DIR=course_data.data_dir(),
                    MINITWIT_SCENARIO_URL='http://127.0.0.1:%d/s.csv' % free_port())
        assert done.returncode == 0, done.stderr
        assert done.stdout == 'make scenario: %s, copied from %s\n' % (
            tmp_path / 'minitwit_scenario.csv', path)
