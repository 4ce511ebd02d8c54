"""Operators' tools: what runs against a MiniTwit database, on a server or a
checkout. Each is run as `python -m scripts.ops.NAME` from the repository (or a
release), and `scripts/ops/minitwitctl` is the day-to-day front end on a server.

- initdb: create the tables (deploys run it before every switch)
- inspect_db: counts and the newest messages
- flag_tool: hide messages from every timeline, or show them again
- import_legacy: bring the original ITU-MiniTwit's database across
- progress: the progress bar the long-running tools show

They use the models (models.py, database.py), never an app.
"""
