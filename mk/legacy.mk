# Taking over the original ITU-MiniTwit: moderation and the import of its data.

# The original's database: LEGACY when given, else the course's dump in
# MINITWIT_DATA_DIR; with neither, a one-line error says so.
LEGACY ?=

.PHONY: flag import-legacy

flag: install ## flag messages IDS="1 2" (IDS="--unflag 1 2" undoes, IDS=-i lists all)
	$(PY) -m ops.flag_tool $(IDS)

import-legacy: install ## copy the original's database LEGACY (.db or .sql dump) into DATABASE_URL
	@legacy="$$($(COURSE_DATA) legacy '$(LEGACY)')" && \
	$(PY) -m ops.import_legacy "$$legacy" $(IMPORT_ARGS)
