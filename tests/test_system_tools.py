"""The `needs` marker (tests/system_tools.py): a test whose tool is missing
is skipped with the reason and the run says how to install it; under
MINITWIT_REQUIRE_ALL=1, as in CI, that skip and any other is a failure.
Run on a throwaway suite with pytester."""
import re
from pathlib import Path

import pytest
import system_tools

pytest_plugins = ['pytester']

SUITE = '''
import pytest
import system_tools

system_tools.PACKAGES['no-such-tool-here'] = 'no-such-package'

@pytest.mark.needs('no-such-tool-here')
def test_needs_a_missing_tool():
    pass

@pytest.mark.needs('make')
def test_needs_a_present_tool():
    pass

def test_skips_for_another_reason():
    pytest.skip('the course data is not here')
'''


@pytest.fixture
def suite(pytester, monkeypatch):
    monkeypatch.setenv('PYTHONPATH', str(Path(__file__).parent))
    pytester.makeconftest("pytest_plugins = ['system_tools']")
    pytester.makepyfile(test_suite=SUITE)
    return pytester


def test_a_missing_tool_skips_and_the_run_says_what_to_install(suite,
                                                               monkeypatch):
    monkeypatch.delenv('MINITWIT_REQUIRE_ALL', raising=False)
    result = suite.runpytest_subprocess('-p', 'no:xdist', '-p', 'no:cacheprovider')
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines([
        '*not run: 2 test(s)*',
        '*needs no-such-tool-here (package no-such-package)',
        '*the course data is not here',
        'Install what they need (no-such-package) with: sudo make deps'])


def test_under_require_all_every_skip_fails(suite, monkeypatch):
    monkeypatch.setenv('MINITWIT_REQUIRE_ALL', '1')
    result = suite.runpytest_subprocess('-p', 'no:xdist', '-p', 'no:cacheprovider')
    outcomes = result.parseoutcomes()
    assert outcomes.get('passed') == 1 and 'skipped' not in outcomes
    assert outcomes.get('failed', 0) + outcomes.get('errors', 0) == 2
    result.stdout.fnmatch_lines(['*MINITWIT_REQUIRE_ALL=1 allows no skip*'])


def test_every_tool_the_suite_asks_for_is_listed_with_its_package():
    asked = set()
    for path in Path(__file__).parent.glob('*.py'):
        for call in re.findall(r'mark\.needs\(([^)]*)\)', path.read_text(
                encoding='utf-8')):
            asked |= set(re.findall(r"'([^']+)'", call))
    asked -= {'no-such-tool-here', 'root'}
    assert asked and asked <= set(system_tools.PACKAGES)
