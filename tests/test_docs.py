"""The README and docs/ cannot go stale: every command they show is checked
against the project, and the API's examples are sent for real.

- every `sh` block's commands: a make target must exist and accept its
  variables (`make -n`), a module run with `python -m` must exist and know
  every --option used (its --help), a script must exist and name its
  options, a WSGI name must import;
- inline `make ...` and `python -m ...` spans: the same;
- the README's `make help` is what `make help` prints;
- every link between the documents points at a file and heading that exist;
- docs/api.md's curl examples, sent to a running API, answer what they say.
"""
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from serving import ROOT

HERE = Path(ROOT)
DOCS = [HERE / 'README.md', *sorted((HERE / 'docs').glob('*.md'))]
# Commands of other programs that the docs show to operators; not ours to
# check (vagrant and ssh-keygen have their own manuals).
OTHER_PROGRAMS = {'vagrant', 'ssh-keygen', 'export', 'journalctl', 'systemctl',
                  'curl', 'ssh', 'python3', 'cat'}


def blocks(kind):
    """(document, text) of every fenced block of `kind`."""
    for doc in DOCS:
        text = doc.read_text(encoding='utf-8')
        for match in re.finditer(r'^```%s\n(.*?)^```' % kind, text, re.M | re.S):
            yield doc, match.group(1)


def commands(block):
    """The commands of a shell block, continuation lines joined."""
    joined = re.sub(r'\\\n\s*', ' ', block)
    for line in joined.splitlines():
        line = line.strip().removeprefix('$ ')
        if line and not line.startswith('#'):
            yield line


def words_of(command):
    """The words of a command without its leading VAR=value settings."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r'[A-Z_]+=.*', words[0]):
        words.pop(0)
    return words


def run(args, **kwargs):
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True,
                          timeout=60, **kwargs)


def make_targets():
    out = run(['make', '--no-print-directory', 'help']).stdout
    return set(re.findall(r'^  make (\S+)', out, re.M))


TARGETS = make_targets()


def check(words):
    """What is wrong with a documented command, or None."""
    program, args = words[0], words[1:]
    if program == 'make':
        targets = [a for a in args if '=' not in a and not a.startswith('-')]
        unknown = [t for t in targets if t not in TARGETS]
        if unknown:
            return 'no make target %s' % ', '.join(unknown)
        dry = run(['make', '-n', '--no-print-directory', *args])
        return None if dry.returncode == 0 else 'make -n fails: ' + dry.stderr
    if program.endswith('python') and args[:1] == ['-m']:
        module, options = args[1], args[2:]
        helped = run([sys.executable, '-m', module, '--help'])
        if helped.returncode != 0:
            return 'python -m %s --help fails: %s' % (module, helped.stderr)
        unknown = [o.split('=')[0] for o in options if o.startswith('--')
                   and o.split('=')[0] not in helped.stdout]
        return 'unknown options %s' % unknown if unknown else None
    if program.endswith('waitress-serve'):
        module, _, name = args[-1].partition(':')
        imported = run([sys.executable, '-c', 'import %s; %s.%s' % (
            module, module, name)])
        return None if imported.returncode == 0 else imported.stderr
    if program.startswith(('./', 'deploy/', 'scripts/')):
        script = HERE / program
        if not script.is_file():
            return 'no script %s' % program
        text = script.read_text(encoding='utf-8')
        unknown = [o for o in args if o.startswith('--') and o not in text]
        return 'unknown options %s' % unknown if unknown else None
    if program == 'minitwitctl':
        usage = (HERE / 'scripts' / 'ops' / 'minitwitctl').read_text(encoding='utf-8')
        return None if re.search(r'^  %s\b' % re.escape(args[0]), usage,
                                 re.M) else 'minitwitctl has no ' + args[0]
    if program in OTHER_PROGRAMS:
        return None
    return 'a command the docs test does not know: %s' % program


def documented_commands():
    for doc, block in blocks('sh'):
        for command in commands(block):
            yield doc.name, command
    for doc in DOCS:
        text = doc.read_text(encoding='utf-8')
        for span in re.findall(r'`((?:make|\.venv/bin/python -m|python -m) [^`]+)`', text):
            if not re.search(r'\.\.\.|[A-Z]+\b(?!=)|\[', span.split(' ', 1)[1]):
                yield doc.name, span


@pytest.mark.parametrize('doc, command', sorted(set(documented_commands())))
def test_every_documented_command_is_ours_and_current(doc, command):
    assert check(words_of(command)) is None, (doc, command)


def test_the_readme_lists_what_make_help_prints():
    readme = (HERE / 'README.md').read_text(encoding='utf-8')
    listed = readme.split('`make help` lists them:', 1)[1]
    listed = re.search(r'```text\n(.*?)```', listed, re.S).group(1)
    assert listed == run(['make', '--no-print-directory', 'help']).stdout


def anchor(heading):
    """GitHub's id for a heading."""
    slug = re.sub(r'[^\w\- ]', '', heading.strip().lower())
    return slug.replace(' ', '-')


def test_every_link_between_the_documents_resolves():
    broken = []
    for doc in DOCS:
        for target in re.findall(r'\]\(([^)#\s]*)(#[^)\s]*)?\)',
                                 doc.read_text(encoding='utf-8')):
            path, fragment = target
            if path.startswith(('http://', 'https://')):
                continue
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.exists():
                broken.append((doc.name, path))
            elif fragment and linked.suffix == '.md':
                headings = re.findall(r'^#+ (.*)$', linked.read_text(
                    encoding='utf-8'), re.M)
                if fragment[1:] not in map(anchor, headings):
                    broken.append((doc.name, path + fragment))
    assert broken == []


def api_examples():
    """(curl words, expected status, expected body) of docs/api.md's
    Examples block."""
    text = (HERE / 'docs' / 'api.md').read_text(encoding='utf-8')
    block = re.search(r'## Examples\n.*?```sh\n(.*?)```', text, re.S).group(1)
    examples = []
    for line in re.sub(r'\\\n\s*', ' ', block).splitlines():
        code, _, comment = line.partition('  #')
        comment = comment.strip()
        if code.strip().startswith('#'):
            examples[-1][2] = json.loads(line.strip()[1:].strip())
        elif code.strip():
            status = int(comment) if re.fullmatch(r'\d{3}', comment) else 200
            body = json.loads(comment) if comment.startswith('{') else None
            examples.append([shlex.split(code), status, body])
    return examples


@pytest.mark.needs('curl')
def test_the_api_examples_answer_what_they_say(make_db_url, start_server):
    server = start_server('sim_api:app', make_db_url())
    examples = api_examples()
    assert len(examples) == 5
    for words, status, body in examples:
        words = [w.replace('http://127.0.0.1:5001', server.url) for w in words]
        done = run([*words, '-w', '\n%{http_code}'])
        answer, _, code = done.stdout.rpartition('\n')
        assert int(code) == status, (words, done.stdout)
        if body is not None:
            got = json.loads(answer)
            if isinstance(got, list):  # the date is the moment it was posted
                for message, shown in zip(got, body, strict=True):
                    shown['pub_date'] = message['pub_date']
            assert got == body, words
