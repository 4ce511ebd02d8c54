# Taking over the original ITU-MiniTwit: moderation and the import of its data.

LEGACY ?= $(DATA)/itu_minitwit_legacy.sql

.PHONY: flag import-legacy bench-import

flag: install ## flag messages IDS="1 2" (IDS="--unflag 1 2" undoes, IDS=-i lists all)
	$(PY) scripts/flag_tool.py $(IDS)

import-legacy: install ## copy the original's database LEGACY (.db or .sql dump) into DATABASE_URL
	$(PY) scripts/import_legacy.py $(LEGACY) $(IMPORT_ARGS)

bench-import: install ## import a generated 1,000,000-message legacy DB into SQLite and MariaDB
	$(PY) scripts/bench_import.py --mariadb $(BENCH_MARIADB_URL)
