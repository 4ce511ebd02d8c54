"""Tests that need a system tool ask for it, and the run says what it lacked.

    @pytest.mark.needs('nginx', 'sshd')      # commands (or files) of
    def test_...():                          # tests/system-packages.txt
    @pytest.mark.needs('root')               # or to be run as root

Where something is missing the test is skipped with the reason, and the run
ends with one summary: what was not run, the packages that bring it, and the
one command that installs them (`sudo make deps`). Under
MINITWIT_REQUIRE_ALL=1, as .ci/run sets it, every skip is a failure instead:
CI never goes green with part of the suite missing.

A plugin of tests/conftest.py (pytest_plugins).
"""
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGES_FILE = Path(__file__).with_name('system-packages.txt')
REQUIRE_ALL = os.environ.get('MINITWIT_REQUIRE_ALL') == '1'
INSTALL = 'sudo make deps'
PREFIX = 'needs '
# Daemons live in sbin, which a user's PATH often lacks.
SEARCH_PATH = os.pathsep.join([os.environ.get('PATH', ''), '/usr/sbin', '/sbin'])


def packages():
    """{command or file: the Debian package that brings it}."""
    found = {}
    for line in PACKAGES_FILE.read_text(encoding='utf-8').splitlines():
        package, *provides = line.split('#', 1)[0].split() or [None]
        for tool in provides:
            if tool != '-':
                found[tool] = package
    return found


PACKAGES = packages()


def present(tool):
    if tool == 'root':
        return os.geteuid() == 0
    if tool.startswith('/'):
        return os.path.exists(tool)
    return shutil.which(tool, path=SEARCH_PATH) is not None


def which(tool):
    """The path of a command the tests need (sbin included)."""
    return shutil.which(tool, path=SEARCH_PATH) or tool


def describe(tool):
    if tool == 'root':
        return 'root'
    return '%s (package %s)' % (tool, PACKAGES[tool])


def missing(tools):
    unknown = [t for t in tools if t != 'root' and t not in PACKAGES]
    if unknown:
        raise ValueError('needs(%s): not in %s' % (', '.join(unknown),
                                                   PACKAGES_FILE.name))
    return [t for t in tools if not present(t)]


def require(*tools):
    """Skip the calling test (fail under MINITWIT_REQUIRE_ALL=1) unless
    every tool is here: the marker's check, for fixtures too."""
    lacking = missing(tools)
    if lacking:
        reason = PREFIX + ', '.join(map(describe, lacking))
        if REQUIRE_ALL:
            pytest.fail(reason + ', and MINITWIT_REQUIRE_ALL=1 allows no '
                        'skip: ' + INSTALL, pytrace=False)
        pytest.skip(reason)


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'needs(*tools): system commands or files the test runs '
        "(tests/system-packages.txt), or 'root'; skipped without them")


def pytest_runtest_setup(item):
    tools = [tool for marker in item.iter_markers('needs')
             for tool in marker.args]
    if tools:
        require(*tools)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under MINITWIT_REQUIRE_ALL=1 a skip of any kind is a failure."""
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, 'wasxfail'):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) \
            else str(report.longrepr)
        report.outcome = 'failed'
        report.longrepr = '%s, and MINITWIT_REQUIRE_ALL=1 allows no skip' \
            % reason


def skip_reason(report):
    if isinstance(report.longrepr, tuple):
        return report.longrepr[2].removeprefix('Skipped: ')
    return str(report.longrepr)


def pytest_terminal_summary(terminalreporter):
    """One short account of what was not run, and how to run it."""
    skipped = terminalreporter.stats.get('skipped', [])
    if not skipped:
        return
    by_reason = defaultdict(int)
    wanted = set()
    for report in skipped:
        reason = skip_reason(report)
        by_reason[reason] += 1
        for package in re.findall(r'\(package ([^)]+)\)', reason):
            wanted.add(package)
    terminalreporter.section('not run: %d test(s)' % len(skipped), sep='-')
    for reason, count in sorted(by_reason.items()):
        terminalreporter.line('  %3d  %s' % (count, reason))
    if wanted:
        terminalreporter.line('Install what they need (%s) with: %s' % (
            ' '.join(sorted(wanted)), INSTALL))
