""".circleci/config.yml: its workflows hang together, run make targets
that exist, deploy from main only after the tests, and release weekly from
the schedule trigger. (`make lint` validates it against CircleCI's schema.)"""
import copy
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from serving import ROOT

CONFIG = Path(ROOT) / '.circleci' / 'config.yml'


def load():
    return yaml.safe_load(CONFIG.read_text())


def job_entries(workflow):
    """(name, options) for each job a workflow lists."""
    for entry in workflow['jobs']:
        if isinstance(entry, str):
            yield entry, {}
        else:
            (name, options), = entry.items()
            yield name, options or {}


def workflow_problems(config):
    """What is wrong with how the workflows name jobs: a job that does not
    exist, a `requires` that is not a job of the same workflow."""
    problems = []
    for workflow_name, workflow in config['workflows'].items():
        listed = {name for name, _ in job_entries(workflow)}
        for name, options in job_entries(workflow):
            if name not in config['jobs']:
                problems.append('%s: no job %s' % (workflow_name, name))
            for required in options.get('requires', []):
                if required not in listed:
                    problems.append('%s: %s requires %s, not in the workflow'
                                    % (workflow_name, name, required))
    return problems


def test_every_job_and_requirement_in_the_workflows_exists():
    assert workflow_problems(load()) == []


def test_the_check_finds_missing_jobs_and_foreign_requirements():
    config = load()
    broken = copy.deepcopy(config)
    broken['workflows']['commit']['jobs'].append('no-such-job')
    broken['workflows']['weekly-release']['jobs'] = [
        {'release': {'requires': ['test']}}]
    assert workflow_problems(broken) == [
        'commit: no job no-such-job',
        'weekly-release: release requires test, not in the workflow']


def test_the_commands_run_make_targets_that_exist():
    commands = [step['run']['command']
                for job in load()['jobs'].values() for step in job['steps']
                if isinstance(step, dict) and 'run' in step]
    targets = set()
    for command in commands:
        for words in re.findall(r'(?:\bmake|\.ci/run)((?: [a-z][a-z-]*)+)',
                                command):
            targets.update(words.split())
    assert {'lint', 'test', 'dist', 'deploy', 'release'} <= targets
    for target in targets:
        result = subprocess.run(['make', '-n', target], cwd=ROOT,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_deploy_follows_the_tests_on_main_and_releases_are_weekly():
    config = load()
    commit = config['workflows']['commit']
    jobs = dict(job_entries(commit))
    assert jobs['deploy']['requires'] == ['test']
    assert jobs['deploy']['filters'] == {'branches': {'only': 'main'}}
    # Commits never run the release; the schedule runs only the release.
    scheduled = ['scheduled_pipeline', '<< pipeline.trigger_source >>']
    assert commit['when'] == {'not': {'equal': scheduled}}
    weekly = config['workflows']['weekly-release']
    assert weekly['when'] == {'and': [
        {'equal': scheduled},
        {'equal': ['weekly-release', '<< pipeline.schedule.name >>']}]}
    assert dict(job_entries(weekly)) == {'release': {}}
    # Deploys and releases reach the servers with the project's SSH keys.
    for name in ('deploy', 'release'):
        assert 'trust-servers' in config['jobs'][name]['steps']
    assert 'add_ssh_keys' in config['commands']['trust-servers']['steps']
    # The tests run as root in a privileged Debian 12 container (they boot a
    # host and make network namespaces), on a VM, beside a MariaDB of their
    # own, and through .ci/run.
    test = config['jobs']['test']
    assert 'machine' in config['executors'][test['executor']]
    commands = '\n'.join(step['run']['command'] for step in test['steps']
                         if isinstance(step, dict) and 'run' in step)
    assert re.search(r'docker run -d --name mariadb --network host .*mariadb:10\.11',
                     commands.replace('\\\n', ''))
    run = commands.replace('\\\n', '')
    assert re.search(r'docker run --rm --privileged .*python:3\.11-bookworm '
                     r'\.ci/run lint test', run), run
    assert 'TEST_MARIADB_URL=mysql://root@127.0.0.1:3306' in run


def test_the_tests_run_on_the_courses_scenario():
    """`make scenario` fetches it on the VM before the tests, and the test
    container, which sees the checkout as /src, gets its data/ as
    MINITWIT_DATA_DIR: the tests that read the course's files run on it."""
    steps = [step['run'] for step in load()['jobs']['test']['steps']
             if isinstance(step, dict) and 'run' in step]
    names = [step['name'] for step in steps]
    assert names.index('make scenario') < names.index('make lint test')
    assert steps[names.index('make scenario')]['command'].strip() == 'make scenario'
    run = steps[names.index('make lint test')]['command'].replace('\\\n', '')
    assert '-v "$PWD:/src" -w /src' in run
    assert re.search(r'-e MINITWIT_DATA_DIR=/src/data .*\.ci/run lint test', run), run


@pytest.mark.needs('shellcheck', 'ruby', 'vagrant', 'systemd-analyze')
def test_the_ci_checks_pass_on_this_tree():
    """make lint's checks of the shell scripts, this config, the
    Vagrantfile and the systemd units (ruff is the Python tests' own)."""
    result = subprocess.run(
        ['make', '--no-print-directory', 'lint-shell', 'lint-ci',
         'lint-vagrant', 'lint-units'],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'systemd-analyze verify: minitwit-web@ and minitwit-api@' in \
        result.stdout


def known_hosts_step():
    step, = [step['run'] for step in load()['commands']['trust-servers']['steps']
             if isinstance(step, dict) and step.get('run', {}).get('name') == 'Known hosts']
    return step['command']


def run_step(home, **env):
    """The Known hosts step in bash, as CircleCI runs it: HOME, BASH_ENV;
    then what later steps see (SSH_KNOWN_HOSTS from BASH_ENV)."""
    bash_env = home / 'bash_env'
    bash_env.touch()
    done = subprocess.run(['bash', '-eo', 'pipefail', '-c', known_hosts_step()],
                          env={'PATH': os.environ['PATH'], 'HOME': str(home),
                               'BASH_ENV': str(bash_env), **env},
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    later = subprocess.run(['bash', '-c', 'echo "$SSH_KNOWN_HOSTS"'],
                           env={'PATH': os.environ['PATH'], 'HOME': str(home),
                                'BASH_ENV': str(bash_env)},
                           capture_output=True, text=True, timeout=30)
    return done, Path(later.stdout.strip())


def test_deploys_trust_the_known_hosts_variable_and_nothing_else(tmp_path):
    line = '203.0.113.5 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyForTests'
    done, known_hosts = run_step(tmp_path, DEPLOY_KNOWN_HOSTS=line + '\n')
    assert known_hosts == tmp_path / '.ssh' / 'deploy_known_hosts'
    assert known_hosts.read_text() == line + '\n'
    assert done.stderr == ''
    # Nothing is trusted on first use, nor is ssh's own file appended to.
    assert 'TRUST_NEW_HOST' not in CONFIG.read_text()
    assert 'StrictHostKeyChecking' not in CONFIG.read_text()
    assert not (tmp_path / '.ssh' / 'known_hosts').exists()


@pytest.mark.needs('sshd', 'ssh', 'ssh-keygen')
def test_without_the_variable_the_deploy_is_refused(tmp_path):
    from delivery import USER, Keys, Sshd, deploy
    done, known_hosts = run_step(tmp_path)
    assert known_hosts.read_text() == ''
    assert 'DEPLOY_KNOWN_HOSTS is not set' in done.stderr
    keys = Keys(tmp_path / 'keys')
    sshd = Sshd(tmp_path / 'sshd', keys)
    try:
        result = deploy('--revision', 'ssh://%s@127.0.0.1:%d' % (USER, sshd.port),
                        keys=keys, SSH_KNOWN_HOSTS=known_hosts)
    finally:
        sshd.close()
    assert result.returncode != 0
    assert 'the SSH host key of [127.0.0.1]:%d is unknown' % sshd.port in result.stderr
    assert known_hosts.read_text() == ''
