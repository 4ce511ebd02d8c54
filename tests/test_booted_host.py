"""The booted-host harness (tests/host/bootedhost.py) does what later tests of
provisioning and deploys will lean on: a Debian 12 host with systemd as PID 1,
reached over SSH with a pinned key, installing packages offline, serving on
its own address, surviving a reboot, and leaving nothing behind.

Skipped where it cannot run (not root, no debootstrap or systemd-nspawn),
unless TEST_HOST=1 or MINITWIT_REQUIRE_ALL=1 asks for it: then it fails.
The first run builds the cached root (about 2 minutes), later ones reuse it.
"""
import http.client
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from host.bootedhost import BootedHost, missing_requirements  # noqa: E402

REQUIRED = os.environ.get('TEST_HOST') == '1' or os.environ.get('MINITWIT_REQUIRE_ALL') == '1'
# 10.231.<INDEX>.0/24: this test's own; another test booting hosts takes another.
INDEX = 11


def require_host_tools():
    """Skip where booted hosts cannot run, or fail if they were asked for."""
    reason = missing_requirements()
    if reason and REQUIRED:
        pytest.fail(reason + ' (TEST_HOST or MINITWIT_REQUIRE_ALL is set)', pytrace=False)
    if reason:
        pytest.skip(reason)


def get(address, port=80):
    """(status, body) of GET / straight to the host, never through a proxy."""
    connection = http.client.HTTPConnection(address, port, timeout=10)
    try:
        connection.request('GET', '/')
        response = connection.getresponse()
        return response.status, response.read().decode(errors='replace')
    finally:
        connection.close()


def leftovers(host, scratch):
    """Whatever of this host is still there: processes, namespace, veth, root."""
    found = []
    for entry in os.listdir('/proc'):
        try:
            cmdline = Path('/proc', entry, 'cmdline').read_bytes().replace(b'\0', b' ')
        except OSError:
            continue
        if b'systemd-nspawn' in cmdline and str(scratch).encode() in cmdline:
            found.append('nspawn process %s' % entry)
    netns = subprocess.run(['ip', 'netns', 'list'], capture_output=True, text=True).stdout
    found += ['namespace ' + line.split()[0] for line in netns.splitlines()
              if line.startswith('mth-%d-' % INDEX)]
    if Path('/sys/class/net', host.veth).exists():
        found.append('veth ' + host.veth)
    if host.root.exists():
        found.append('root copy ' + str(host.root))
    return found


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_booted_host_installs_offline_serves_reboots_and_leaves_nothing(tmp_path):
    require_host_tools()
    host = BootedHost(tmp_path, 'web', INDEX)
    try:
        host.start()
        assert host.state == 'running', host.failed_units

        assert host.ssh('hostname; id -u') == (0, 'web\n0\n', '')
        wrong = tmp_path / 'wrong_known_hosts'
        subprocess.run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f',
                        str(tmp_path / 'other_key')], check=True)
        other = (tmp_path / 'other_key.pub').read_text().split()[:2]
        wrong.write_text('%s %s\n' % (host.address, ' '.join(other)))
        code, _, err = host.ssh('true', known_hosts=wrong)
        assert code == 255 and 'Host key verification failed' in err, err

        code, out, err = host.ssh('DEBIAN_FRONTEND=noninteractive apt-get install -y -q '
                                  '--no-install-recommends nginx', timeout=300)
        assert code == 0, out + err
        status, body = get(host.address)
        assert status == 200 and 'nginx' in body

        host.reboot()
        assert host.ssh('systemctl is-enabled nginx; systemctl is-active nginx') \
            == (0, 'enabled\nactive\n', '')
        assert get(host.address)[0] == 200
        print('booted host timings:', host.timings)
    finally:
        host.close()
    print('booted host timings:', host.timings)
    assert leftovers(host, tmp_path) == []
