"""`python -m serve [waitress-serve's flags] MODULE:APP`: waitress-serve with
a graceful SIGTERM. It takes in the connections already queued, closes the
listening sockets (new ones are refused at once: a restart or the other slot
takes them), finishes the requests being received, queued, run or sent,
closes idle keep-alive connections, and exits 0 when none is left or after
DRAIN_SECONDS. A second SIGTERM exits at once.

waitress's public API runs a server but cannot drain one: only its channels
know what a connection is doing. So this runs waitress's loop a pass at a
time and looks at the channels between passes."""
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
from waitress.server import BaseWSGIServer

import database

DRAIN_SECONDS = 10  # within systemd's TimeoutStopSec, Server.stop's 15 s
IDLE_SECONDS = 0.5  # a newer connection's request may be on its way
log = logging.getLogger('minitwit.serve')


def main(argv=None):
    """Parse waitress-serve's flags, import the app, serve it."""
    kw, args = Adjustments.parse_args(argv or sys.argv[1:])
    if kw.pop('help'):
        return print(HELP.format('python -m serve'))  # waitress-serve's
    if len(args) != 1:
        sys.exit('usage: python -m serve [waitress-serve flags] MODULE:APP')
    app = pkgutil.resolve_name(args[0])
    app = app() if kw.pop('call') else app
    database.configured()  # says which, and refuses a bad DATABASE_URL now
    logging.basicConfig()  # with INFO lines, as waitress-serve shows them
    logging.getLogger('waitress').setLevel(logging.INFO)
    log.setLevel(logging.INFO)
    socket_map = {}  # the loop's: listening sockets, triggers, connections
    create_server(app, map=socket_map, **kw).print_listen(
        'Serving on http://{}:{}')
    serve(socket_map, Adjustments(**kw))


def serve(socket_map, adj):
    """Run waitress's loop on `socket_map` until SIGTERM, then drain."""
    listeners = [s for s in socket_map.values()
                 if isinstance(s, BaseWSGIServer)]
    deadline = []

    def on_sigterm(signum, frame):
        if deadline:
            os._exit(0)  # at once: not even waiting on the exit's cleanup
        deadline.append(time.monotonic() + DRAIN_SECONDS)
        listeners[0].pull_trigger()  # ends the loop's select() now

    signal.signal(signal.SIGTERM, on_sigterm)
    while not deadline:
        wasyncore.loop(adj.asyncore_loop_timeout, adj.asyncore_use_poll,
                       socket_map, 1)
    for listener in listeners:  # first what the kernel has queued
        while select.select([listener.socket], [], [], 0)[0]:
            listener.handle_accept()
        # The socket only: the server's close would close the trigger.
        wasyncore.dispatcher.close(listener)
    log.info('SIGTERM: not accepting; finishing the requests in flight')
    while _busy(socket_map):
        if time.monotonic() > deadline[0]:
            return log.warning('SIGTERM: exiting with requests unfinished '
                               'after %d s', DRAIN_SECONDS)
        wasyncore.loop(0.05, adj.asyncore_use_poll, socket_map, 1)


def _busy(socket_map):
    """Whether a connection has a request being received, queued, run or
    sent; the others, idle, are marked to be closed, as waitress's idle
    timeout marks them. (In this order: a worker thread takes a request off
    `requests` only once its whole answer is in the out buffers.)"""
    busy, now = False, time.time()
    for c in list(socket_map.values()):
        if isinstance(c, HTTPChannel) and not c.will_close:
            if c.request is not None or c.requests or c.total_outbufs_len \
                    or now - c.last_activity < IDLE_SECONDS:
                busy = True
            else:
                c.will_close = True
    return busy


if __name__ == '__main__':
    with contextlib.suppress(KeyboardInterrupt):  # as waitress-serve: quiet
        main()
