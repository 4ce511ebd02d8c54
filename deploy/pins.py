"""Print the pinned requirements of dependency groups of pyproject.toml
(PEP 735), one a line, for a pip older than 25.1 (no --group), as a server
has: `python3 deploy/pins.py app | pip install -r /dev/stdin`.

    python3 deploy/pins.py [--pyproject FILE] GROUP...

Standard library only (tomllib: Python 3.11); an include-group is followed.
"""
import argparse
import os
import sys
import tomllib


def requirements(groups, name, seen=()):
    if name in seen:
        sys.exit('pins: dependency group %s includes itself' % name)
    if name not in groups:
        sys.exit('pins: pyproject.toml has no dependency group %s' % name)
    for item in groups[name]:
        if isinstance(item, dict):
            yield from requirements(groups, item['include-group'], (*seen, name))
        else:
            yield item


def main(argv=None):
    parser = argparse.ArgumentParser(prog='deploy/pins.py', description=__doc__.split('\n\n')[0])
    parser.add_argument('--pyproject', default=os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'pyproject.toml'))
    parser.add_argument('group', nargs='+')
    args = parser.parse_args(argv)
    with open(args.pyproject, 'rb') as f:
        groups = tomllib.load(f).get('dependency-groups', {})
    for name in args.group:
        print('\n'.join(requirements(groups, name)))


if __name__ == '__main__':
    main()
