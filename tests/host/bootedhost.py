"""A real Debian 12 host for tests: systemd as PID 1 under systemd-nspawn.

build_root() debootstraps bookworm once, into a cache outside the repository,
with every package provisioning installs already downloaded into its apt
cache. BootedHost copies that root and boots the copy in a network namespace
of its own at 10.231.<index>.2, so that provisioning and deploy tests can
treat it as a droplet: ssh root@address, apt-get install, systemctl, reboot.
It needs root, debootstrap and systemd-container; the build needs Debian's
mirror (the one in this machine's apt sources), a booted host no network.

    python3 tests/host/bootedhost.py build | probe [SCRATCH] | cleanup

What the probe found here (Debian 12, systemd 252, cgroup v1/v2 hybrid,
a PID 1 that is not systemd):
- Times: build 65-90 s, once per cache key; copy 2-4 s (560 MB; ext4, so
  no reflink); boot 0.6 s until systemd says running and SSH answers;
  reboot 0.7-1 s; close 0.5 s.
- Offline, `apt-get update` exits 0 after about 8 s, with "W: Failed to
  fetch ... Temporary failure resolving" and "Some index files failed to
  download. They have been ignored, or old ones used instead."; the lists
  from the build stay. `apt-get install -y --no-install-recommends nginx
  mariadb-server ufw` then exits 0 in about 10 s, all from the cache.
- nginx and MariaDB start under systemd, enabled; MariaDB's data survives a
  reboot(); so do ufw's rules.
- `ufw --force enable` (over SSH) works with --capability=CAP_NET_ADMIN,
  iptables-nft on the kernel's own nf_tables; without it: "Could not fetch
  rule set generation id: Permission denied". Its net.* sysctls need
  /proc/sys/net writable: SYSTEMD_NSPAWN_API_VFS_WRITABLE=network.
- A service with ProtectSystem=strict ProtectHome=yes PrivateTmp=yes
  PrivateDevices=yes ProtectKernelTunables=yes ProtectKernelModules=yes
  ProtectControlGroups=yes NoNewPrivileges=yes RestrictSUIDSGID=yes
  LockPersonality=yes starts, with User= and with DynamicUser=yes plus a
  StateDirectory= (in one early manual try the latter's first start failed,
  226/NAMESPACE, ".../var/lib/private/NAME: No such file or directory", and
  never again since). `journalctl -u` works inside.
- From here, address:80 and :22 answer. The host has no default route: it
  reaches 10.231.<index>.1 (this machine) and nothing else, other hosts
  included; no resolver either.
- nspawn needs --register=no --keep-unit here (no systemd bus). It puts its
  payload/ and supervisor/ cgroups into the cgroup it starts in, so each
  host gets its own. SIGKILL to nspawn leaves the container running: the
  teardown kills every process in the host's cgroups and network namespace
  (the container's PID 1 among them, which takes its PID namespace along).
"""
import atexit
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

CACHE_DIR = Path(os.environ.get('MINITWIT_TEST_HOST_CACHE', '/var/cache/minitwit-test-host'))
# Bump when build_root() changes what it puts in the root: a new cache key.
BUILD_VERSION = 1
SUITE = 'bookworm'
# Installed in the root: enough to boot, to be reached over SSH and to make
# a virtualenv, like a fresh droplet.
BASE_PACKAGES = ('systemd', 'systemd-sysv', 'dbus', 'openssh-server', 'python3',
                 'python3-venv', 'ca-certificates', 'iproute2', 'procps')
# Only downloaded into the root's apt cache: whatever provisioning will
# `apt-get install` inside a booted host, which has no network. Extend freely
# (the cache key follows the list).
PROVISION_PACKAGES = ('python3', 'python3-venv', 'nginx', 'mariadb-server', 'ufw', 'curl',
                      'logrotate', 'iproute2', 'openssl', 'python3-dev', 'gcc',
                      'libmariadb-dev', 'pkg-config', 'galera-4', 'rsync', 'certbot',
                      'python3-certbot-nginx', 'mariadb-backup', 'socat')
# The booted hosts have no route out: nothing to resolve names with.
OFFLINE_RESOLV_CONF = '# A test host: no network beyond its own veth, so no resolver.\n'
BUILD_TIMEOUT = 1500


def _host_debian_sources():
    """This machine's own Debian sources: (file name in sources.list.d, text,
    the mirror for debootstrap).

    The root uses the mirror and suites (updates, security) that apt uses
    here, so it reaches whatever this machine reaches, and no mirror is
    written into the repository.
    """
    deb822 = Path('/etc/apt/sources.list.d/debian.sources')
    text = deb822.read_text() if deb822.exists() else ''
    for stanza in text.split('\n\n'):
        fields = dict(re.findall(r'^(\w[\w-]*):\s*(.*)$', stanza, re.M))
        if SUITE in fields.get('Suites', '').split():
            return 'debian.sources', text, fields['URIs'].split()[0]
    one_line = Path('/etc/apt/sources.list')
    text = one_line.read_text() if one_line.exists() else ''
    found = re.search(r'^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+%s\s' % SUITE, text, re.M)
    if found:
        return 'debian.list', text, found.group(1)
    raise RuntimeError('no %s source in %s or %s: cannot tell which Debian mirror '
                       'to build the test host from' % (SUITE, deb822, one_line))


def cache_key():
    """What the cached root is made of: change any part, get a new root."""
    recipe = json.dumps([BUILD_VERSION, SUITE, BASE_PACKAGES, PROVISION_PACKAGES,
                         _host_debian_sources()])
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def _mounts_under(path):
    """Mount points at or below path (a build interrupted mid-way may leave some)."""
    prefix = str(path).rstrip('/') + '/'
    with open('/proc/self/mountinfo') as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p == str(path) or p.startswith(prefix)]


def remove_tree(path):
    """rm -rf that refuses to descend into a mount (a bound /dev, say)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if _mounts_under(path):
        raise RuntimeError('refusing to remove %s: mounts below it: %s'
                           % (path, _mounts_under(path)))
    subprocess.run(['rm', '-rf', '--one-file-system', str(path)], check=True, timeout=300)


def _build_step(argv, log, timeout, cgroups=()):
    """Run one build command; if it fails to finish, stop all of it.

    In a process group of its own, so that on timeout or interrupt SIGTERM
    reaches debootstrap's dpkg as well, and nspawn (which passes it on as
    SIGKILL to what runs inside); SIGKILL follows after 10 s. In cgroups,
    if given: emptied and removed afterwards.
    """
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_make_cgroups(cgroups))
        _wait_step(proc, argv, timeout)
    finally:
        _remove_cgroups(cgroups)


def _wait_step(proc, argv, timeout):
    try:
        code = proc.wait(timeout)
    except BaseException:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue
            except ProcessLookupError:
                break
        raise
    if code:
        raise subprocess.CalledProcessError(code, argv)


def _in_root(root, script, log, timeout):
    """Run a shell script in root with this machine's network (for apt).

    systemd-nspawn, not chroot: it mounts /proc, /sys and /dev in a mount
    namespace of its own and takes them away when it exits, however it exits.
    """
    os.makedirs('/run/systemd/nspawn/propagate', exist_ok=True)
    try:
        _build_step(['systemd-nspawn', '--quiet', '-D', str(root), '--register=no',
                     '--keep-unit', '--resolv-conf=copy-host', '--timezone=off',
                     '--link-journal=no', '--console=pipe',
                     '--setenv=DEBIAN_FRONTEND=noninteractive', '/bin/sh', '-ec', script],
                    log, timeout, cgroups=_build_cgroups())
    finally:
        _forget_nspawn(root, Path(root).name)


def _download_script():
    """apt-get update, then fetch (not install) every provisioning package.

    Fetched all together and one by one, with and without recommends, so
    that an install of any subset later, offline, finds every .deb it picks.
    """
    packages = ' '.join(PROVISION_PACKAGES)
    fetch = 'apt-get install -y -q --download-only'
    return '\n'.join([
        'apt-get update -q',
        '%s %s' % (fetch, packages),
        '%s --no-install-recommends %s' % (fetch, packages),
        'for p in %s; do' % packages,
        '  %s "$p" >/dev/null' % fetch,
        '  %s --no-install-recommends "$p" >/dev/null' % fetch,
        'done',
        'ls /var/cache/apt/archives/*.deb | wc -l',
    ])


def _build_cgroups():
    """Where the build's processes run: what a killed build left running is
    found there by the next one (which holds the same lock)."""
    return _cgroup_dirs('build-' + cache_key())


def _build(root, log):
    sources_name, sources, mirror = _host_debian_sources()
    # Its own mount namespace: debootstrap mounts /proc, /sys and maybe /dev
    # into the root, and an interrupted one would leave them mounted here.
    _build_step(['unshare', '--mount', '--propagation', 'private', 'debootstrap',
                 '--variant=minbase', '--include=' + ','.join(BASE_PACKAGES),
                 SUITE, str(root), mirror], log, BUILD_TIMEOUT, cgroups=_build_cgroups())
    apt = root / 'etc/apt'
    (apt / 'sources.list').unlink(missing_ok=True)
    (apt / 'sources.list.d' / sources_name).write_text(sources)
    _in_root(root, _download_script(), log, timeout=BUILD_TIMEOUT)
    resolv = root / 'etc/resolv.conf'
    resolv.unlink(missing_ok=True)
    resolv.write_text(OFFLINE_RESOLV_CONF)
    (root / 'etc/minitwit-test-host').write_text(cache_key() + '\n')


def build_root(cache_dir=CACHE_DIR):
    """The cached Debian root as a Path, built the first time (a minute or two).

    Kept outside the repository in cache_dir/<key>/root (build.log beside
    it), the key a hash of the package lists, the apt sources and
    BUILD_VERSION. It is built in a temporary folder renamed into place only
    when complete, so an interrupted build is never used; a lock makes
    concurrent callers (pytest workers) wait for one build, not do their own.
    """
    key = cache_key()
    home = Path(cache_dir) / key
    final = home / 'root'
    if final.is_dir():
        return final
    home.mkdir(parents=True, exist_ok=True)
    with open(home / 'lock', 'w') as lock:
        deadline = time.monotonic() + BUILD_TIMEOUT
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError('another process has been building %s for too long'
                                       % final) from None
                time.sleep(2)
        if final.is_dir():
            return final
        _remove_cgroups(_build_cgroups())  # a killed build's leftovers
        for stale in home.glob('root.tmp-*'):
            _forget_nspawn(stale, stale.name)
            remove_tree(stale)
        tmp = home / ('root.tmp-%d' % os.getpid())
        with open(home / 'build.log', 'w') as log:
            try:
                _build(tmp, log)
            except BaseException:
                remove_tree(tmp)
                raise
        os.rename(tmp, final)
    return final


# --- booted hosts ------------------------------------------------------------

NETNS_PREFIX = 'mth-'
# Index locks: one host per index (its addresses, namespace and veth) at a time.
LOCK_DIR = Path('/run/minitwit-test-host')
# Each host's nspawn runs in a cgroup of its own below this one: nspawn puts
# its payload/ and supervisor/ into whatever cgroup it starts in, so two
# hosts in one cgroup would share them; and a cgroup lists every process a
# host ever started, to be killed at the end.
CGROUP_NAME = 'minitwit-test-host'
# What every boot gets, beyond root, machine name and network namespace.
NSPAWN_OPTIONS = (
    '--boot',
    # This machine's PID 1 is no systemd: there is no bus to register on.
    '--register=no', '--keep-unit',
    # The same uids as on a droplet; the copy's files stay plain root-owned.
    '--private-users=no',
    # ufw (iptables-nft) in the host's own network namespace needs it;
    # without it: "Could not fetch rule set generation id: Permission denied".
    '--capability=CAP_NET_ADMIN',
    # SIGTERM to nspawn powers the host off in order (instead of halting).
    '--kill-signal=SIGRTMIN+4',
    # The root's own resolv.conf (no resolver) and localtime stay as they are.
    '--resolv-conf=off', '--timezone=off',
    # The journal stays inside the host (journalctl -u works in there).
    '--link-journal=no',
    # Boot messages go to the log file; nothing reads the console.
    '--console=read-only',
)
# /proc/sys/net writable inside (it is read-only otherwise with a network
# namespace given by path): ufw sets net.ipv4.* sysctls when it starts.
NSPAWN_ENV = {'SYSTEMD_NSPAWN_API_VFS_WRITABLE': 'network'}
EXIT_REBOOT = 133  # nspawn's exit code when the container rebooted
PATH_INSIDE = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
TOOLS = ('debootstrap', 'systemd-nspawn', 'unshare', 'nsenter', 'setpriv', 'ip', 'ssh',
         'ssh-keygen', 'cp')


def missing_requirements():
    """Why booted hosts cannot run here (not root, a tool missing), or None."""
    if os.geteuid() != 0:
        return 'booted test hosts need root (network namespaces, systemd-nspawn)'
    path = os.environ.get('PATH', '') + ':/usr/sbin:/sbin'
    missing = [tool for tool in TOOLS if not shutil.which(tool, path=path)]
    if missing:
        return 'booted test hosts need %s (apt-get install debootstrap systemd-container)' \
            % ', '.join(missing)
    return None


def _bounded(argv, timeout, input=None):
    """Run argv, return (returncode, stdout, stderr) as text.

    On timeout the whole process group is killed, not just argv[0]: the
    command nsenter starts lives on in the host when nsenter alone dies.
    Then subprocess.TimeoutExpired is raised.
    """
    if isinstance(input, str):
        input = input.encode()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe:
                pipe.close()
        raise
    return proc.returncode, out.decode(errors='replace'), err.decode(errors='replace')


def _ip(*args):
    subprocess.run(['ip', *args], check=True, timeout=30, stdin=subprocess.DEVNULL)


def _delete_link(name, timeout=10):
    """Delete a network link and wait until it is gone.

    Deleting a namespace takes its end of a veth away, and with it this
    end, but a moment later: the link can vanish under `ip link delete`.
    """
    deadline = time.monotonic() + timeout
    while os.path.exists('/sys/class/net/' + name):
        subprocess.run(['ip', 'link', 'delete', name], stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, timeout=30)
        if time.monotonic() > deadline:
            raise RuntimeError('network link %s is still there' % name)
        time.sleep(0.05)


def _keygen(path, kind, comment):
    Path(path).unlink(missing_ok=True)
    subprocess.run(['ssh-keygen', '-q', '-t', kind, '-N', '', '-C', comment, '-f', str(path)],
                   check=True, timeout=60, stdin=subprocess.DEVNULL)


def _cgroup_dirs(name):
    """A cgroup for name in each hierarchy systemd tracks processes in.

    cgroup2 (unified or hybrid) and the v1 name=systemd one: where nspawn
    puts the container and where the container's systemd keeps its units.
    """
    dirs = []
    with open('/proc/self/mountinfo') as mountinfo:
        for line in mountinfo:
            fields = line.split()
            fstype, options = fields[fields.index('-') + 1], fields[-1].split(',')
            if fstype == 'cgroup2' or (fstype == 'cgroup' and 'name=systemd' in options):
                dirs.append(os.path.join(fields[4], CGROUP_NAME, name))
    return dirs


def _cgroup_pids(dirs):
    pids = set()
    for top in dirs:
        for folder, _, files in os.walk(top):
            if 'cgroup.procs' in files:
                try:
                    with open(os.path.join(folder, 'cgroup.procs')) as procs:
                        pids.update(int(pid) for pid in procs.read().split())
                except OSError:
                    pass
    return pids


def _make_cgroups(dirs):
    """Create the cgroups; returns what a child runs before exec to join them."""
    for folder in dirs:
        os.makedirs(folder, exist_ok=True)

    def join():
        for folder in dirs:
            with open(os.path.join(folder, 'cgroup.procs'), 'w') as procs:
                procs.write('0')
    return join


def _remove_cgroups(dirs):
    """Kill what is left in the cgroups and remove them, subgroups first."""
    _kill_all(lambda: _cgroup_pids(dirs))
    for top in dirs:
        for folder, _, _ in os.walk(top, topdown=False):
            try:
                os.rmdir(folder)
            except OSError:
                pass
        try:
            os.rmdir(os.path.dirname(top))  # CGROUP_NAME, once nothing else is in it
        except OSError:
            pass


def netns_pids(netns):
    """Processes in the named network namespace (what `ip netns pids` does)."""
    try:
        target = os.stat('/run/netns/' + netns).st_ino
    except FileNotFoundError:
        return set()
    pids = set()
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                if os.stat('/proc/%s/ns/net' % entry).st_ino == target:
                    pids.add(int(entry))
            except OSError:
                pass
    return pids


def _kill_all(find, timeout=15):
    """SIGKILL whatever find() lists until it lists nothing (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        pids = find() - {os.getpid()}
        if not pids:
            return
        if time.monotonic() > deadline:
            raise RuntimeError('processes %s survive SIGKILL' % sorted(pids))
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _forget_nspawn(root, machine):
    """Remove what nspawn leaves in /run after running root as machine: a
    lock file, and a propagate/ folder it may not remove as /run is no tmpfs
    here ("Attempted to remove disk file system ... we can't allow that")."""
    if root and os.path.exists(root):
        st = os.stat(root)
        Path('/run/systemd/nspawn/locks/inode-%d:%d' % (st.st_dev, st.st_ino)).unlink(
            missing_ok=True)
    try:
        os.rmdir('/run/systemd/nspawn/propagate/' + machine)
    except OSError:
        pass


def _force_cleanup(state):
    """Kill every process of one host and take its network and cgroups away.

    Idempotent and needs nothing but state (a dict of plain names), so the
    watchdog can do it too when the process that owned the host died.
    """
    netns, cgroups = state['netns'], state['cgroups']
    # Killing the container's PID 1 kills its whole PID namespace, so
    # commands nsenter started in there go with it.
    _kill_all(lambda: _cgroup_pids(cgroups) | netns_pids(netns))
    if os.path.exists('/run/netns/' + netns):
        _ip('netns', 'delete', netns)
    _delete_link(state['veth'])
    _remove_cgroups(cgroups)
    root = state.get('root')
    _forget_nspawn(root, state['machine'])
    if root and state.get('remove_root'):
        remove_tree(root)


def _lock_index(index, wait):
    """An open, flock()ed file for index, or None if another process has it."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK_DIR / ('index-%d.lock' % index), 'w')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        lock.close()
        return None
    return lock


def _cleanup_index(index):
    """Take away what a dead process's host with this index left (lock held)."""
    prefix = '%s%d-' % (NETNS_PREFIX, index)
    names = {n for n in os.listdir('/run/netns') if n.startswith(prefix)} \
        if os.path.isdir('/run/netns') else set()
    for top in _cgroup_dirs(''):
        if os.path.isdir(top):
            names.update(n for n in os.listdir(top) if n.startswith(prefix))
    for name in sorted(names):
        _force_cleanup({'netns': name, 'veth': '%s%d' % (NETNS_PREFIX, index),
                        'cgroups': _cgroup_dirs(name), 'machine': name[len(prefix):]})
    _delete_link('%s%d' % (NETNS_PREFIX, index))


def cleanup_stale():
    """Clean up after hosts whose process died (SIGKILL) and whose watchdog
    did not get to it: every index found in use that nobody holds a lock on."""
    found = set(os.listdir('/run/netns')) if os.path.isdir('/run/netns') else set()
    found.update(os.listdir('/sys/class/net'))
    for top in _cgroup_dirs(''):
        if os.path.isdir(top):
            found.update(os.listdir(top))
    indexes = {int(m.group(1)) for m in
               (re.match(r'%s(\d+)(-|$)' % NETNS_PREFIX, n) for n in found) if m}
    for index in sorted(indexes):
        lock = _lock_index(index, wait=False)
        if lock:
            try:
                _cleanup_index(index)
            finally:
                lock.close()


def _watchdog(state_json):
    """The watchdog process: cleans a host up if its owner dies without close().

    It waits on a pipe from the owner: 'done' means close() did the work;
    end of file without it means the owner is gone (killed, os._exit).
    """
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if sys.stdin.readline().strip() != 'done':
        _force_cleanup(json.loads(state_json))


HOSTS = '''127.0.0.1\tlocalhost
127.0.1.1\t{name}
{address}\t{name}
::1\t\tlocalhost ip6-localhost ip6-loopback
ff02::1\t\tip6-allnodes
ff02::2\t\tip6-allrouters
'''


class BootedHost:
    """One Debian 12 host booted with systemd as PID 1, like a fresh droplet.

    Its own copy of the cached root (hostname, machine-id and SSH host keys
    of its own), its own network namespace with address 10.231.<index>.2
    reached over a veth from 10.231.<index>.1 in this machine's namespace,
    and no route beyond: nothing it does reaches any other address.

        with BootedHost(tmp_path, 'web', 3) as host:
            host.ssh('apt-get install -y nginx')    # over SSH, key pinned
            host.run('systemctl is-active nginx')   # nsenter, no SSH needed
            host.reboot()

    Everything is bounded in time. close() (also at exit, and done by a
    watchdog process if this one is killed) leaves no process, namespace,
    veth or cgroup behind, and removes the copy unless keep_root.
    """

    def __init__(self, scratch, name, index, *, authorized_keys=(), boot_timeout=60,
                 keep_root=False, source=None):
        """Nothing happens until start(); files go to scratch/name/.

        name: its hostname (and part of its namespace's name); index: 1 to
        254, its addresses, one host per index on this machine at a time;
        authorized_keys: public key lines that may log in as root, beside
        the key made for it (identity); source: a root to copy instead of
        build_root()'s; keep_root: leave the copy for a post-mortem.
        """
        if not re.fullmatch(r'[a-z][a-z0-9-]{0,30}', name):
            raise ValueError('host name %r: lower-case letters, digits, dashes' % name)
        if not 1 <= int(index) <= 254:
            raise ValueError('index %r: 1 to 254' % index)
        self.name, self.index = name, int(index)
        self.address = '10.231.%d.2' % self.index
        self.gateway = '10.231.%d.1' % self.index
        self.netns = '%s%d-%s' % (NETNS_PREFIX, self.index, name)
        self.veth = '%s%d' % (NETNS_PREFIX, self.index)
        self.dir = Path(scratch) / name
        self.root = self.dir / 'root'
        self.log_path = self.dir / 'console.log'
        self.identity = self.dir / 'id_ed25519'
        self.known_hosts = self.dir / 'known_hosts'
        self.authorized_keys = list(authorized_keys)
        self.boot_timeout = boot_timeout
        self.keep_root = keep_root
        self.source = source
        self.state = 'new'        # then running or degraded, off, closed
        self.failed_units = []    # when degraded: what failed at boot
        self.timings = {}         # seconds: copy, boot, reboot, close
        self._cgroups = _cgroup_dirs(self.netns)
        self._index_lock = self._watchdog = self._proc = self._init = None
        self._bounding = 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return '<BootedHost %s %s %s>' % (self.name, self.address, self.state)

    # --- lifecycle -----------------------------------------------------------

    def start(self):
        """Copy the root and boot it (the first time), or boot it again after
        poweroff(); returns self once SSH answers and systemd is up."""
        if self.state == 'closed':
            raise RuntimeError('%r is closed' % self)
        if self._running():
            return self
        try:
            if self.state == 'new':
                self._prepare()
            self._boot()
        except BaseException:
            self.close()
            raise
        return self

    def reboot(self, timeout=None):
        """`systemctl reboot` inside, and wait until it is up again.

        The container's systemd shuts everything down and nspawn exits with
        133; it is started again on the same root, as a systemd unit running
        nspawn would be. The new boot has a new boot id.
        """
        started = time.monotonic()
        before = self.boot_id()
        self._ask('reboot')
        code = self._wait_exit(timeout or self.boot_timeout)
        if code != EXIT_REBOOT:
            raise RuntimeError('%r: nspawn exited with %s after systemctl reboot, not %d\n%s'
                               % (self, code, EXIT_REBOOT, self.log_tail()))
        self._boot()
        if self.boot_id() == before:
            raise RuntimeError('%r: the same boot id after a reboot' % self)
        self.timings['reboot'] = round(time.monotonic() - started, 2)

    def poweroff(self, timeout=None):
        """`systemctl poweroff` inside; start() boots it again."""
        self._ask('poweroff')
        code = self._wait_exit(timeout or self.boot_timeout)
        self.state = 'off'
        if code != 0:
            raise RuntimeError('%r: nspawn exited with %s after systemctl poweroff\n%s'
                               % (self, code, self.log_tail()))

    def close(self, timeout=30):
        """Power off (SIGTERM to nspawn, SIGKILL after timeout s), then kill
        whatever is left and remove namespace, veth, cgroups and the copy.
        Safe to call twice, and before start()."""
        if self.state == 'closed':
            return
        self.state = 'closed'
        atexit.unregister(self.close)
        if self._index_lock is None:
            return  # never got as far as taking anything
        started = time.monotonic()
        try:
            if self._running():
                self._proc.terminate()
                try:
                    self._proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass  # _force_cleanup kills it
        finally:
            # Told 'done' only when all went well: otherwise the watchdog,
            # seeing its pipe close, tries once more.
            done = b''
            try:
                _force_cleanup(self._cleanup_state())
                if self._proc is not None:
                    self._proc.wait(10)
                done = b'done\n'
            finally:
                if self._watchdog is not None:
                    try:
                        self._watchdog.communicate(done, timeout=60)
                    except subprocess.TimeoutExpired:
                        self._watchdog.kill()
                self._index_lock.close()
                self._init = None
        self.timings['close'] = round(time.monotonic() - started, 2)

    # --- commands inside -----------------------------------------------------

    def run(self, command, timeout=120, input=None, env=None):
        """Run a shell command in the host as root: (returncode, stdout, stderr).

        By nsenter into the namespaces of the host's PID 1, so it works
        whatever state sshd is in. The command gets PID 1's capability
        bounding set (not this machine's full one); unlike a login over SSH
        it is outside the host's cgroups and seccomp filter and gets a
        minimal environment (PATH, HOME, LANG) plus env.
        """
        if self._init is None:
            raise RuntimeError('%r is not running' % self)
        caps = ','.join(['-all'] + ['+cap_%d' % n for n in range(64) if self._bounding >> n & 1])
        variables = ['PATH=' + PATH_INSIDE, 'HOME=/root', 'USER=root', 'LOGNAME=root',
                     'LANG=C.UTF-8', 'TERM=dumb']
        variables += ['%s=%s' % item for item in (env or {}).items()]
        return _bounded(['setpriv', '--bounding-set', caps,
                         'nsenter', '--target', str(self._init), '--all', '--root', '--wd',
                         'env', '-i', *variables, '/bin/sh', '-c', command], timeout, input)

    def ssh_options(self, known_hosts=None, identity=None):
        """ssh's options (no `ssh`, no destination): this host's key pinned,
        no agent, no user config, no prompts. For `rsync -e`, scp, scripts."""
        return ['-F', '/dev/null', '-i', str(identity or self.identity),
                '-o', 'IdentitiesOnly=yes', '-o', 'IdentityAgent=none',
                '-o', 'UserKnownHostsFile=%s' % (known_hosts or self.known_hosts),
                '-o', 'GlobalKnownHostsFile=/dev/null', '-o', 'StrictHostKeyChecking=yes',
                '-o', 'HostKeyAlgorithms=ssh-ed25519', '-o', 'BatchMode=yes',
                '-o', 'ConnectTimeout=5', '-o', 'ServerAliveInterval=5',
                '-o', 'ServerAliveCountMax=3', '-o', 'LogLevel=ERROR']

    def ssh(self, command, timeout=120, input=None, known_hosts=None, identity=None):
        """Run a shell command over SSH as root, as a deploy would:
        (returncode, stdout, stderr); 255 is ssh's own failure.

        On timeout the ssh client is killed and TimeoutExpired raised; as
        after any dropped connection, what the command started inside may
        run on until it ends or the host is closed.
        """
        return _bounded(['ssh', *self.ssh_options(known_hosts, identity), '--',
                         'root@' + self.address, command], timeout, input)

    def host_key(self):
        """The host's ed25519 public key: 'ssh-ed25519 AAAA...' (no comment)."""
        line = (self.root / 'etc/ssh/ssh_host_ed25519_key.pub').read_text()
        return ' '.join(line.split()[:2])

    def boot_id(self):
        """This boot's id: nspawn gives every boot of the container a new one."""
        code, out, err = self.run('cat /proc/sys/kernel/random/boot_id', timeout=15)
        if code:
            raise RuntimeError('%r: no boot id: %s' % (self, err))
        return out.strip()

    def log_tail(self, lines=30):
        """The end of the console log (nspawn's and the boot's messages)."""
        try:
            text = self.log_path.read_text(errors='replace')
        except FileNotFoundError:
            return ''
        return '\n'.join(text.splitlines()[-lines:])

    # --- the parts -----------------------------------------------------------

    def _running(self):
        return self._proc is not None and self._proc.poll() is None

    def _cleanup_state(self):
        return {'netns': self.netns, 'veth': self.veth, 'cgroups': self._cgroups,
                'machine': self.name, 'root': str(self.root),
                'remove_root': not self.keep_root}

    def _prepare(self):
        """Take the index, clean what a dead run left, copy and personalize
        the root, lay the network."""
        self._index_lock = _lock_index(self.index, wait=False)
        if self._index_lock is None:
            raise RuntimeError('test host index %d is in use by another process' % self.index)
        _cleanup_index(self.index)
        source = Path(self.source or build_root())
        self.dir.mkdir(parents=True, exist_ok=True)
        remove_tree(self.root)
        _make_cgroups(self._cgroups)
        self._watchdog = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), 'watchdog',
             json.dumps(self._cleanup_state())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
        atexit.register(self.close)
        started = time.monotonic()
        subprocess.run(['cp', '-a', '--reflink=auto', str(source), str(self.root)],
                       check=True, timeout=600)
        self.timings['copy'] = round(time.monotonic() - started, 2)
        self._personalize()
        self._network()

    def _personalize(self):
        """Hostname, machine-id, SSH host keys of its own; our key for root."""
        etc = self.root / 'etc'
        (etc / 'hostname').write_text(self.name + '\n')
        (etc / 'hosts').write_text(HOSTS.format(name=self.name, address=self.address))
        (etc / 'machine-id').write_text(uuid.uuid4().hex + '\n')
        dbus_id = self.root / 'var/lib/dbus/machine-id'
        dbus_id.unlink(missing_ok=True)
        dbus_id.symlink_to('/etc/machine-id')
        for old in (etc / 'ssh').glob('ssh_host_*'):
            old.unlink()
        for kind in ('ed25519', 'ecdsa', 'rsa'):
            _keygen(etc / 'ssh' / ('ssh_host_%s_key' % kind), kind, 'root@' + self.name)
        if not self.identity.exists():
            _keygen(self.identity, 'ed25519', 'minitwit-test@' + self.name)
        keys = [Path(str(self.identity) + '.pub').read_text().strip(), *self.authorized_keys]
        dot_ssh = self.root / 'root/.ssh'
        dot_ssh.mkdir(mode=0o700, exist_ok=True)
        authorized = dot_ssh / 'authorized_keys'
        authorized.write_text('\n'.join(keys) + '\n')
        authorized.chmod(0o600)
        self.known_hosts.write_text('%s %s\n' % (self.address, self.host_key()))

    def _network(self):
        """Namespace, veth: this end .1 here, eth0 .2 in there; no default route."""
        _ip('netns', 'add', self.netns)
        _ip('link', 'add', self.veth, 'type', 'veth', 'peer', 'name', 'eth0',
            'netns', self.netns)
        _ip('addr', 'add', self.gateway + '/24', 'dev', self.veth)
        _ip('link', 'set', self.veth, 'up')
        _ip('-n', self.netns, 'addr', 'add', self.address + '/24', 'dev', 'eth0')
        _ip('-n', self.netns, 'link', 'set', 'eth0', 'up')
        _ip('-n', self.netns, 'link', 'set', 'lo', 'up')

    def _boot(self):
        """Start nspawn on the root and wait (boot_timeout) until it is up."""
        started = time.monotonic()
        deadline = started + self.boot_timeout
        os.makedirs('/run/systemd/nspawn/propagate', exist_ok=True)
        with open(self.log_path, 'ab') as log:
            self._proc = subprocess.Popen(
                ['systemd-nspawn', '-D', str(self.root), '--machine=' + self.name,
                 '--network-namespace-path=/run/netns/' + self.netns, *NSPAWN_OPTIONS],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=dict(os.environ, **NSPAWN_ENV), start_new_session=True,
                preexec_fn=_make_cgroups(self._cgroups))
        self._init = self._find_init(deadline)
        with open('/proc/%d/status' % self._init) as status:
            self._bounding = int(re.search(r'^CapBnd:\s*(\w+)', status.read(), re.M).group(1), 16)
        self.state = self._wait_systemd(deadline)
        self._wait_ssh(deadline)
        self.failed_units = []
        if self.state == 'degraded':
            code, out, _ = self.run('systemctl --failed --no-legend --plain', timeout=15)
            self.failed_units = [line.split()[0] for line in out.splitlines() if line.strip()]
            print('%r: degraded, failed units: %s' % (self, ' '.join(self.failed_units)),
                  file=sys.stderr)
        self.timings['boot'] = round(time.monotonic() - started, 2)

    def _alive_until(self, deadline, what):
        if not self._running():
            raise RuntimeError('%r: nspawn exited (%s) while %s\n%s'
                               % (self, self._proc.returncode, what, self.log_tail()))
        if time.monotonic() > deadline:
            raise TimeoutError('%r: not up after %s s (%s)\n%s'
                               % (self, self.boot_timeout, what, self.log_tail()))

    def _find_init(self, deadline):
        """The container's PID 1 as this machine sees it: nspawn's child that
        is PID 1 in its own PID namespace, once it runs systemd."""
        parent = str(self._proc.pid)
        while True:
            self._alive_until(deadline, 'waiting for its PID 1')
            for entry in os.listdir('/proc'):
                try:
                    with open('/proc/%s/status' % entry) as status:
                        fields = dict(line.split(':', 1) for line in status if ':' in line)
                except (OSError, ValueError):
                    continue
                if fields.get('PPid', '').strip() == parent \
                        and fields.get('NSpid', '').split()[-1:] == ['1'] \
                        and fields.get('Name', '').strip() == 'systemd':
                    return int(entry)
            time.sleep(0.05)

    def _wait_systemd(self, deadline):
        """`systemctl is-system-running --wait` until it says running or degraded."""
        while True:
            self._alive_until(deadline, 'waiting for systemd')
            try:
                _, out, _ = self.run('systemctl is-system-running --wait',
                                     timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                continue  # _alive_until raises now
            state = out.strip()
            if state in ('running', 'degraded'):
                return state
            time.sleep(0.2)

    def _wait_ssh(self, deadline):
        """Until root logs in over SSH with our key and the pinned host key."""
        while True:
            self._alive_until(deadline, 'waiting for sshd')
            try:
                with socket.create_connection((self.address, 22), timeout=1):
                    pass
                code, _, err = self.ssh('true', timeout=10)
                if code == 0:
                    return
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.2)

    def _ask(self, verb):
        """systemctl reboot/poweroff inside; its shell may die with the host."""
        try:
            self.run('systemctl ' + verb, timeout=15)
        except subprocess.TimeoutExpired:
            pass

    def _wait_exit(self, timeout):
        try:
            code = self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError('%r: still running %s s after shutting down\n%s'
                               % (self, timeout, self.log_tail())) from None
        self._init = None
        return code


# --- probe: what works inside, for whoever writes the next tests ------------

HARDENED_UNIT = '''[Service]
Type=exec
{user}
ExecStart=/usr/bin/python3 -m http.server --bind 127.0.0.1 {port}
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
'''


def _http_status(address, port, timeout=3):
    """GET / straight to address:port (no proxy from the environment)."""
    import http.client
    connection = http.client.HTTPConnection(address, port, timeout=timeout)
    try:
        connection.request('GET', '/')
        return connection.getresponse().status
    except OSError as error:
        return type(error).__name__
    finally:
        connection.close()


def probe(scratch, index=240):
    """Boot a host and try what provisioning will need; print what happens.

    python3 tests/host/bootedhost.py probe [SCRATCH]   (as root)
    """
    def report(what, value):
        print('%-58s %s' % (what, value), flush=True)

    def timed(what, command, timeout=600):
        started = time.monotonic()
        code, out, err = host.ssh(command, timeout=timeout)
        report(what, 'exit %d in %.1f s  %s' % (code, time.monotonic() - started,
                                                (out + err).strip().splitlines()[-1:]))
        return code, out

    started = time.monotonic()
    build_root()
    report('build_root (0 when cached)', '%.1f s' % (time.monotonic() - started))
    with BootedHost(scratch, 'probe', index) as host:
        report('start', '%s %s failed: %s' % (host.state, host.timings, host.failed_units))
        timed('apt-get update, offline', 'apt-get update -q')
        timed('apt-get install nginx mariadb-server ufw, offline',
              'DEBIAN_FRONTEND=noninteractive apt-get install -y -q '
              '--no-install-recommends nginx mariadb-server ufw')
        report('nginx, mariadb active', host.ssh('systemctl is-active nginx mariadb')[1].split())
        timed('ufw allow ssh, http; ufw --force enable (over SSH)',
              'ufw allow 22/tcp && ufw allow 80/tcp && ufw --force enable')
        host.ssh('systemd-run --unit=probe-8080 python3 -m http.server --bind 0.0.0.0 8080')
        time.sleep(1)
        report('from here: :80, :22, :8080 (ufw should drop it)',
               [_http_status(host.address, 80), _port_open(host.address, 22),
                _http_status(host.address, 8080, timeout=2)])
        for name, user, port in (('dynamic', 'DynamicUser=yes\nStateDirectory=probe-dynamic', 8001),
                                 ('nobody', 'User=nobody', 8002)):
            unit = HARDENED_UNIT.format(user=user, port=port)
            host.ssh('cat > /etc/systemd/system/probe-%s.service' % name, input=unit)
            host.ssh('systemctl daemon-reload; systemctl start probe-%s' % name)
            time.sleep(1)
            code, out, _ = host.ssh('systemctl is-active probe-%s; journalctl -u probe-%s '
                                    '--no-pager -o cat | tail -n 2' % (name, name))
            report('hardened service, %s; journalctl -u' % user.replace('\n', ' '),
                   out.split('\n', 1)[0] + ' | ' + ' / '.join(out.splitlines()[1:]))
        host.ssh('mysql -e "CREATE DATABASE kept; CREATE TABLE kept.t (x INT); '
                 'INSERT INTO kept.t VALUES (42)"')
        host.reboot()
        report('reboot', host.timings)
        report('after reboot: mariadb row, nginx, ufw',
               [host.ssh('mysql -N -e "SELECT x FROM kept.t"')[1].strip(),
                host.ssh('systemctl is-enabled nginx; systemctl is-active nginx ufw')[1].split(),
                _http_status(host.address, 80), _http_status(host.address, 8080, timeout=2)])
    report('close', host.timings)


def _port_open(address, port):
    try:
        with socket.create_connection((address, port), timeout=3):
            return 'open'
    except OSError as error:
        return type(error).__name__


if __name__ == '__main__':
    if sys.argv[1:2] == ['watchdog']:
        _watchdog(sys.argv[2])
    elif sys.argv[1:2] == ['build']:
        print(build_root())
    elif sys.argv[1:2] == ['cleanup']:
        cleanup_stale()
    elif sys.argv[1:2] == ['probe']:
        import tempfile
        probe(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix='minitwit-probe-'))
    else:
        sys.exit('usage: bootedhost.py build | probe [SCRATCH] | cleanup')
