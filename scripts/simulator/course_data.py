"""The course's files: its simulator scenario, fetched and checked, and which
scenario (or original database) a make target uses.

    python -m scripts.simulator.course_data fetch              # make scenario
    python -m scripts.simulator.course_data scenario [FILE]    # prints the scenario to replay
    python -m scripts.simulator.course_data legacy [FILE]      # prints the dump to import

MINITWIT_DATA_DIR names a folder of the course's files (minitwit_scenario.csv,
itu_minitwit_legacy.sql); nothing outside the checkout is read without it.
`fetch` downloads the scenario from the course's repository at a pinned
commit (or copies it from MINITWIT_DATA_DIR), checks its sha256 and keeps it
in data/, which git ignores. Without the course's scenario a generated one of
the same size (scripts/simulator/gen_scenario.py, a fixed seed) is used instead.
Only the standard library: `make scenario` runs before .venv exists.
"""
import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CACHE = os.path.join(ROOT, 'data')
DATA_DIR_VAR = 'MINITWIT_DATA_DIR'
SCENARIO = 'minitwit_scenario.csv'
LEGACY = 'itu_minitwit_legacy.sql'
# The course's scenario at the commit that has it, and what it must hash to:
# a branch can move, a pinned commit and checksum cannot.
COMMIT = 'd889e28b63c6e360c7b4c43c915dcae5f47438a9'
SCENARIO_URL = ('https://raw.githubusercontent.com/itu-devops/lecture_notes/%s/'
                'sessions/session_03/API_Spec/minitwit_scenario.csv' % COMMIT)
SCENARIO_SHA256 = '064cfcd1cfcb46b0a51e3d5416d5573739e42127c122b725ad5c92be5cbfb0ec'
# Lets the tests serve the file themselves; they never reach the network.
URL_VAR = 'MINITWIT_SCENARIO_URL'
GENERATED = 'generated_scenario.csv'
# The course's size (200 users, 25,922 actions), so that a replay's figures
# compare with the course's; a fixed seed, so that they compare with each other.
GENERATED_ARGS = ['--seed', '1', '--users', '200', '--actions', '25922']


class CourseDataError(Exception):
    """A course file that was asked for is not there."""


def sha256(path):
    """The file's sha256, in hex."""
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 16), b''):
            digest.update(block)
    return digest.hexdigest()


def data_dir():
    """MINITWIT_DATA_DIR, or None when it is unset or empty."""
    return os.environ.get(DATA_DIR_VAR) or None


def course_file(name):
    """The path of the course's file `name` in MINITWIT_DATA_DIR; None when
    the variable is unset. A folder that was named but lacks the file is an
    error, never a quiet fallback."""
    folder = data_dir()
    if folder is None:
        return None
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise CourseDataError('%s=%s holds no %s' % (DATA_DIR_VAR, folder, name))
    return path


def copy_into(source, target):
    """Copy `source` to `target` through a temporary name, so that a reader
    never sees half a file."""
    partial = '%s.%d.part' % (target, os.getpid())
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def shown(path):
    """`path` as people read it: relative when it is under the current
    folder (data/minitwit_scenario.csv)."""
    relative = os.path.relpath(path)
    return path if relative.startswith('..') else relative


def remove(path):
    """Remove the file at `path` if there is one."""
    if os.path.exists(path):
        os.remove(path)


def download(url, target):
    """Write what `url` answers to `target`."""
    with urllib.request.urlopen(url, timeout=30) as answer, \
            open(target, 'wb') as out:
        shutil.copyfileobj(answer, out)


def fetch(cache=CACHE, url=None, expected=SCENARIO_SHA256):
    """`make scenario`: put the course's scenario in `cache`, checked against
    `expected`. Returns the exit status: 0 when it is there, and also when
    there is no network (the generated scenario then serves); 1 when what
    came has the wrong checksum (it is deleted) or the server refused."""
    url = url or os.environ.get(URL_VAR) or SCENARIO_URL
    target = os.path.join(cache, SCENARIO)
    os.makedirs(cache, exist_ok=True)
    if os.path.exists(target):
        if sha256(target) == expected:
            print('make scenario: %s is there already' % shown(target))
            return 0
        os.remove(target)
        print('make scenario: removed %s: not the course\'s (wrong sha256)'
              % shown(target))
    local = os.path.join(data_dir(), SCENARIO) if data_dir() else None
    if local and os.path.isfile(local) and sha256(local) == expected:
        copy_into(local, target)
        print('make scenario: %s, copied from %s' % (shown(target), local))
        return 0
    partial = '%s.%d.part' % (target, os.getpid())
    try:
        download(url, partial)
    except urllib.error.HTTPError as error:
        remove(partial)
        print('make scenario: %s answered %s %s' % (url, error.code, error.reason),
              file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        # No network: say so in one line, and go on with the generated scenario.
        remove(partial)
        print('make scenario: cannot download the course\'s scenario (%s); '
              'make simulate and make bench will use the generated scenario'
              % getattr(error, 'reason', error))
        return 0
    found = sha256(partial)
    if found != expected:
        os.remove(partial)
        print('make scenario: refused %s: its sha256 is %s, not %s; deleted'
              % (url, found, expected), file=sys.stderr)
        return 1
    os.replace(partial, target)
    print('make scenario: %s, from %s' % (shown(target), url))
    return 0


def generated_scenario(cache=CACHE):
    """The path of the generated scenario in `cache`, written first if it is
    not there yet."""
    path = os.path.join(cache, GENERATED)
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        partial = '%s.%d.part' % (path, os.getpid())
        # gen_scenario's command line, not an import: scripts/simulator/ imports
        # nothing of its own (docs/architecture.md).
        subprocess.run([sys.executable, '-m', 'scripts.simulator.gen_scenario',
                        *GENERATED_ARGS, '-o', partial], cwd=ROOT, check=True)
        os.replace(partial, path)
    return path


def choose_scenario(given=None, cache=CACHE):
    """(path, why) of the scenario to replay: `given` (SCENARIO=); else the
    course's in MINITWIT_DATA_DIR; else the one `make scenario` fetched;
    else a generated one."""
    fetched = os.path.join(cache, SCENARIO)
    if given:
        if not os.path.isfile(given):
            raise CourseDataError('SCENARIO=%s is not a file' % given)
        return given, 'SCENARIO'
    elif data_dir():
        return course_file(SCENARIO), "the course's, from %s" % DATA_DIR_VAR
    elif os.path.exists(fetched):
        return fetched, "the course's, from make scenario"
    else:
        return generated_scenario(cache), (
            'generated: gen_scenario.py %s; make scenario fetches the course\'s'
            % ' '.join(GENERATED_ARGS))


def choose_legacy(given=None):
    """The original's database to import: `given` (LEGACY=), else the
    course's dump in MINITWIT_DATA_DIR."""
    if given:
        return given
    elif data_dir():
        return course_file(LEGACY)
    raise CourseDataError("set LEGACY to the original's database (.db or .sql "
                          'dump), or %s to a folder holding %s'
                          % (DATA_DIR_VAR, LEGACY))


def main(argv=None):
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog='python -m scripts.simulator.course_data',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('--cache', default=CACHE, metavar='DIR',
                        help='where make scenario keeps its files (default: data/)')
    commands = parser.add_subparsers(dest='command', required=True)
    commands.add_parser('fetch', help="get the course's scenario into the cache")
    scenario = commands.add_parser('scenario', help='print the scenario to replay')
    scenario.add_argument('file', nargs='?', help='SCENARIO, when given')
    legacy = commands.add_parser('legacy', help="print the original's database to import")
    legacy.add_argument('file', nargs='?', help='LEGACY, when given')
    args = parser.parse_args(argv)
    try:
        if args.command == 'fetch':
            return fetch(args.cache)
        elif args.command == 'scenario':
            path, why = choose_scenario(args.file, args.cache)
            print('scenario: %s (%s)' % (shown(path), why), file=sys.stderr)
        else:
            path = choose_legacy(args.file)
    except CourseDataError as error:
        print('%s: %s' % (args.command, error), file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
