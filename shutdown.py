"""Graceful shutdown under `waitress-serve`: on SIGTERM, stop accepting,
finish the requests in flight, then exit.

waitress has none of its own. SIGTERM's default action kills the process
with requests half served, and waitress's SystemExit path stops the worker
threads without sending what they have written. So each app calls
`drain_on_sigterm()` when it is imported, which waitress-serve does in its
main thread before it starts serving. The handler then runs in that thread,
inside waitress's socket loop, and from the loop's own frame it takes the
socket map:

1. it takes in the connections the kernel has queued already, then closes
   the listening sockets: new connections are refused at once, so that a
   restart or another instance can take them;
2. a thread waits until no connection has a request being received, queued,
   run or sent, having the idle keep-alive ones closed as it goes, for at
   most DRAIN_SECONDS (the looking and closing happen in the loop itself,
   through waitress's trigger);
3. it then signals the main thread again, which exits through waitress's
   own shutdown path (status 0).

A second SIGTERM while draining exits at once.
"""
import _thread
import logging
import os
import queue
import select
import signal
import threading
import time

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer

# Well within systemd's TimeoutStopSec (90 s) and serving.Server.stop's 15 s.
DRAIN_SECONDS = 10
POLL_SECONDS = 0.02
# A connection this quiet with no request in it is idle; a newer one may
# have its request on the way.
IDLE_SECONDS = 0.5

log = logging.getLogger('minitwit.shutdown')
log.setLevel(logging.INFO)
_draining = threading.Event()


def drain_on_sigterm():
    """Make SIGTERM graceful in this process, if nothing else handles it."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
        # A process forked from this one (a test's or a load generator's
        # worker) is no server: SIGTERM must end it as it ends any process,
        # or multiprocessing's terminate() and join() wait on it forever.
        os.register_at_fork(after_in_child=_not_a_server)


def _not_a_server():
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _socket_map(frame):
    """The socket map of the waitress loop that `frame` runs in, or None."""
    while frame is not None:
        if frame.f_code is wasyncore.loop.__code__:
            return frame.f_locals['map']
        frame = frame.f_back
    return None


def _on_sigterm(signum, frame):
    """Start draining; when drained (or on a second SIGTERM), exit."""
    if _draining.is_set():
        # waitress's run() takes this as its cue to stop its threads.
        raise SystemExit(0)
    socket_map = _socket_map(frame)
    if socket_map is None:
        # Not serving yet (or not under waitress): the default action.
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _draining.set()
    listeners = [d for d in socket_map.values()
                 if isinstance(d, BaseWSGIServer)]
    # The loop's select() may be waiting on the listening sockets right
    # now: closing them here would make it fail. The trigger runs these
    # in the loop, between two selects.
    in_loop = listeners[0].trigger.pull_trigger
    in_loop(lambda: _stop_accepting(listeners))
    threading.Thread(target=_drain, args=(socket_map, in_loop),
                     name='drain-on-sigterm', daemon=True).start()


def _stop_accepting(listeners):
    """Close the listening sockets, after taking in what waits on them."""
    for listener in listeners:
        # Take in the connections the kernel has queued for it already ...
        while select.select([listener.socket], [], [], 0)[0]:
            listener.handle_accept()
        # ... then close the listening socket only (the base class's close:
        # the server's own would also close the trigger).
        wasyncore.dispatcher.close(listener)
    log.info('SIGTERM: no longer accepting; finishing requests in flight')


def _close_idle(socket_map):
    """Mark idle connections to be closed; return how many are busy: with
    a request being received, queued, run or sent. Runs in the loop, so
    no request is half read while it looks."""
    busy = 0
    now = time.time()
    for channel in list(socket_map.values()):
        if isinstance(channel, HTTPChannel):
            with channel.requests_lock:  # against the worker threads
                if channel.requests or channel.request is not None or \
                        channel.total_outbufs_len:
                    busy += 1
                elif now - channel.last_activity > IDLE_SECONDS:
                    channel.will_close = True
                else:
                    busy += 1  # just connected: its request may be on its way
    return busy


def _busy(socket_map, in_loop, timeout):
    """How many connections are busy, counted in the loop."""
    answer = queue.Queue()
    in_loop(lambda: answer.put(_close_idle(socket_map)))
    return answer.get(timeout=timeout)


def _drain(socket_map, in_loop, seconds=DRAIN_SECONDS):
    """Wait until no connection is busy, for at most `seconds`, then make
    the main thread exit."""
    deadline = time.monotonic() + seconds
    while _busy(socket_map, in_loop, seconds):
        if time.monotonic() >= deadline:
            log.warning('SIGTERM: exiting with requests unfinished after '
                        '%d s', seconds)
            break
        time.sleep(POLL_SECONDS)
    _thread.interrupt_main(signal.SIGTERM)
    in_loop()  # wake the loop, so that the main thread gets it now
