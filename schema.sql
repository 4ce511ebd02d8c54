-- MiniTwit's schema: one script for SQLite and MariaDB.
--
-- What stands in /*! ... */ is run by MariaDB (and MySQL) and is a comment to
-- SQLite; /*M! ... */ is run by MariaDB alone. Every statement is idempotent:
-- the apps run this file when they first reach the database, and
-- `make initdb` runs it on demand. tests/test_schema.py proves it matches
-- models.py on both databases.
--
-- Table and column names are the original ITU-MiniTwit's, so its data and
-- tools carry over.

CREATE TABLE IF NOT EXISTS user (
  user_id INTEGER NOT NULL PRIMARY KEY /*! AUTO_INCREMENT */,
  -- Binary, no-pad collation: names are compared byte for byte, so "Åse",
  -- "ase" and "ase " are three different users, as they are on SQLite.
  username VARCHAR(255) /*M! COLLATE utf8mb4_nopad_bin */ NOT NULL,
  email VARCHAR(255) NOT NULL,
  pw_hash VARCHAR(255) NOT NULL
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 */;

CREATE UNIQUE INDEX IF NOT EXISTS user_username ON user (username);

CREATE TABLE IF NOT EXISTS message (
  message_id INTEGER NOT NULL PRIMARY KEY /*! AUTO_INCREMENT */,
  author_id INTEGER NOT NULL REFERENCES user (user_id),
  text TEXT NOT NULL,
  pub_date INTEGER NOT NULL,
  flagged BOOLEAN NOT NULL DEFAULT 0
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 */;

-- Newest unflagged messages, everybody's or one author's, are index ranges.
CREATE INDEX IF NOT EXISTS message_flagged_pub_date_message_id
  ON message (flagged, pub_date, message_id);
CREATE INDEX IF NOT EXISTS message_author_id_flagged_pub_date_message_id
  ON message (author_id, flagged, pub_date, message_id);

CREATE TABLE IF NOT EXISTS follower (
  id INTEGER NOT NULL PRIMARY KEY /*! AUTO_INCREMENT */,
  who_id INTEGER NOT NULL REFERENCES user (user_id),
  whom_id INTEGER NOT NULL REFERENCES user (user_id)
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 */;

-- One row per pair, however often it is followed.
CREATE UNIQUE INDEX IF NOT EXISTS follower_who_id_whom_id
  ON follower (who_id, whom_id);
CREATE INDEX IF NOT EXISTS follower_whom_id ON follower (whom_id);

-- The id of the simulator's latest processed action: a single row, id 1.
CREATE TABLE IF NOT EXISTS latest (
  id INTEGER NOT NULL PRIMARY KEY,
  value BIGINT NOT NULL
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 */;

INSERT INTO latest (id, value)
  SELECT 1, -1 FROM (SELECT 1 AS one) AS seed
  WHERE NOT EXISTS (SELECT 1 FROM latest WHERE id = 1);

-- The simulator's tweets stored so far, by the request's `latest` and the
-- author: a tweet sent again with the same `latest` (a retry after a 503
-- whose commit did reach the disk) is not stored twice. Written in the
-- message's own transaction; the key decides between concurrent retries.
-- `latest` first: the simulator's ids only grow, so new keys go at the end
-- of the index. No foreign key, so that removing users or messages never
-- waits on this table; a key whose user is gone is harmless.
CREATE TABLE IF NOT EXISTS tweet_key (
  latest BIGINT NOT NULL,
  author_id INTEGER NOT NULL,
  PRIMARY KEY (latest, author_id)
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 */;

-- How many times each user has signed out: a session cookie carries the
-- count it was issued under, and signing out ends every session issued
-- before. A user who never signed out has no row (0).
CREATE TABLE IF NOT EXISTS user_session (
  user_id INTEGER NOT NULL PRIMARY KEY,
  generation INTEGER NOT NULL
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 */;

-- Failed sign-ins per user name and per client address (hashed) in the
-- current minute: the web UI refuses more than a few.
CREATE TABLE IF NOT EXISTS sign_in_failure (
  subject VARCHAR(80) NOT NULL PRIMARY KEY,
  failures INTEGER NOT NULL,
  since BIGINT NOT NULL
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 */;

-- Windows that are over, removed at the next failure: an index range.
CREATE INDEX IF NOT EXISTS sign_in_failure_since ON sign_in_failure (since);

-- How many rows the three tables hold, kept current by the triggers below,
-- so that /metrics reads 192 small rows at any table size instead of
-- counting millions. Each table's count is spread over 64 shards by id:
-- writers at the same moment (on other Galera nodes, too) rarely update
-- the same row.
CREATE TABLE IF NOT EXISTS row_count (
  tbl VARCHAR(16) NOT NULL,
  shard INTEGER NOT NULL,
  n BIGINT NOT NULL,
  PRIMARY KEY (tbl, shard)
) /*! ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 */;

CREATE TRIGGER IF NOT EXISTS user_added AFTER INSERT ON user FOR EACH ROW BEGIN
  UPDATE row_count SET n = n + 1 WHERE tbl = 'users' AND shard = NEW.user_id % 64;
END;
CREATE TRIGGER IF NOT EXISTS user_removed AFTER DELETE ON user FOR EACH ROW BEGIN
  UPDATE row_count SET n = n - 1 WHERE tbl = 'users' AND shard = OLD.user_id % 64;
END;
CREATE TRIGGER IF NOT EXISTS message_added AFTER INSERT ON message FOR EACH ROW BEGIN
  UPDATE row_count SET n = n + 1 WHERE tbl = 'messages' AND shard = NEW.message_id % 64;
END;
CREATE TRIGGER IF NOT EXISTS message_removed AFTER DELETE ON message FOR EACH ROW BEGIN
  UPDATE row_count SET n = n - 1 WHERE tbl = 'messages' AND shard = OLD.message_id % 64;
END;
CREATE TRIGGER IF NOT EXISTS follow_added AFTER INSERT ON follower FOR EACH ROW BEGIN
  UPDATE row_count SET n = n + 1 WHERE tbl = 'follows' AND shard = NEW.id % 64;
END;
CREATE TRIGGER IF NOT EXISTS follow_removed AFTER DELETE ON follower FOR EACH ROW BEGIN
  UPDATE row_count SET n = n - 1 WHERE tbl = 'follows' AND shard = OLD.id % 64;
END;

-- The counts themselves, once, when the table is new: what the tables hold
-- already (a database from before this table), and 0 for the other shards.
-- After the triggers, so that a row added meanwhile is counted exactly once:
-- by this count while its shard's row is not there yet, then by its trigger.
CREATE VIEW IF NOT EXISTS shards AS
  SELECT tens.d * 8 + ones.d AS shard FROM
    (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL
     SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7) AS tens CROSS JOIN
    (SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL
     SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7) AS ones;

INSERT INTO row_count (tbl, shard, n)
  SELECT 'users', shard, SUM(n) FROM (
    SELECT user_id % 64 AS shard, COUNT(*) AS n FROM user GROUP BY user_id % 64
    UNION ALL SELECT shard, 0 FROM shards) AS counted
  WHERE NOT EXISTS (SELECT 1 FROM row_count WHERE tbl = 'users')
  GROUP BY shard;
INSERT INTO row_count (tbl, shard, n)
  SELECT 'messages', shard, SUM(n) FROM (
    SELECT message_id % 64 AS shard, COUNT(*) AS n FROM message GROUP BY message_id % 64
    UNION ALL SELECT shard, 0 FROM shards) AS counted
  WHERE NOT EXISTS (SELECT 1 FROM row_count WHERE tbl = 'messages')
  GROUP BY shard;
INSERT INTO row_count (tbl, shard, n)
  SELECT 'follows', shard, SUM(n) FROM (
    SELECT id % 64 AS shard, COUNT(*) AS n FROM follower GROUP BY id % 64
    UNION ALL SELECT shard, 0 FROM shards) AS counted
  WHERE NOT EXISTS (SELECT 1 FROM row_count WHERE tbl = 'follows')
  GROUP BY shard;
