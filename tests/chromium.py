"""Headless Chromium from Debian (/usr/bin/chromium, /usr/bin/chromedriver)
under Selenium, for the tests that drive the web UI in a real browser:
`from chromium import browser` makes the fixture theirs."""
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = '/usr/bin/chromium'
CHROMEDRIVER = '/usr/bin/chromedriver'
PAGE_LOAD_TIMEOUT = 30  # seconds


def start_chromium():
    """A new headless Chromium; its log is kept, to catch CSP violations."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ('--headless=new', '--no-sandbox', '--disable-gpu',
                     '--disable-dev-shm-usage', '--window-size=1000,900'):
        options.add_argument(argument)
    options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    driver.set_script_timeout(PAGE_LOAD_TIMEOUT)
    return driver


@pytest.fixture
def browser():
    """Headless Chromium, quit when the test ends."""
    driver = start_chromium()
    yield driver
    driver.quit()
