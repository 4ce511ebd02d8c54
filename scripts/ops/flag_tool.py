"""Hide messages from every timeline and API list, or show them again.

    python -m scripts.ops.flag_tool ID...           flag these messages
    python -m scripts.ops.flag_tool --unflag ID...  unflag them
    python -m scripts.ops.flag_tool -i              print every message as
                                                message_id,author_id,text,flagged
    python -m scripts.ops.flag_tool -h              this help

The moderators' tool of the original ITU-MiniTwit, on DATABASE_URL. The
original pasted its arguments into SQL; this one takes whole numbers only and
checks all of them before it changes anything. Ids of messages that do not
exist are reported and the exit status is 1; the others are still (un)flagged.
`-i` prints like the original, the text as it is, one message a line (a
text with a newline in it spans two).
"""
import argparse
import os
import re
import sys

import peewee

import database
from database import db
from models import Message

# Ids are looked up this many at a time (SQLite binds at most 32,766 values
# a statement) and -i reads this many rows at a time, so that neither holds a
# whole table in memory.
CHUNK = 1000


def message_id(text):
    """An argument as a message id, or a clear error."""
    if not re.fullmatch('[0-9]{1,18}', text):
        raise argparse.ArgumentTypeError('%r is not a message id (a whole '
                                         'number)' % text)
    return int(text)


def set_flagged(ids, flagged):
    """Set `flagged` on the messages `ids`; returns the ids that exist."""
    ids = sorted(set(ids))
    found = []
    with db.atomic():
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            found += [row[0] for row in Message.select(Message.message_id)
                      .where(Message.message_id.in_(chunk)).tuples()]
            (Message.update(flagged=flagged)
             .where(Message.message_id.in_(chunk)).execute())
    return found


def inspect(out):
    """Print every message, oldest id first, CHUNK rows at a time.

    Pages by id rather than with one query: PyMySQL reads a whole result
    into memory before it returns the first row.
    """
    last = 0
    while True:
        rows = list(Message.select(Message.message_id, Message.author,
                                   Message.text, Message.flagged)
                    .where(Message.message_id > last)
                    .order_by(Message.message_id).limit(CHUNK).tuples())
        for message, author, text, flagged in rows:
            out.write('%d,%d,%s,%d\n' % (message, author, text, flagged))
        if len(rows) < CHUNK:
            return
        last = rows[-1][0]


def main(argv=None):
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog='flag_tool.py', description=__doc__.split('\n\n')[0],
        epilog='The database is DATABASE_URL (default %s).'
        % database.DEFAULT_DATABASE_URL)
    parser.add_argument('ids', nargs='*', type=message_id, metavar='ID',
                        help='ids of messages to flag (or unflag)')
    action = parser.add_mutually_exclusive_group()
    action.add_argument('--unflag', action='store_true',
                        help='show the messages again')
    action.add_argument('-i', '--inspect', action='store_true',
                        help='print every message as '
                        'message_id,author_id,text,flagged')
    args = parser.parse_args(argv)
    if args.inspect and args.ids:
        parser.error('-i takes no ids')
    if not args.inspect and not args.ids:
        parser.error('give the ids of the messages to %s (or -i to list them)'
                     % ('unflag' if args.unflag else 'flag'))
    try:
        database.configure()
        with database.connection():
            if args.inspect:
                inspect(sys.stdout)
                return 0
            found = set_flagged(args.ids, not args.unflag)
    except ValueError as error:
        parser.error(str(error))
    except peewee.DatabaseError as error:
        print('flag_tool.py: the database failed: %s' % error, file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `flag_tool.py -i | head` closed the pipe: that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    for message in sorted(found):
        print('%s message %d' % ('Unflagged' if args.unflag else 'Flagged',
                                 message))
    missing = sorted(set(args.ids) - set(found))
    for message in missing:
        print('flag_tool.py: there is no message %d' % message,
              file=sys.stderr)
    return 1 if missing else 0


if __name__ == '__main__':
    sys.exit(main())
