"""A one-line progress bar on stderr, for the command-line tools' long runs.

It draws only when stderr is a terminal (unless told otherwise) and only
when the percentage moves, so a loop may call it for every row.
"""
import sys
import time


class Progress:
    def __init__(self, label, total, enabled=None):
        self.label, self.total = label, total
        self.enabled = (sys.stderr.isatty() if enabled is None
                        else enabled) and total > 0
        self.done, self.shown = 0, -1
        self.started = time.monotonic()

    def add(self, count, note=''):
        """Count `count` more items done."""
        self.update(self.done + count, note)

    def update(self, done, note=''):
        """Show that `done` of the items are done; `note` goes after."""
        self.done = done
        if not self.enabled:
            return
        pct = min(100, done * 100 // self.total)
        if pct == self.shown and done < self.total:
            return
        self.shown = pct
        sys.stderr.write('\r%-12s [%-25s] %3d%% %s/%s %6.1fs %s' % (
            self.label, '#' * (pct // 4), pct, format(done, ','),
            format(self.total, ','), time.monotonic() - self.started, note))
        if done >= self.total:
            sys.stderr.write('\n')
        sys.stderr.flush()
