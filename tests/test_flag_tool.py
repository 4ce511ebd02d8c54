"""scripts/ops/flag_tool.py, the moderators' tool, through its command line; what
it hides is checked through the simulator API and the web UI."""
import pytest
from legacy_db import database_url, run_tool
from sim_client import AUTH, path, register, tweet
from ui_client import browser, login

import minitwit
from database import db
from models import Message, User


def flag_tool(*args):
    """Run the tool on the test's database."""
    return run_tool('flag_tool', *args, database_url=database_url())


def shown(api, *user):
    """The texts /msgs (or /msgs/<user>) shows, newest first."""
    return [m['content'] for m in
            api.get(path('msgs', *user, no=1000), headers=AUTH).json]


@pytest.fixture
def posts(api):
    """Two users and their messages: {text: message_id}."""
    for name in ('alice', 'bob'):
        assert register(api, name).status_int == 204
    for name, text in [('alice', 'alice one'), ('bob', 'bob one'),
                       ('alice', 'alice two'), ('bob', 'bob two, with a comma')]:
        assert tweet(api, name, text).status_int == 204
    return {m.text: m.message_id for m in Message.select()}


def test_flagged_messages_vanish_from_every_list(api, posts):
    result = flag_tool(posts['alice two'], posts['bob one'])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ['Flagged message %d' % posts['bob one'],
                                          'Flagged message %d' % posts['alice two']]
    assert shown(api) == ['bob two, with a comma', 'alice one']
    assert shown(api, 'alice') == ['alice one']
    assert shown(api, 'bob') == ['bob two, with a comma']
    # ... and from the web UI's timelines, alice's own home page too.
    alice = browser(minitwit.app)
    home = login(alice, 'alice', 'secret', status=200)
    assert 'You were logged in' in home.text
    for text in [home.text] + [alice.get(page).text
                               for page in ('/public', '/alice', '/bob')]:
        assert 'alice two' not in text and 'bob one' not in text
    assert 'alice one' in home.text


def test_unflag_shows_them_again(api, posts):
    assert flag_tool(*posts.values()).returncode == 0
    assert shown(api) == []
    result = flag_tool('--unflag', posts['alice two'])
    assert result.returncode == 0, result.stderr
    assert result.stdout == 'Unflagged message %d\n' % posts['alice two']
    assert shown(api) == ['alice two']
    assert shown(api, 'alice') == ['alice two']
    assert shown(api, 'bob') == []


def test_flagging_twice_is_harmless(api, posts):
    assert flag_tool(posts['alice one']).returncode == 0
    assert flag_tool(posts['alice one'], posts['alice one']).returncode == 0
    assert shown(api, 'alice') == ['alice two']


def test_unknown_ids_are_reported_and_the_others_still_flagged(api, posts):
    unknown = max(posts.values()) + 1
    result = flag_tool(posts['alice one'], unknown, 0)
    assert result.returncode == 1
    assert result.stdout == 'Flagged message %d\n' % posts['alice one']
    assert result.stderr.splitlines() == [
        'flag_tool.py: there is no message 0',
        'flag_tool.py: there is no message %d' % unknown]
    assert shown(api, 'alice') == ['alice two']


def test_arguments_that_are_not_ids_are_refused_before_any_change(api, posts):
    for bad in ['1; DROP TABLE message', '-1', '2.0', '\u0661',
                '1234567890123456789']:
        result = flag_tool(posts['alice one'], bad)
        assert result.returncode == 2
        assert 'flag_tool.py: error: argument ID: %r is not a message id (a ' \
            'whole number)' % bad in result.stderr
    assert shown(api, 'alice') == ['alice two', 'alice one']
    assert Message.select().where(Message.flagged == True).count() == 0  # noqa: E712


def test_inspect_prints_every_message_like_the_original(posts):
    assert flag_tool(posts['bob one']).returncode == 0
    alice, bob = (User.by_name(name).user_id for name in ('alice', 'bob'))
    result = flag_tool('-i')
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '%d,%d,alice one,0' % (posts['alice one'], alice),
        '%d,%d,bob one,1' % (posts['bob one'], bob),
        '%d,%d,alice two,0' % (posts['alice two'], alice),
        '%d,%d,bob two, with a comma,0' % (posts['bob two, with a comma'], bob)]


def test_inspect_pages_through_a_large_table(fresh_db):
    """More rows than one page, with gaps in the ids: each exactly once."""
    author = User.create(username='prolific', email='p@example.com',
                         pw_hash='x')
    ids = list(range(1, 2000)) + list(range(5000, 6500, 3))
    with db.atomic():
        Message.insert_many(
            [(i, author.user_id, 'message %d' % i, i, i % 5 == 0) for i in ids],
            fields=[Message.message_id, Message.author, Message.text,
                    Message.pub_date, Message.flagged]).execute()
    result = flag_tool('-i')
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        '%d,%d,message %d,%d' % (i, author.user_id, i, i % 5 == 0)
        for i in ids]


@pytest.mark.parametrize('args, error', [
    ((), 'give the ids of the messages to flag (or -i to list them)'),
    (('--unflag',), 'give the ids of the messages to unflag'),
    (('-i', '3'), '-i takes no ids'),
    (('-i', '--unflag'), 'argument --unflag: not allowed with argument -i'),
])
def test_usage_errors(tmp_path, args, error):
    target = tmp_path / 'minitwit.db'
    result = run_tool('flag_tool', *args,
                        database_url='sqlite:///%s' % target)
    assert result.returncode == 2
    assert 'flag_tool.py: error: %s' % error in result.stderr
    assert not target.exists()


def test_help():
    result = run_tool('flag_tool', '-h', database_url='sqlite:///unused')
    assert result.returncode == 0
    assert result.stdout.startswith('usage: flag_tool.py [-h] [--unflag | -i] '
                                    '[ID ...]')
    assert 'message_id,author_id,text,flagged' in result.stdout


def test_a_bad_database_url_is_a_clear_error():
    result = run_tool('flag_tool', '1', database_url='postgres://x/y')
    assert result.returncode == 2
    assert 'DATABASE_URL must start with sqlite:/// or mysql://' \
        in result.stderr
