"""Scenarios: the generator, and replays through real HTTP with --verify:
of a generated scenario, and of the course's too when MINITWIT_DATA_DIR
names a folder of the course's files (scripts/simulator/course_data.py)."""
import csv
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from peewee import fn
from serving import ROOT

import database
import models
from scripts.simulator import course_data, gen_scenario
from scripts.simulator.gen_scenario import generate

# The course's scenario is replayed only when MINITWIT_DATA_DIR is set: then
# a folder without it fails the test, never skips it.
SCENARIOS = ['generated'] + (['course'] if course_data.data_dir() else [])


def write_scenario(path, seed, users, actions):
    """Write a scenario with scripts/simulator/gen_scenario.py; its path."""
    gen_scenario.main(['--seed', str(seed), '--users', str(users),
                       '--actions', str(actions), '-o', str(path)])
    return str(path)


def simulate(*args):
    """Run `python -m scripts.simulator.simulate`; (exit code, JSON summary)."""
    done = subprocess.run([sys.executable, '-m', 'scripts.simulator.simulate', *args,
                           '--json', '--progress', 'off'], cwd=ROOT,
                          capture_output=True,
                          text=True, timeout=300)
    return done.returncode, json.loads(done.stdout)


def test_the_generator_writes_the_courses_format(tmp_path):
    path = write_scenario(tmp_path / 's.csv', seed=7, users=30, actions=1500)
    rows = list(csv.reader(open(path, encoding='utf-8'), delimiter='\t',
                           quotechar=None))
    assert [int(r[0]) for r in rows] == list(range(1500))
    widths = {'register': 7, 'tweet': 6, 'follow': 6, 'unfollow': 6}
    assert all(len(r) == widths[r[3]] for r in rows)
    registered, following = set(), {}
    repeats = unfollowed_strangers = 0
    for _, _, _, command, user, *rest in rows:
        if command == 'register':
            registered.add(user)
            following[user] = set()
            continue
        assert user in registered  # nobody acts before registering
        if command == 'follow':
            repeats += rest[0] in following[user]
            following[user].add(rest[0])
        elif command == 'unfollow':
            unfollowed_strangers += rest[0] not in following[user]
            following[user].discard(rest[0])
    assert repeats and unfollowed_strangers
    names = ' '.join(registered)
    texts = ' '.join(r[5] for r in rows if r[3] == 'tweet')
    assert ' ' in names and any(ord(c) > 127 for c in names)
    assert all(mark in texts for mark in '“”’—æø')


def test_the_same_seed_gives_the_same_scenario():
    assert list(generate(3, 10, 300)) == list(generate(3, 10, 300))
    assert list(generate(3, 10, 300)) != list(generate(4, 10, 300))


def scenario_file(source, tmp_path):
    """(path, actions) of a generated scenario, or of the course's."""
    if source == 'generated':
        return write_scenario(tmp_path / 's.csv', seed=11, users=40,
                              actions=1200), 1200
    path = os.path.join(course_data.data_dir(), course_data.SCENARIO)
    if not os.path.isfile(path):
        pytest.fail('%s=%s holds no %s' % (course_data.DATA_DIR_VAR,
                    course_data.data_dir(), course_data.SCENARIO), pytrace=False)
    return path, 25922


@pytest.mark.slow
@pytest.mark.timeout(600)  # the course's 25,922 actions: ~50 s a backend here
@pytest.mark.parametrize('source', SCENARIOS)
def test_a_scenario_replays_exactly(source, tmp_path, make_db_url,
                                    start_server):
    scenario, actions = scenario_file(source, tmp_path)
    url = make_db_url()
    server = start_server('sim_api:app', url)
    # A generous timeout: this checks correctness; speed is `make bench`'s.
    code, summary = simulate(scenario, '--url', server.url, '--verify',
                             '--timeout', '10')
    assert summary['errors'] == {} and summary['verify'] == []
    assert code == 0 and summary['requests'] == actions

    # --verify can fail: hide one message, drop one follow.
    database.configure(url)
    with database.connection():
        models.Message.update(flagged=True).where(
            models.Message.message_id == 1).execute()
        models.Follower.delete().where(
            models.Follower.id == models.Follower.select(
                fn.MIN(models.Follower.id))).execute()
    database.db.obj.close_all()
    code, summary = simulate(scenario, '--url', server.url, '--verify-only')
    assert code == 1
    assert any(p.startswith('messages of') for p in summary['verify'])
    assert any(p.startswith('follows of') for p in summary['verify'])


@pytest.mark.slow
def test_errors_are_counted_the_way_the_simulator_counts_them(
        tmp_path, make_db_url, start_server):
    scenario = write_scenario(tmp_path / 's.csv', seed=5, users=5,
                              actions=60)
    kinds = {row[3] for row in generate(5, 5, 60)}
    # The server expects other credentials: every tweet/follow is a 403.
    server = start_server('sim_api:app', make_db_url(),
                          env={'SIM_API_PASSWORD': 'not-the-default'})
    code, summary = simulate(scenario, '--url', server.url, '--timeout', '10')
    assert code == 1
    assert set(summary['errors']) == {'HTTP 403 on %s' % k
                                      for k in kinds - {'register'}}
    server.stop()
    code, summary = simulate(scenario, '--url', server.url, '--limit', '3')
    assert code == 1
    first = Counter('ConnectionError on ' + row[3]
                    for row in list(generate(5, 5, 60))[:3])
    assert summary['errors'] == dict(first)
