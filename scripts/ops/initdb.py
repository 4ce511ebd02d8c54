"""Create MiniTwit's tables in DATABASE_URL (default sqlite:///minitwit.db).

Runs schema.sql, which only creates what is missing: safe to repeat, and
what deploy.sh runs before it switches to a new release.
"""
import database


def main():
    target = database.configure()
    database.create_schema()
    print('schema ready in %s' % getattr(target, 'database', target))


if __name__ == '__main__':
    main()
