"""A WSGI app that does nothing: the floor of the HTTP stack."""
import logging

# Quiet, as observability.install makes MiniTwit's.
logging.getLogger('waitress.queue').setLevel(logging.ERROR)


def app(environ, start_response):
    environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
    if environ['REQUEST_METHOD'] == 'POST':
        start_response('204 No Content', [])
        return [b'']
    start_response('200 OK', [('Content-Type', 'application/json'),
                              ('Content-Length', '2')])
    return [b'[]']
