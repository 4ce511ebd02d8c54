"""make dist and deploy.sh, for real: each server is an OpenSSH server and
nginx on 127.0.0.1 with a root laid out by deploy/provision.sh (see
tests/delivery.py); the apps are background processes (there is no
systemd here), everything else is what runs on a droplet."""
import fcntl
import os
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
from delivery import (
    USER,
    Host,
    Keys,
    Sshd,
    broken_release,
    deploy,
    get,
    make_dist,
    release_of,
    replay_until,
    run,
)
from serving import ROOT, WAITRESS_FLAGS, wait_until

from scripts.simulator.gen_scenario import generate_actions
from scripts.simulator.simulate import EXPECTED, Client, verify

# The deploys run on one backend: MariaDB, as in production, when the
# suite has one.
BACKEND = 'mariadb' if os.environ.get('TEST_MARIADB_URL') else 'sqlite'
# What a deploy runs on both sides of SSH.
SERVERS = pytest.mark.needs('nginx', 'sshd', 'ssh', 'scp', 'ssh-keygen',
                            'curl', 'ss', 'pgrep')


def git(*args):
    return subprocess.run(['git', *args], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()


@pytest.fixture
def keys(tmp_path):
    return Keys(tmp_path / 'keys')


@pytest.fixture(scope='session')
def wheelhouse(tmp_path_factory):
    return tmp_path_factory.mktemp('wheels')


@pytest.fixture
def hosts(tmp_path, keys, make_db_url, wheelhouse):
    """hosts(name, database_url=None, **host_env) -> a Host, closed after
    the test; each gets a new database unless one is given."""
    made = []

    def make(name, database_url=None, **settings):
        host = Host(tmp_path / name, keys, database_url or make_db_url(),
                    wheels=wheelhouse, **settings)
        made.append(host)
        return host

    yield make
    for host in made:
        host.close()


def test_dist_is_a_versioned_tarball_of_what_servers_need(tmp_path):
    tarball = make_dist(tmp_path, 'test-1')
    assert tarball == tmp_path / 'minitwit-test-1.tar.gz'
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        read = lambda name: tar.extractfile('minitwit-test-1/' + name).read()  # noqa: E731
        assert read('VERSION') == b'test-1\n'
        assert read('REVISION').decode().strip() == git('rev-parse', 'HEAD')
        # The working tree's files, as they are.
        for name in ('sim_api.py', 'pyproject.toml', 'deploy/server.sh'):
            assert read(name) == (Path(ROOT) / name).read_bytes()
    assert {name.split('/')[0] for name in names} == {'minitwit-test-1'}
    files = {name.partition('/')[2] for name in names}
    for needed in ('minitwit.py', 'sim_api.py', 'models.py', 'passwords.py',
                   'schema.sql', 'pyproject.toml', 'scripts/ops/initdb.py',
                   'scripts/ops/minitwitctl', 'deploy/server.sh', 'deploy/slot',
                   'deploy/systemd/minitwit-app@.service',
                   'deploy/nginx/minitwit.conf'):
        assert needed in files
    for name in files:
        assert not name.startswith(('tests', '.venv', '.git', 'dist')), name
        assert '__pycache__' not in name and not name.endswith('.pyc'), name
    assert 'Makefile' not in files and 'scripts/simulator/simulate.py' not in files
    assert not any(name.startswith(('scripts/bench/', 'scripts/simulator/')) for name in files)

    # Without DIST_VERSION the version is git's description of the tree.
    result = run(['make', '--no-print-directory', 'dist',
                  'DIST_DIR=%s' % tmp_path])
    assert result.returncode == 0, result.stderr
    described = git('describe', '--tags', '--always', '--dirty')
    assert result.stdout.strip() == '%s/minitwit-%s.tar.gz' % (tmp_path,
                                                               described)


@pytest.mark.slow
@SERVERS
@pytest.mark.parametrize('backend', [BACKEND])
def test_deploys_switch_without_dropping_a_request_and_roll_back(
        tmp_path, keys, hosts):
    host = hosts('h1')
    v1, v2, v4 = (make_dist(tmp_path / 'dist', v) for v in ('v1', 'v2', 'v4'))
    v3 = broken_release(v1, 'v3')

    # Before provisioning there are no settings: nothing is started.
    host.env_file.rename(host.env_file.with_suffix('.away'))
    result = deploy(host.spec, tarball=v1, keys=keys)
    assert result.returncode != 0
    assert 'provision this server first' in result.stderr
    assert host.releases() == []
    host.env_file.with_suffix('.away').rename(host.env_file)

    # Version 1: both apps answer through nginx, from the new release.
    result = deploy(host.spec, tarball=v1, keys=keys)
    assert result.returncode == 0, result.stdout + result.stderr
    first = release_of(host.api)
    assert first.startswith('v1-') and release_of(host.web) == first
    assert host.releases() == [first]
    assert host.revisions() == [('deploy', first)]
    assert (host.root / 'current').resolve() == host.root / 'releases' / first
    # Served with the flags every MiniTwit process gets.
    command = Path('/proc/%d/cmdline' % host.app_pid('api', 'blue')) \
        .read_bytes().decode().split('\0')
    assert set(WAITRESS_FLAGS) <= set(command)
    # nginx passes /metrics on to the apps for the server itself only.
    for url in (host.api, host.web):
        assert get(url + '/metrics', source='127.0.0.2')[0] == 403
        assert get(url + '/metrics')[0] != 403
        assert get(url + '/healthz', source='127.0.0.2')[0] == 200

    # Version 2, while the simulator keeps sending.
    actions = generate_actions(seed=4, users=30, actions=20000)
    stop, sent = threading.Event(), []
    load = threading.Thread(target=replay_until,
                            args=(host.api, actions, stop, sent))
    load.start()
    try:
        wait_until(lambda: len(sent) >= 20, 'the replay to start', 60)
        result = deploy(host.spec, tarball=v2, keys=keys)
        after = len(sent)
        wait_until(lambda: len(sent) >= after + 20,
                   'requests after the deploy', 60)
    finally:
        stop.set()
        load.join(60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(sent) < len(actions), 'the load ended before the deploy did'
    failed = [(action, status) for action, status, _ in sent
              if status != EXPECTED[action[1]]]
    assert failed == []
    second = release_of(host.api)
    assert second.startswith('v2-') and release_of(host.web) == second
    # Version 1 answered until the switch, version 2 once deploy.sh is done.
    answered = [server.removeprefix('minitwit/') for _, _, server in sent]
    assert set(answered[:20]) == {first} and set(answered) == {first, second}
    assert set(answered[after:]) == {second}
    # Nothing lost or applied twice.
    assert verify(Client(host.api, timeout=30),
                  [action for action, _, _ in sent]) == []
    assert not (host.root / 'run' / 'minitwit-api@blue.service.pid').exists()

    # A broken version 3: version 2 keeps serving; a clear failure.
    result = deploy(host.spec, tarball=v3, keys=keys)
    assert result.returncode != 0
    assert 'failed: its health check failed (web blue: stopped)' in \
        result.stderr
    assert 'Rolled back: still serving %s' % second in result.stderr
    assert 'this release is broken' in result.stderr  # its log lines
    assert release_of(host.api) == second == release_of(host.web)
    assert host.releases() == sorted([first, second])
    assert host.revisions()[-1][0] == 'failed'

    # One deploy at a time per server.
    with open(host.root / '.deploy.lock') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = deploy(host.spec, tarball=v4, keys=keys)
    assert result.returncode != 0
    assert 'another deploy or rollback is running' in result.stderr
    assert host.releases() == sorted([first, second])

    # KEEP=2: version 4 and the one before it stay, version 1 goes.
    result = deploy(host.spec, tarball=v4, keys=keys, KEEP=2)
    assert result.returncode == 0, result.stdout + result.stderr
    fourth = release_of(host.api)
    assert fourth.startswith('v4-')
    assert host.releases() == sorted([second, fourth])

    # --rollback: back to version 2; then nothing older is left.
    result = deploy('--rollback', host.spec, keys=keys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert release_of(host.api) == second == release_of(host.web)
    assert host.revisions()[-1] == ('rollback', second)
    result = deploy('--rollback', host.spec, keys=keys)
    assert result.returncode != 0
    assert 'no release before %s' % second in result.stderr
    assert release_of(host.api) == second

    result = deploy('--revision', host.spec, keys=keys)
    assert result.stdout.strip() == git('rev-parse', 'HEAD')


@pytest.mark.slow
@SERVERS
@pytest.mark.parametrize('backend', [BACKEND])
def test_rolling_deploy_goes_host_by_host_and_stops_at_a_failure(
        tmp_path, keys, hosts, make_db_url):
    # Two servers sharing one database, as two droplets would.
    database_url = make_db_url()
    first, second = hosts('h2', database_url), hosts('h3', database_url)

    result = run(['make', '--no-print-directory', 'deploy',
                  'DIST_DIR=%s' % tmp_path, 'DIST_VERSION=v1',
                  'DEPLOY_HOSTS=%s %s' % (first.spec, second.spec)],
                 env=keys.env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.index('==> %s: done' % first.spec) < \
        result.stdout.index('==> %s: deploying' % second.spec)
    on_first, on_second = release_of(first.api), release_of(second.api)
    assert on_first.startswith('v1-') and on_second.startswith('v1-')

    broken = broken_release(tmp_path / 'minitwit-v1.tar.gz', 'v3')
    result = deploy(first.spec, second.spec, tarball=broken, keys=keys)
    assert result.returncode != 0
    assert '==> %s: deploy FAILED' % first.spec in result.stderr
    assert '==> not attempted: %s' % second.spec in result.stderr
    assert release_of(first.api) == on_first
    assert release_of(second.api) == on_second
    assert second.revisions() == [('deploy', on_second)]
    assert list((second.root / 'incoming').iterdir()) == []

    # The operator's commands on a server: the live release's minitwitctl.
    def ctl(*args):
        return run([str(first.root / 'current' / 'scripts' / 'ops' / 'minitwitctl'),
                    *args], env={'DEPLOY_ROOT': str(first.root)})

    result = ctl('status')
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'live: %s in slot blue' % on_first in result.stdout
    assert 'web blue: running' in result.stdout
    assert 'answers 200 minitwit/%s' % on_first in result.stdout
    assert ctl('stop').returncode == 0
    assert get(first.api + '/healthz')[0] == 502
    assert ctl('status').returncode != 0
    assert ctl('start').returncode == 0
    wait_until(lambda: get(first.api + '/healthz')[0] == 200,
               'the first host to answer', 60)

    client = Client(first.api, timeout=30)
    assert client.send('POST', '/register', {
        'username': 'Åse', 'email': 'a@example.com', 'pwd': 'x'})[0] == 204
    assert client.send('POST', '/msgs/%C3%85se', {'content': 'Hej'})[0] == 204
    result = ctl('inspect')
    assert result.returncode == 0, result.stderr
    assert 'users                    1' in result.stdout
    message_id = int(result.stdout.split('Åse: Hej')[0].split()[-3])
    result = ctl('flag', str(message_id))
    assert result.returncode == 0, result.stderr
    assert client.get_json('/msgs') == []
    assert '*Åse: Hej' in ctl('inspect').stdout


@pytest.mark.slow
@SERVERS
@pytest.mark.parametrize('backend', [BACKEND])
def test_a_rolling_deploy_never_takes_the_last_healthy_host_out(
        tmp_path, keys, hosts, make_db_url):
    """Before deploy.sh touches a host, another host named must answer its
    health check, unless this one serves nothing anyway."""
    database_url = make_db_url()
    first, second = hosts('h4', database_url), hosts('h5', database_url)
    v1, v2 = (make_dist(tmp_path / 'dist', v) for v in ('v1', 'v2'))

    # A first deploy: nothing serves yet, so the first host may go; the
    # second goes once the first answers.
    result = deploy(first.spec, second.spec, tarball=v1, keys=keys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '==> %s: no other host is healthy, but %s is not serving either' \
        % (first.spec, first.spec) in result.stdout
    assert '==> %s: %s is healthy and keeps serving meanwhile' % (
        second.spec, first.spec) in result.stdout
    on_first, on_second = release_of(first.api), release_of(second.api)

    # The second host is down (its apps stopped): the first is the last
    # one serving, and is refused; nothing changes anywhere.
    stop = run([str(second.root / 'current' / 'scripts' / 'ops' / 'minitwitctl'), 'stop'],
               env={'DEPLOY_ROOT': str(second.root)})
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert get(second.api + '/healthz')[0] == 502
    result = deploy(first.spec, second.spec, tarball=v2, keys=keys)
    assert result.returncode != 0
    assert 'deploy.sh: not deploying to %s: no other host is healthy, and %s ' \
        'is serving' % (first.spec, first.spec) in result.stderr
    assert '==> %s: deploy FAILED' % first.spec in result.stderr
    assert '==> not attempted: %s' % second.spec in result.stderr
    assert release_of(first.api) == on_first
    assert get(second.api + '/healthz')[0] == 502
    for host, release in ((first, on_first), (second, on_second)):
        assert host.releases() == [release]
        assert host.revisions() == [('deploy', release)]
        assert list((host.root / 'incoming').iterdir()) == []

    # The host that is down first (the other one serves meanwhile), then
    # the other, once the first is back.
    result = deploy(second.spec, first.spec, tarball=v2, keys=keys)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '==> %s: %s is healthy and keeps serving meanwhile' % (
        second.spec, first.spec) in result.stdout
    assert '==> %s: %s is healthy and keeps serving meanwhile' % (
        first.spec, second.spec) in result.stdout
    assert release_of(first.api).startswith('v2-')
    assert release_of(second.api).startswith('v2-')


def test_minitwitctl_without_a_deployment_inspects_the_local_database(
        tmp_path):
    ctl = [str(Path(ROOT) / 'scripts' / 'ops' / 'minitwitctl')]
    result = run(ctl + ['status'], env={'DEPLOY_ROOT': str(tmp_path)})
    assert result.returncode == 1
    assert 'nothing is deployed under %s' % tmp_path in result.stderr
    result = run(ctl + ['inspect'], env={
        'DEPLOY_ROOT': str(tmp_path),
        'DATABASE_URL': 'sqlite:///%s/local.db' % tmp_path})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split('\n')[:2] == ['users                    0',
                                             'messages                 0']
    result = run(ctl + ['bogus'])
    assert result.returncode == 2 and 'minitwitctl status' in result.stderr


def known(known_hosts, host):
    """Whether known_hosts has a key for host (hashed names too)."""
    return subprocess.run(['ssh-keygen', '-F', host, '-f', str(known_hosts)],
                          capture_output=True).returncode == 0


@pytest.mark.needs('sshd', 'ssh', 'ssh-keygen')
def test_host_keys_are_never_trusted_on_first_use_unless_asked(tmp_path,
                                                              keys):
    """deploy.sh checks every host's key against SSH_KNOWN_HOSTS: unknown
    and changed keys are refused, with what to do; TRUST_NEW_HOST=1 adds
    an unknown one (never a changed one). --revision is the cheapest way in."""
    sshd = Sshd(tmp_path / 'sshd', keys)
    try:
        root = tmp_path / 'root'
        (root / 'current').mkdir(parents=True)
        (root / 'current' / 'REVISION').write_text('abc123\n')
        spec = 'ssh://%s@127.0.0.1:%d%s' % (USER, sshd.port, root)
        name = '[127.0.0.1]:%d' % sshd.port

        # Pinned: the key in SSH_KNOWN_HOSTS is the server's.
        result = deploy('--revision', spec, keys=keys)
        assert (result.returncode, result.stdout) == (0, 'abc123\n'), \
            result.stderr

        unknown = tmp_path / 'empty_known_hosts'
        unknown.touch()
        result = deploy('--revision', spec, keys=keys,
                        SSH_KNOWN_HOSTS=unknown)
        assert result.returncode != 0 and result.stdout == ''
        assert 'the SSH host key of %s is unknown: it is not in %s' % (
            name, unknown) in result.stderr
        assert 'ssh-keyscan -p %d -t ed25519 127.0.0.1 >> %s' % (
            sshd.port, unknown) in result.stderr
        assert 'TRUST_NEW_HOST=1' in result.stderr
        assert unknown.read_text() == ''

        # A deploy stops at such a host before sending anything.
        tarball = make_dist(tmp_path / 'dist', 'v1')
        result = deploy(spec, tarball=tarball, keys=keys,
                        SSH_KNOWN_HOSTS=unknown)
        assert result.returncode != 0 and 'is unknown' in result.stderr
        assert '==> %s: deploy FAILED' % spec in result.stderr
        assert not (root / 'incoming').exists()

        changed = tmp_path / 'changed_known_hosts'
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f',
                        str(tmp_path / 'impostor')], check=True)
        impostor = (tmp_path / 'impostor.pub').read_text().split()[:2]
        changed.write_text('%s %s\n' % (name, ' '.join(impostor)))
        for trust in ('', '1'):
            result = deploy('--revision', spec, keys=keys,
                            SSH_KNOWN_HOSTS=changed, TRUST_NEW_HOST=trust)
            assert result.returncode != 0 and result.stdout == ''
            assert 'the SSH host key of %s has CHANGED since %s recorded it' \
                % (name, changed) in result.stderr
            assert "ssh-keygen -R '%s' -f %s" % (name, changed) in \
                result.stderr

        # TRUST_NEW_HOST=1: a first deploy by hand adds the key, which is
        # pinned from then on.
        result = deploy('--revision', spec, keys=keys,
                        SSH_KNOWN_HOSTS=unknown, TRUST_NEW_HOST='1')
        assert (result.returncode, result.stdout) == (0, 'abc123\n'), \
            result.stderr
        assert known(unknown, name)
        result = deploy('--revision', spec, keys=keys,
                        SSH_KNOWN_HOSTS=unknown)
        assert (result.returncode, result.stdout) == (0, 'abc123\n'), \
            result.stderr
    finally:
        sshd.close()
