"""`python -m serve [waitress-serve's flags] MODULE:APP`: waitress-serve with a
graceful SIGTERM: take in the connections queued, stop listening, finish the
requests being received, queued, run or sent, close idle keep-alive connections
and exit 0 when none is left, or after DRAIN_SECONDS; a second SIGTERM exits at
once. waitress's API cannot drain a server (only its channels know what their
connection is doing), so this runs waitress's loop a pass at a time, watching them."""
import contextlib
import logging
import os
import pkgutil
import select
import signal
import sys
import time

from waitress import create_server, wasyncore
from waitress.adjustments import Adjustments
from waitress.channel import HTTPChannel
from waitress.runner import HELP

import database

DRAIN_SECONDS = 10  # within systemd's TimeoutStopSec, Server.stop's 15 s
IDLE_SECONDS = 0.5  # a newer connection's request may be on its way
log = logging.getLogger('minitwit.serve')


def main(argv=None):
    """Parse waitress-serve's flags, import the app, serve it, drain on SIGTERM."""
    kw, args = Adjustments.parse_args(argv or sys.argv[1:])
    if kw.pop('help'):
        return print(HELP.format('python -m serve'))
    if len(args) != 1:
        sys.exit('usage: python -m serve [waitress-serve flags] MODULE:APP')
    app = pkgutil.resolve_name(args[0])
    app = app() if kw.pop('call') else app
    database.configured()  # says which, and refuses a bad DATABASE_URL now
    logging.basicConfig()
    for name in ('waitress', log.name):  # INFO, as waitress-serve shows it
        logging.getLogger(name).setLevel(logging.INFO)
    socket_map = {}  # waitress's loop's: listening sockets, trigger, connections
    server = create_server(app, map=socket_map, **kw)
    server.print_listen('Serving on http://{}:{}')
    adj, listeners = server.adj, [d for d in socket_map.values() if d.accepting]
    deadline = []  # when the drain must end, once SIGTERM came

    def on_sigterm(signum, frame):
        if deadline:
            os._exit(0)  # at once: not even the exit's cleanup
        deadline.append(time.monotonic() + DRAIN_SECONDS)
        listeners[0].pull_trigger()  # ends the loop's wait now

    signal.signal(signal.SIGTERM, on_sigterm)
    while not deadline:
        wasyncore.loop(adj.asyncore_loop_timeout, adj.asyncore_use_poll, socket_map, 1)
    for listener in listeners:  # first, what the kernel has queued
        while select.select([listener.socket], [], [], 0)[0]:
            listener.handle_accept()
        wasyncore.dispatcher.close(listener)  # the socket; the server's close ends the trigger
    log.info('SIGTERM: not accepting; finishing the requests in flight')
    while busy(socket_map):
        if time.monotonic() > deadline[0]:
            return log.warning('SIGTERM: exiting with requests unfinished after %d s',
                               DRAIN_SECONDS)
        wasyncore.loop(0.05, adj.asyncore_use_poll, socket_map, 1)


def busy(socket_map):
    """Whether a connection has a request being received, queued, run or sent;
    idle ones are marked to close, as waitress's idle timeout does. (`requests`
    before the out buffers: a request leaves it once its answer is in them.)"""
    found, now = False, time.time()
    for c in list(socket_map.values()):
        if isinstance(c, HTTPChannel) and not c.will_close:
            if c.request is not None or c.requests or c.total_outbufs_len \
                    or now - c.last_activity < IDLE_SECONDS:
                found = True
            else:
                c.will_close = True
    return found


if __name__ == '__main__':
    with contextlib.suppress(KeyboardInterrupt):  # quiet, as waitress-serve
        main()
