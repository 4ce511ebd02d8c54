"""Using the web UI under WebTest as a browser does: every POST is the
submission of a form from a page."""
from webtest import TestApp

from minitwit import user_url


class Browser(TestApp):
    """A WebTest browser that passes the URL as it was asked for in
    REQUEST_URI, as waitress does: the web UI routes on it, so that an
    encoded '/' in a user name stays part of the name."""

    def get(self, url, *args, extra_environ=None, **kwargs):
        return super().get(url, *args, extra_environ=dict(
            extra_environ or {}, REQUEST_URI=url), **kwargs)

    def post(self, url, *args, extra_environ=None, **kwargs):
        return super().post(url, *args, extra_environ=dict(
            extra_environ or {}, REQUEST_URI=url), **kwargs)


def browser(app):
    """A WebTest browser of `app`. Bottle decodes PATH_INFO in the environ
    it is given; WebTest reads that environ again for cookies and
    redirects and breaks on non-ASCII paths, so each request gets a copy."""
    return Browser(lambda environ, start_response:
                   app(dict(environ), start_response))


def user_path(username):
    """The path of a user's page, as the web UI links it."""
    return user_url(username)


def submit(ui, page, action, status='*', **fields):
    """Fill in the form posting to `action` on the page at `page`, submit
    it and follow the redirect, if any."""
    res = ui.get(page)
    form = next(f for f in res.forms.values() if f.action == action)
    for name, value in fields.items():
        form[name] = value
    res = form.submit(status='*')
    if res.status_int in (302, 303):
        res = res.follow()
    if status != '*':
        assert res.status_int == status, res.text
    return res


def register(ui, username, password='default', password2=None, email=None,
             status='*'):
    return submit(ui, '/register', '/register', status=status,
                  username=username,
                  email=email if email is not None else username + '@example.com',
                  password=password,
                  password2=password if password2 is None else password2)


def login(ui, username, password='default', status='*'):
    return submit(ui, '/login', '/login', status=status, username=username,
                  password=password)


def register_and_login(ui, username, password='default'):
    register(ui, username, password, status=200)
    return login(ui, username, password, status=200)


def logout(ui):
    return submit(ui, '/public', '/logout', status=200)


def add_message(ui, text, status=200):
    return submit(ui, '/', '/add_message', status=status, text=text)


def follow(ui, username, status=200):
    path = user_path(username)
    return submit(ui, path, path + '/follow', status=status)


def unfollow(ui, username, status=200):
    path = user_path(username)
    return submit(ui, path, path + '/unfollow', status=status)


def texts(res):
    """The texts of the messages on a timeline page, top to bottom."""
    return [''.join(li.p.find_all(string=True, recursive=False)).strip()
            for li in res.html.select('ul.messages li') if li.p]
