"""Write a simulator scenario in the course's format, from a seed.

    python -m scripts.simulator.gen_scenario [--seed 1] [--users 50] [--actions 2000] [-o FILE]

Tab-separated lines: id, delay, timestamp, command, user, then email and
password for `register`, the text for `tweet`, the other user for `follow`
and `unfollow`. Like the course's scenario it has names with spaces and
non-ASCII letters, texts with curly quotes, dashes and æøå, follows that
repeat and unfollows of pairs that are not followed; every user registers
before acting. The same seed always gives the same file.
"""
import argparse
import random
import sys

FIRST = ['Åse', 'Søren', 'Zoë', 'Mañana', 'Björk', 'Jürgen', 'Renée', 'Łukasz',
         'Chloé', 'Ægir', 'Roger', 'Mellie', 'Ngozi', 'Jiří', 'Anaïs', '李',
         'Olú', 'Dagný', 'Siân', "D'Arcy"]
LAST = ['Ørsted', 'Histand', 'Nørgaard', "O'Brien", 'Ðurić', 'Smith-Jones',
        'Æbelø', 'Müller', 'Yost', 'Ševčík', '小龍', 'Gómez', 'Strauß',
        'Ó Súilleabháin', 'van der Berg']
WORDS = ['the', 'sea', 'was', 'calm', 'and', 'Holmes', 'said', 'nothing',
         'æble', 'grød', 'smørrebrød', 'café', 'naïve', 'over', 'ørken',
         'whale', 'Baker', 'Street', 'lantern', 'fog', 'we', 'it', 'had',
         '£5', '1½', 'Ahab']
PUNCTUATION = ['“%s”', '‘%s’', '%s — indeed', '%s…', '%s!', '%s?', '%s;',
               '«%s»', '%s – twice', '%s 🐋']
DOMAINS = ['itu.dk', 'ku.dk', 'gmail.com', 'dtu.dk', 'hotmail.com']


def sentence(rng):
    words = ' '.join(rng.choice(WORDS) for _ in range(rng.randint(3, 16)))
    text = rng.choice(PUNCTUATION) % (words[0].upper() + words[1:])
    return text[:140]


def password(rng):
    alphabet = ('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
                '!"#%&\'()*+,-./:;<=>?@[\\]^_`{|}~')
    return ''.join(rng.choice(alphabet) for _ in range(rng.randint(5, 10)))


def generate(seed=1, users=50, actions=2000):
    """Yield the scenario's rows as lists of strings."""
    rng = random.Random(seed)
    names = []
    while len(names) < users:
        name = '%s %s' % (rng.choice(FIRST), rng.choice(LAST))
        if name in names:
            name = '%s %d' % (name, len(names))
        names.append(name)
    # Users register in the order of `names`: the next one is
    # names[len(registered)].
    registered, following, clock = [], {}, 1582246860738
    for action_id in range(actions):
        delay = rng.randint(1, 20000000)
        clock += delay // 1000
        roll = rng.random()
        if len(registered) < len(names) and (not registered or roll < 0.08):
            name = names[len(registered)]
            registered.append(name)
            following[name] = set()
            row = ['register', name, '%s@%s' % (name.replace(' ', '.'),
                                                rng.choice(DOMAINS)),
                   password(rng)]
        elif roll < 0.5 or len(registered) < 2:
            row = ['tweet', rng.choice(registered), sentence(rng)]
        elif roll < 0.8:
            who, whom = rng.sample(registered, 2)
            if following[who] and rng.random() < 0.15:
                whom = rng.choice(sorted(following[who]))  # a repeat
            following[who].add(whom)
            row = ['follow', who, whom]
        else:
            who, whom = rng.sample(registered, 2)
            if following[who] and rng.random() < 0.7:
                whom = rng.choice(sorted(following[who]))
            following[who].discard(whom)  # often a pair not followed at all
            row = ['unfollow', who, whom]
        yield [str(action_id), str(delay), str(clock)] + row


def generate_actions(seed=1, users=50, actions=2000):
    """The same scenario as simulate.read_scenario yields a file's:
    (id, command, fields) tuples."""
    return [(int(row[0]), row[3], row[4:])
            for row in generate(seed, users, actions)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seed', type=int, default=1)
    parser.add_argument('--users', type=int, default=50)
    parser.add_argument('--actions', type=int, default=2000)
    parser.add_argument('-o', '--output', help='file to write (default: '
                        'standard output)')
    args = parser.parse_args(argv)
    out = open(args.output, 'w', encoding='utf-8', newline='') \
        if args.output else sys.stdout
    try:
        for row in generate(args.seed, args.users, args.actions):
            out.write('\t'.join(row) + '\n')
    finally:
        if args.output:
            out.close()


if __name__ == '__main__':
    main()
