"""deploy/release.sh against a local stand-in for GitHub's REST API (GitHub
cannot be reached from here) that records every request: the right tag on
the right commit, the tarball, the notes, one release a week, and the token
never shown."""
import io
import json
import shutil
import subprocess
import tarfile
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from serving import ROOT

pytestmark = pytest.mark.needs('curl')  # release.sh talks to the API with it

TOKEN = 'ghp_test_token_that_must_never_be_printed_0123456789'
REPO = 'itu-devops/minitwit'
PREVIOUS = 'v2020.01'


class FakeGitHub(BaseHTTPRequestHandler):
    """The few endpoints release.sh uses, with one earlier release."""

    def do_GET(self):
        path = urlsplit(self.path).path
        self.record(b'')
        tag = path.removeprefix('/repos/%s/releases/tags/' % REPO)
        if path == '/repos/%s/releases/latest' % REPO:
            self.answer(200, {'tag_name': self.server.releases[-1]})
        elif tag != path and tag in self.server.releases:
            self.answer(200, {'tag_name': tag, 'html_url': 'http://x/' + tag})
        else:
            self.answer(404, {'message': 'Not Found'})

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self.rfile.read(int(self.headers['Content-Length']))
        self.record(body)
        if path == '/repos/%s/releases' % REPO:
            self.server.releases.append(json.loads(body)['tag_name'])
            self.answer(201, {
                'id': 7, 'html_url': 'http://x/%s' % self.server.releases[-1],
                'upload_url': 'http://127.0.0.1:%d/uploads/7/assets'
                              '{?name,label}' % self.server.server_port})
        elif path == '/uploads/7/assets':
            self.answer(201, {'state': 'uploaded'})
        else:
            self.answer(404, {'message': 'Not Found'})

    def record(self, body):
        self.server.requests.append((self.command, self.path,
                                     dict(self.headers), body))

    def answer(self, status, data):
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def github():
    server = ThreadingHTTPServer(('127.0.0.1', 0), FakeGitHub)
    server.requests, server.releases = [], [PREVIOUS]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def git(repo, *args):
    return subprocess.run(
        ['git', '-c', 'user.name=Test', '-c', 'user.email=test@example.com',
         *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A clone-like repository of this tree: the last release, then two
    commits; {'repo': path, 'feature': sha, 'fix': sha}."""
    repo = tmp_path / 'repo'
    files = subprocess.run(
        ['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if (Path(ROOT) / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(ROOT) / name, repo / name)
    git(repo, 'init', '-q', '-b', 'main')
    git(repo, 'add', '-A')
    git(repo, 'commit', '-q', '-m', 'Everything up to the last release')
    git(repo, 'tag', PREVIOUS)
    # deploy/ ships in the tarball: the release must hold the commit's copy.
    (repo / 'deploy' / 'NEWS').write_text('feature\n')
    git(repo, 'add', 'deploy/NEWS')
    git(repo, 'commit', '-q', '-m', 'Add the feature now in production')
    feature = git(repo, 'rev-parse', 'HEAD')
    (repo / 'deploy' / 'NEWS').write_text('fix\n')
    git(repo, 'commit', '-q', '-am', 'Fix not deployed yet')
    return {'repo': repo, 'feature': feature}


def release(repo, github, **env):
    environment = {'PATH': '/usr/local/bin:/usr/bin:/bin',
                   'HOME': str(repo.parent), 'GITHUB_TOKEN': TOKEN,
                   'GITHUB_REPOSITORY': REPO,
                   'GITHUB_API': 'http://127.0.0.1:%d' % github.server_port}
    environment.update(env)
    return subprocess.run([str(repo / 'deploy' / 'release.sh')], cwd=repo,
                          env=environment, capture_output=True, text=True,
                          timeout=120)


def this_week():
    year, week, _ = datetime.now(timezone.utc).isocalendar()
    return 'v%d.%02d' % (year, week)


def test_releases_the_production_commit_with_its_tarball_and_notes(
        repo, github):
    weeks = {this_week()}
    result = release(repo['repo'], github, RELEASE_COMMIT=repo['feature'])
    weeks.add(this_week())
    assert result.returncode == 0, result.stdout + result.stderr
    assert TOKEN not in result.stdout + result.stderr
    for _, _, headers, _ in github.requests:
        assert headers['Authorization'] == 'Bearer ' + TOKEN

    (_, _, _, created), (_, upload, headers, asset) = [
        r for r in github.requests if r[0] == 'POST']
    created = json.loads(created)
    tag = created['tag_name']
    assert tag in weeks
    assert created['target_commitish'] == repo['feature']
    assert created['name'] == 'MiniTwit ' + tag
    # Only the commits since the last release, up to the one released.
    assert created['body'] == '- Add the feature now in production (%s)\n' \
        % git(repo['repo'], 'rev-parse', '--short', repo['feature'])
    assert result.stdout.strip() == 'released %s (%s): http://x/%s' % (
        tag, repo['feature'], tag)

    assert urlsplit(upload).path == '/uploads/7/assets'
    assert parse_qs(urlsplit(upload).query) == {
        'name': ['minitwit-%s.tar.gz' % tag]}
    assert headers['Content-Type'] == 'application/gzip'
    with tarfile.open(fileobj=io.BytesIO(asset)) as tarball:
        top = 'minitwit-%s/' % tag
        assert tarball.extractfile(top + 'VERSION').read() == \
            tag.encode() + b'\n'
        assert tarball.extractfile(top + 'REVISION').read() == \
            repo['feature'].encode() + b'\n'
        # The commit's files, not the checkout's.
        assert tarball.extractfile(top + 'deploy/NEWS').read() == b'feature\n'
        assert top + 'sim_api.py' in tarball.getnames()


def test_a_week_gets_one_release(repo, github):
    assert release(repo['repo'], github).returncode == 0
    posts = [r for r in github.requests if r[0] == 'POST']
    result = release(repo['repo'], github)
    assert result.returncode == 0, result.stderr
    assert 'is released already' in result.stdout
    assert [r for r in github.requests if r[0] == 'POST'] == posts
    assert TOKEN not in result.stdout + result.stderr


def test_without_a_token_nothing_is_sent(repo, github):
    result = release(repo['repo'], github, GITHUB_TOKEN='')
    assert result.returncode != 0
    assert 'set GITHUB_TOKEN' in result.stderr
    assert github.requests == []
