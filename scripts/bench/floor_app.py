"""A WSGI app that does nothing: the floor of the HTTP stack.

Served with MiniTwit's waitress and flags, sent the same requests: what MiniTwit costs is
the difference. waitress.queue is quiet, as observability.install makes MiniTwit's.
"""
import logging

logging.getLogger('waitress.queue').setLevel(logging.ERROR)


def app(environ, start_response):
    environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
    if environ['REQUEST_METHOD'] == 'POST':
        start_response('204 No Content', [])
        return [b'']
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', '2')])
    return [b'[]']
