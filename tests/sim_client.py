"""Speaking to the simulator API under WebTest, as the simulator does."""
import base64
import json

AUTH = {'Authorization': 'Basic ' +
        base64.b64encode(b'simulator:super_safe!').decode()}
WRONG_AUTH = {'Authorization': 'Basic ' +
              base64.b64encode(b'simulator:wrong').decode()}
NOT_AUTHORIZED = {'status': 403,
                  'error_msg': 'You are not authorized to use this resource!'}


def path(*parts, **query):
    """A URL path with every part percent-encoded, like the simulator's."""
    from urllib.parse import quote, urlencode
    url = '/' + '/'.join(quote(p, safe='') for p in parts)
    return url + ('?' + urlencode(query) if query else '')


def post(api, url, body, headers=AUTH, status='*'):
    """POST a JSON body; `status='*'` lets the test check any status."""
    return api.post(url, json.dumps(body), headers=dict(
        headers, **{'Content-Type': 'application/json'}), status=status)


def register(api, username, email=None, pwd='secret', latest=None):
    query = {} if latest is None else {'latest': latest}
    return post(api, path('register', **query), {
        'username': username, 'email': email or 'someone@example.com',
        'pwd': pwd})


def tweet(api, username, content, latest=None):
    query = {} if latest is None else {'latest': latest}
    return post(api, path('msgs', username, **query), {'content': content})


def follow(api, who, whom, latest=None, verb='follow'):
    query = {} if latest is None else {'latest': latest}
    return post(api, path('fllws', who, **query), {verb: whom})


def unfollow(api, who, whom, latest=None):
    return follow(api, who, whom, latest, verb='unfollow')


def latest(api):
    return api.get('/latest').json['latest']
