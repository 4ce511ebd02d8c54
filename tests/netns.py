"""Network namespaces for tests that need machines with addresses of their
own on this one (tests/test_cluster_deploy.py).

A `Namespace` is `ip netns` NAME with a veth pair to this machine's
namespace: its end `eth0` has 10.232.INDEX.2/24, ours (named like the
namespace) 10.232.INDEX.1/24, loopback is up inside, and there is no
default route: nothing beyond this machine is reachable from in there.
`command(argv)` runs argv inside (`ip netns exec`).

    with namespaces(['app1', 'app2']) as (one, two):
        subprocess.run(one.command(['ip', 'addr']))

The names start with `mtc-` (the booted-host tests use `mth-` and
10.231.x). One test process at a time holds them (a lock in /run), and
whatever a killed run left with that prefix is removed first. On the way
out every process inside is killed and the namespaces and veths are
deleted, also when the test failed; a watchdog process does the same if
the test process dies without getting there (SIGKILL), and then also stops
the processes of the pid files given to it (`also_stop`).
"""
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from host.bootedhost import netns_pids

PREFIX = 'mtc-'
LOCK = Path('/run/minitwit-test-cluster.lock')
NETWORK = '10.232.%d.%d'
LOCK_WAIT = 300  # seconds another run may hold the namespaces


def _ip(*args, check=True):
    return subprocess.run(['ip', *args], check=check, timeout=30,
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True)


def _namespace_pids(name):
    """The processes in network namespace `name` (as `ip netns pids`), this
    one aside."""
    return netns_pids(name) - {os.getpid()}


def _signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _stop(find, timeout=10):
    """SIGTERM what find() lists, SIGKILL whatever is left after `timeout`,
    until it lists nothing (bounded: RuntimeError after another 10 s)."""
    _signal_all(find(), signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while find() and time.monotonic() < deadline:
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while True:
        pids = find()
        if not pids:
            return
        if time.monotonic() > deadline:
            raise RuntimeError('processes %s survive SIGKILL' % sorted(pids))
        _signal_all(pids, signal.SIGKILL)
        time.sleep(0.05)


def _delete_link(name, timeout=10):
    """Delete link `name` and wait until it is gone (deleting a namespace
    takes its veth away a moment later, not at once)."""
    deadline = time.monotonic() + timeout
    while os.path.exists('/sys/class/net/' + name):
        _ip('link', 'delete', name, check=False)
        if time.monotonic() > deadline:
            raise RuntimeError('network link %s is still there' % name)
        time.sleep(0.05)


def remove(name):
    """Kill every process in namespace `name`, delete it and its veth."""
    _stop(lambda: _namespace_pids(name))
    if os.path.exists('/run/netns/' + name):
        _ip('netns', 'delete', name)
    _delete_link(name)


def _pid_of(pid_file):
    try:
        return {int(Path(pid_file).read_text().split()[0])}
    except (OSError, ValueError, IndexError):
        return set()


def _alive(pids):
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.add(pid)
        except ProcessLookupError:
            pass
    return alive


def cleanup_stale():
    """Remove the namespaces and links with our prefix (the lock held):
    what a run that was killed left behind."""
    names = set(os.listdir('/run/netns')) if os.path.isdir('/run/netns') \
        else set()
    names.update(os.listdir('/sys/class/net'))
    for name in sorted(n for n in names if n.startswith(PREFIX)):
        remove(name)


class Namespace:
    """`ip netns` PREFIX+name with a veth pair to this namespace."""

    def __init__(self, name, index):
        self.name = PREFIX + name
        if len(self.name) > 15:  # a network interface's name: 15 at most
            raise ValueError('namespace name %r is too long' % self.name)
        self.index = index
        self.gateway = NETWORK % (index, 1)  # our end
        self.address = NETWORK % (index, 2)  # its end

    def __repr__(self):
        return 'namespace %s (%s)' % (self.name, self.address)

    def create(self):
        _ip('netns', 'add', self.name)
        _ip('link', 'add', self.name, 'type', 'veth', 'peer', 'name', 'eth0',
            'netns', self.name)
        _ip('addr', 'add', self.gateway + '/24', 'dev', self.name)
        _ip('link', 'set', self.name, 'up')
        _ip('-n', self.name, 'addr', 'add', self.address + '/24', 'dev',
            'eth0')
        _ip('-n', self.name, 'link', 'set', 'eth0', 'up')
        _ip('-n', self.name, 'link', 'set', 'lo', 'up')

    def command(self, argv):
        """argv, run inside this namespace."""
        return ['ip', 'netns', 'exec', self.name, *argv]

    def pids(self):
        return _namespace_pids(self.name)

    def close(self):
        remove(self.name)


@contextlib.contextmanager
def _locked():
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, 'w') as lock:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeError('another test run has held %s for %d s'
                                       % (LOCK, LOCK_WAIT)) from None
                time.sleep(0.2)
        yield


class Watchdog:
    """A process that cleans up after us if we die first: it waits on a
    pipe; 'done' means we cleaned up ourselves, end of file that we are
    gone. Pid files given to also_stop() are stopped too, then."""

    def __init__(self, names):
        self.state = {'names': list(names), 'pid_files': []}
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), '--watchdog'],
            stdin=subprocess.PIPE, text=True, start_new_session=True)
        self._send()

    def _send(self):
        self.process.stdin.write(json.dumps(self.state) + '\n')
        self.process.stdin.flush()

    def also_stop(self, pid_file):
        self.state['pid_files'].append(str(pid_file))
        self._send()

    def done(self):
        try:
            self.process.stdin.write('done\n')
            self.process.stdin.close()
        except (BrokenPipeError, ValueError):
            pass
        self.process.wait(30)


def _watch():
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    state = None
    for line in sys.stdin:
        if line.strip() == 'done':
            return
        state = json.loads(line)
    if state is None:
        return
    for pid_file in state['pid_files']:
        pids = _pid_of(pid_file)
        _stop(lambda pids=pids: _alive(pids))
    for name in state['names']:
        remove(name)


@contextlib.contextmanager
def namespaces(names, first_index=1):
    """Namespaces PREFIX+name for each name, 10.232.N.x with N counting from
    first_index; every trace of them gone on the way out. Yields the
    Namespaces and the Watchdog (for also_stop)."""
    with _locked():
        cleanup_stale()
        made = [Namespace(name, first_index + n)
                for n, name in enumerate(names)]
        watchdog = Watchdog(ns.name for ns in made)
        try:
            for ns in made:
                ns.create()
            yield made, watchdog
        finally:
            errors = []
            for ns in made:
                try:
                    ns.close()
                except Exception as error:  # the others still go
                    errors.append(error)
            watchdog.done()
            if errors:
                raise errors[0]


if __name__ == '__main__' and sys.argv[1:] == ['--watchdog']:
    _watch()
