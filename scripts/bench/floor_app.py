"""A WSGI app that does nothing: the floor of the HTTP stack.

Benchmarks serve it with the same waitress and flags as MiniTwit and send it
the same requests; what MiniTwit costs is the difference. It answers a POST
with 204 and anything else with 200 and an empty JSON list. Its waitress
logs what MiniTwit's do: observability.install quiets waitress.queue too.
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
