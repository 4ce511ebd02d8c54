"""Links built from user names stay on the site and reach that user, for
any name the simulator API accepts: tried over real HTTP against both apps
under waitress, as an attacker registering names would."""
from urllib.parse import quote, urljoin, urlsplit

import pytest
import requests
from bs4 import BeautifulSoup

from scripts.simulator.simulate import Client

NAMES = [
    '/evil.example', '//evil.example', '/\\evil.example', '\\\\evil.example',
    '/%2F%2Fevil.example', 'http://evil.example', 'a/follow', 'x/unfollow',
    '.', '..', '../..', '../public', 'public', 'login', 'logout', 'static',
    '!bang', '!', 'Åse Ørsted', '李 小龍', 'what?#100%', '100%25', 'a b',
    '  spaced  ', 'semi;colon', 'amp&er=sand', '<b>"quoted"</b>', "it's",
    'tab\tname', '~tilde', '%', '?', '#', 'a..b', '.hidden',
]


@pytest.fixture
def site(start_server, make_db_url):
    """The web UI and the API on one database, every name registered, and a
    message by each (so /public links them all)."""
    url = make_db_url()
    api = Client(start_server('sim_api:app', url).url, timeout=10)
    web = start_server('minitwit:app', url)
    for name in NAMES + ['reader']:
        assert api.send('POST', '/register', {
            'username': name, 'email': 'x@x', 'pwd': 'secret'})[0] == 204
        # quote() leaves dots, and HTTP clients drop /. and /..
        segment = quote(name, safe='').replace('.', '%2E')
        assert api.send('POST', '/msgs/' + segment,
                        {'content': 'by ' + name})[0] == 204
    return web


def links(site):
    """(href, absolute URL, link text) of every author link on /public, all
    of its pages."""
    found, url = [], site.url + '/public'
    while url:
        html = BeautifulSoup(requests.get(url, timeout=10).text, 'html.parser')
        found += [(a['href'], urljoin(url, a['href']), a.text)
                  for a in html.select('ul.messages strong a')]
        older = html.select_one('a.older')
        url = older and urljoin(url, older['href'])
    return found


def heading(page):
    return BeautifulSoup(page.text, 'html.parser').h2.text


def test_every_author_link_stays_here_and_reaches_its_user(site):
    found = links(site)
    assert sorted(text for _, _, text in found) == sorted(NAMES + ['reader'])
    for href, absolute, name in found:
        assert href.startswith('/') and not href.startswith(('//', '/\\')), \
            href
        assert urlsplit(absolute).netloc == urlsplit(site.url).netloc, href
        profile = requests.get(absolute, timeout=10, allow_redirects=False)
        assert profile.status_code == 200, (name, href, profile.status_code)
        assert heading(profile) == "%s's Timeline" % name, href


def test_follow_and_unfollow_reach_the_named_user(site):
    session = requests.Session()
    session.post(site.url + '/login', timeout=10,
                 data={'username': 'reader', 'password': 'secret'})
    for _, absolute, name in links(site):
        if name == 'reader':
            continue
        for action, flash in (('follow', 'You are now following'),
                              ('unfollow', 'You are no longer following')):
            # The page's own form, and the original's link.
            for method in ('post', 'get'):
                res = session.request(method, absolute + '/' + action,
                                      timeout=10, allow_redirects=False)
                assert res.status_code in (302, 303), (name, action, res.text)
                # The redirect goes back to that user's page, here.
                target = urljoin(absolute, res.headers['Location'])
                assert urlsplit(target).netloc == urlsplit(site.url).netloc
                page = session.get(target, timeout=10)
                assert heading(page) == "%s's Timeline" % name
                flashed = BeautifulSoup(page.text, 'html.parser').select_one(
                    'ul.flashes li').text
                assert flashed == '%s "%s"' % (flash, name)
        following = session.get(absolute, timeout=10).text
        assert 'You are not yet following this user.' in following


def test_the_fixed_pages_keep_their_paths(site):
    """A user called 'public' does not take /public, nor '..' the root."""
    assert heading(requests.get(site.url + '/public', timeout=10)) == \
        'Public Timeline'
    assert requests.get(site.url + '/login', timeout=10).url.endswith('/login')
    assert heading(requests.get(site.url + '/!public', timeout=10)) == \
        "public's Timeline"
    assert heading(requests.get(site.url + '/a%2Ffollow', timeout=10)) == \
        "a/follow's Timeline"
