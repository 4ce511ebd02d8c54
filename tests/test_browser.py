"""The web UI in a real browser: Debian's headless Chromium, driven by
Selenium, against `minitwit:app` under waitress on a free port, with the
simulator API serving the same database beside it.

Every page visited is saved as a PNG in the folder named by SCREENSHOTS
(`make test` sets artifacts/screenshots), else in a temporary folder.
"""
import os
import tempfile

import chromium
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from scripts.simulator.simulate import Client

pytestmark = [pytest.mark.slow, pytest.mark.needs('chromium', 'chromedriver')]

browser = chromium.browser  # the fixture: headless Chromium


@pytest.fixture
def screenshots(backend, request):
    """Saves the current page as BACKEND-TEST/NN-name.png, numbered in
    visiting order."""
    folder = os.path.join(
        os.environ.get('SCREENSHOTS') or tempfile.mkdtemp(
            prefix='minitwit-screenshots-'),
        '%s-%s' % (backend, request.node.originalname.removeprefix('test_')))
    os.makedirs(folder, exist_ok=True)
    count = 0

    def shoot(driver, name):
        nonlocal count
        count += 1
        driver.save_screenshot(os.path.join(folder, '%02d-%s.png' % (
            count, name)))
    return shoot


def flashes(driver):
    """Wait for the flash messages, as the course's Selenium test does."""
    found = WebDriverWait(driver, 5).until(EC.presence_of_all_elements_located(
        (By.CLASS_NAME, 'flashes')))
    return found[0].text


def messages(driver):
    return [li.text for li in driver.find_elements(
        By.CSS_SELECTOR, 'ul.messages li')]


def submit_form(driver, **fields):
    """Type into the named fields and press return in the last one."""
    for name, value in fields.items():
        element = driver.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)
    element.send_keys(Keys.RETURN)


def csp_violations(driver):
    return [entry['message'] for entry in driver.get_log('browser')
            if 'Content Security Policy' in entry['message']]


def fits_the_screen(driver):
    return driver.execute_script(
        'return document.documentElement.scrollWidth <= window.innerWidth')


def test_sign_up_sign_in_post_follow_unfollow_sign_out(
        browser, screenshots, make_db_url, start_server):
    url = make_db_url()
    web = start_server('minitwit:app', url)
    api = Client(start_server('sim_api:app', url).url, timeout=10)
    assert api.send('POST', '/register', {
        'username': 'Åse Ørsted', 'email': 'ase@example.com',
        'pwd': 'api-password'})[0] == 204
    assert api.send('POST', '/msgs/%C3%85se%20%C3%98rsted', {
        'content': 'Hello from the API, with a long word: ' + 'x' * 120,
    })[0] == 204

    # Sign up as the course's test does: by input order, return on the 5th.
    browser.get(web.url + '/register')
    screenshots(browser, 'register')
    inputs = browser.find_elements(By.TAG_NAME, 'input')
    for field, value in zip(inputs[:4], ['me', 'me@example.com', 'pw1', 'pw1'],
                            strict=True):
        field.send_keys(value)
    inputs[4].send_keys(Keys.RETURN)
    assert flashes(browser) == \
        'You were successfully registered and can login now'
    assert browser.current_url == web.url + '/login'
    screenshots(browser, 'registered')

    submit_form(browser, username='me', password='wrong')
    assert 'Invalid password' in browser.find_element(
        By.CLASS_NAME, 'error').text
    screenshots(browser, 'login-error')
    submit_form(browser, username='me', password='pw1')
    assert flashes(browser) == 'You were logged in'
    assert "There's no message so far." in messages(browser)[0]
    screenshots(browser, 'my-timeline-empty')

    submit_form(browser, text='My first message <b>not bold</b>')
    assert flashes(browser) == 'Your message was recorded'
    assert 'My first message <b>not bold</b>' in messages(browser)[0]
    screenshots(browser, 'posted')

    browser.find_element(By.LINK_TEXT, 'public timeline').click()
    assert len(messages(browser)) == 2
    screenshots(browser, 'public')

    browser.find_element(By.LINK_TEXT, 'Åse Ørsted').click()
    assert browser.find_element(By.TAG_NAME, 'h2').text == \
        "Åse Ørsted's Timeline"
    assert 'You are not yet following this user.' in browser.find_element(
        By.CLASS_NAME, 'followstatus').text
    screenshots(browser, 'profile')
    browser.find_element(By.CSS_SELECTOR, 'button.follow').click()
    assert flashes(browser) == 'You are now following "Åse Ørsted"'
    screenshots(browser, 'followed')

    browser.find_element(By.LINK_TEXT, 'my timeline').click()
    shown = messages(browser)
    assert len(shown) == 2 and 'Hello from the API' in shown[1]
    screenshots(browser, 'my-timeline-following')

    browser.set_window_size(390, 844)  # a phone
    assert fits_the_screen(browser)
    screenshots(browser, 'phone')
    browser.set_window_size(1000, 900)

    browser.find_element(By.LINK_TEXT, 'Åse Ørsted').click()
    browser.find_element(By.CSS_SELECTOR, 'button.unfollow').click()
    assert flashes(browser) == 'You are no longer following "Åse Ørsted"'
    browser.find_element(By.LINK_TEXT, 'my timeline').click()
    assert len(messages(browser)) == 1
    screenshots(browser, 'unfollowed')

    browser.find_element(By.CSS_SELECTOR, 'nav button.link').click()
    assert flashes(browser) == 'You were logged out'
    assert browser.current_url == web.url + '/public'
    screenshots(browser, 'signed-out')

    assert csp_violations(browser) == []


def test_an_api_user_signs_in_on_the_web(
        browser, screenshots, make_db_url, start_server):
    url = make_db_url()
    web = start_server('minitwit:app', url)
    api = Client(start_server('sim_api:app', url).url, timeout=10)
    assert api.send('POST', '/register', {
        'username': 'simulated', 'email': 's@example.com',
        'pwd': 'from-the-simulator'})[0] == 204
    browser.get(web.url + '/login')
    submit_form(browser, username='simulated', password='from-the-simulator')
    assert flashes(browser) == 'You were logged in'
    assert 'sign out [simulated]' in browser.find_element(
        By.CLASS_NAME, 'navigation').text
    screenshots(browser, 'api-user-signed-in')


def test_older_messages_are_a_plain_link_away(
        browser, screenshots, make_db_url, start_server):
    url = make_db_url()
    web = start_server('minitwit:app', url)
    api = Client(start_server('sim_api:app', url).url, timeout=10)
    assert api.send('POST', '/register', {
        'username': 'chatty', 'email': 'c@example.com', 'pwd': 'x'})[0] == 204
    for n in range(35):
        assert api.send('POST', '/msgs/chatty',
                        {'content': 'message %d' % n})[0] == 204
    browser.get(web.url + '/public')
    assert len(messages(browser)) == 30
    assert 'message 34' in messages(browser)[0]
    screenshots(browser, 'first-page')
    browser.find_element(By.LINK_TEXT, 'older messages \u2192').click()
    shown = messages(browser)
    assert [m.split(' \u2014')[0] for m in shown] == [
        'chatty message %d' % n for n in range(4, -1, -1)]
    screenshots(browser, 'older-page')
    browser.find_element(By.LINK_TEXT, '\u2190 newest messages').click()
    assert 'message 34' in messages(browser)[0]
