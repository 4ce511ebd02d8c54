"""What MiniTwit's database (DATABASE_URL) holds: counts, the simulator's
`latest`, and the newest messages with their ids (for flag_tool.py).

    python -m scripts.ops.inspect_db [--messages N]

The operator's `minitwitctl inspect` runs it with the server's settings.
"""
import argparse
from datetime import datetime, timezone

import database
from models import Follower, Latest, Message, User


def counts():
    """(what, how many) for the tables and the simulator's latest action."""
    return [('users', User.select().count()),
            ('messages', Message.select().count()),
            ('flagged messages', Message.select().where(Message.flagged).count()),
            ('follows', Follower.select().count()),
            ('latest simulator action', Latest.get_value())]


def newest_messages(limit):
    """The newest `limit` messages, flagged ones too, with their authors."""
    return (Message.select(Message, User).join(User)
            .order_by(Message.pub_date.desc(), Message.message_id.desc())
            .limit(limit))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--messages', type=int, default=10, metavar='N',
                        help='how many of the newest messages to show (10)')
    args = parser.parse_args(argv)
    if args.messages < 0:
        parser.error('--messages cannot be negative')
    database.configure()
    with database.connection():
        for what, number in counts():
            print('%-24s %d' % (what, number))
        messages = list(newest_messages(args.messages))
    if messages:
        print('\nnewest messages (id, UTC time, author, text; * = flagged):')
    for message in messages:
        when = datetime.fromtimestamp(message.pub_date, timezone.utc)
        print('%8d  %s  %s%s: %s' % (
            message.message_id, when.strftime('%Y-%m-%d %H:%M'),
            '*' if message.flagged else '', message.author.username,
            message.text.replace('\n', ' ')[:80]))


if __name__ == '__main__':
    main()
