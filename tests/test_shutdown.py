"""The graceful SIGTERM belongs to the server process only (serve.py): an
app imported anywhere else, and a process forked from it (a load
generator's worker, a test's helper), ends on SIGTERM like any other, so
that multiprocessing's terminate() and join() return. (What a server does
on SIGTERM: tests/test_faults.py.)"""
import multiprocessing
import signal

import minitwit  # noqa: F401  (importing an app must set no handler)
import sim_api  # noqa: F401


def report_handler_then_wait(answers):
    handler = signal.getsignal(signal.SIGTERM)
    answers.put('default' if handler == signal.SIG_DFL else repr(handler))
    signal.pause()


def test_a_process_forked_from_an_app_dies_of_sigterm():
    # Both apps are imported into this process: that sets no handler.
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    fork = multiprocessing.get_context('fork')
    answers = fork.Queue()
    child = fork.Process(target=report_handler_then_wait, args=(answers,))
    child.start()
    try:
        assert answers.get(timeout=10) == 'default'
        child.terminate()
        child.join(10)
        assert child.exitcode == -signal.SIGTERM
    finally:
        if child.is_alive():
            child.kill()
            child.join(10)
