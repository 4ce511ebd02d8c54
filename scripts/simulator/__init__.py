"""The course simulator's side: replaying scenarios against the simulator
API exactly as the ITU DevOps simulator sends them, and making new ones.

- simulate: replay a scenario file, count errors as the simulator does,
  and verify the final state (`make simulate`)
- gen_scenario: write a scenario in the course's format from a seed
- course_data: fetch the course's scenario (`make scenario`), and choose
  the scenario and the original's dump the make targets use
  (MINITWIT_DATA_DIR)

Run as `python -m scripts.simulator.NAME`. They speak HTTP only and import no part
of MiniTwit.
"""
