#!/usr/bin/env python3
"""Create MiniTwit's tables in DATABASE_URL (default sqlite:///minitwit.db).

Runs schema.sql, which only creates what is missing: safe to repeat, and
what deploy.sh runs before it switches to a new release.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import models  # noqa: E402


def main():
    database = models.configure()
    models.create_schema()
    print('schema ready in %s' % getattr(database, 'database', database))


if __name__ == '__main__':
    main()
