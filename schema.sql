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
