"""A stand-in for systemctl and journalctl, for the delivery tests' hosts
(tests/delivery.py), which have no systemd: deploy/slot and deploy/server.sh
run unchanged and call these instead.

It knows the few commands the deploy scripts give, and runs a unit as
systemd would from the unit file deploy/slot installed: its Environment=,
EnvironmentFile=, WorkingDirectory=, a fresh RuntimeDirectory= and its
ExecStart=, with %i, %j and %t filled in, the output appended to a log
that `journalctl -u` shows. It does not switch users (User=), sandbox, or
restart a unit that fails (Restart=): a unit that exits is inactive.

    python fake_systemd.py UNIT_DIR RUNTIME_DIR systemctl ARGS...
    python fake_systemd.py UNIT_DIR RUNTIME_DIR journalctl ARGS...

Delivery.Host writes `systemctl` and `journalctl` scripts that run this into
a folder it puts first on the host's PATH. A unit's main pid is in
RUNTIME_DIR/UNIT.pid while it runs, its output in RUNTIME_DIR/UNIT.log.
"""
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


class Unit:
    def __init__(self, units, runtime, name):
        self.name, self.runtime = name, runtime
        prefix, _, instance = name.removesuffix('.service').partition('@')
        template = units / ('%s@.service' % prefix)
        self.settings = {}
        for line in template.read_text().splitlines():
            if '=' in line and not line.lstrip().startswith(('#', ';', '[')):
                key, _, value = line.partition('=')
                self.settings.setdefault(key.strip(), []).append(
                    value.strip().replace('%i', instance)
                    .replace('%j', prefix.rpartition('-')[2])
                    .replace('%t', str(runtime)))
        self.pid_file = runtime / (name + '.pid')
        self.log = runtime / (name + '.log')

    def get(self, key, default=None):
        return self.settings.get(key, [default])[-1]

    def pid(self):
        """The main pid if the unit runs, else None."""
        try:
            pid = int(self.pid_file.read_text())
            stat = Path('/proc/%d/stat' % pid).read_text()
        except (OSError, ValueError):
            return None
        return None if stat.rpartition(')')[2].split()[0] in 'ZX' else pid

    def environment(self):
        env = {'PATH': os.environ['PATH'], 'LANG': 'C.UTF-8'}
        for words in self.settings.get('Environment', []):
            env.update(word.split('=', 1) for word in shlex.split(words))
        for path in self.settings.get('EnvironmentFile', []):
            for line in Path(path).read_text().splitlines():
                key, eq, value = line.partition('=')
                if eq and not key.lstrip().startswith('#'):
                    value = value.strip()
                    if len(value) > 1 and value[0] == value[-1] and value[0] in '"\'':
                        value = value[1:-1]
                    env[key.strip()] = value
        return env

    def start(self):
        if self.pid():
            return
        for name in self.settings.get('RuntimeDirectory', []):
            folder = self.runtime / name
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        with open(self.log, 'ab') as log, open(os.devnull, 'rb') as null:
            process = subprocess.Popen(
                shlex.split(self.get('ExecStart')), cwd=self.get('WorkingDirectory'),
                env=self.environment(), stdin=null, stdout=log, stderr=log,
                start_new_session=True)
        self.pid_file.write_text('%d\n' % process.pid)

    def stop(self):
        pid = self.pid()
        if pid:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + float(self.get('TimeoutStopSec', '90'))
            while self.pid() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.pid():
                os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


def systemctl(units, runtime, args):
    quiet = '--quiet' in args
    args = [arg for arg in args if arg not in ('--quiet', '--value')]
    command, names = args[0], args[1:]
    if command == 'daemon-reload':
        return 0
    if command in ('enable', 'disable'):
        if '--now' not in names:
            return 0
        names.remove('--now')
        command = 'start' if command == 'enable' else 'stop'
    if command == 'show':
        [name] = [name for name in names if not name.startswith('--')]
        print(Unit(units, runtime, name).pid() or 0)
        return 0
    found = [Unit(units, runtime, name) for name in names]
    if command == 'start':
        for unit in found:
            unit.start()
    elif command == 'stop':
        for unit in found:
            unit.stop()
    elif command == 'restart':
        for unit in found:
            unit.stop()
            unit.start()
    elif command == 'is-active':
        active = all(unit.pid() for unit in found)
        if not quiet:
            print('active' if active else 'inactive')
        return 0 if active else 3
    else:
        print('fake systemctl: %s is not known here' % command, file=sys.stderr)
        return 1
    return 0


def journalctl(runtime, args):
    """`journalctl [--no-pager] [-n N] [-f] -u UNIT...`: the last N lines of
    the units' output, unit by unit (-f: and follow)."""
    lines, follow, logs = '10', False, []
    words = iter(args)
    for word in words:
        if word == '-n':
            lines = next(words)
        elif word == '-f':
            follow = True
        elif word == '-u':
            logs.append(str(runtime / (next(words) + '.log')))
    logs = [log for log in logs if os.path.exists(log)]
    if not logs:
        return 0
    os.execvp('tail', ['tail', '-n', lines, *(['-f'] if follow else []), *logs])  # noqa: S606


def main(argv):
    units, runtime, program, *args = argv
    units, runtime = Path(units), Path(runtime)
    runtime.mkdir(parents=True, exist_ok=True)
    if program == 'journalctl':
        return journalctl(runtime, args)
    return systemctl(units, runtime, args)


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
