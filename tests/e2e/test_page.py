"""The web page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)
against the running local stack: pick images, submit, wait, read the table, download the ZIP."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.images import drawn_files
from tests.support.stack import KEY_A
from tests.support.eventually import eventually

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    if not (Path(CHROMIUM).exists() and CHROMEDRIVER):
        pytest.fail("Debian's chromium and chromium-driver are required (`make test` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.downloads = downloads
    yield driver
    driver.quit()


def test_upload_wait_read_table_download_zip(stack, browser, tmp_path):
    drawn = drawn_files(seed=601, count=3, max_side=400)
    paths = []
    for i, (data, fmt, _) in enumerate(drawn):
        paths.append(tmp_path / f"holiday {i}.{fmt.lower()}")
        paths[-1].write_bytes(data)

    browser.get(stack.api + "/")
    browser.find_element(By.ID, "apikey").send_keys(KEY_A)
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    browser.find_element(By.ID, "prompt").send_keys("the shape and its colour")
    browser.find_element(By.ID, "submit").click()
    # Per-file progress: one line per chosen file as soon as the job is accepted.
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(By.CSS_SELECTOR, "#file-progress li")) == 3)
    assert browser.find_elements(By.CSS_SELECTOR, "#file-progress li")[0].text.startswith(paths[0].name)

    WebDriverWait(browser, 300).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#table tbody tr")))
    states = [li.get_attribute("data-state") for li in browser.find_elements(By.CSS_SELECTOR, "#file-progress li")]
    assert states == ["renamed"] * 3  # the last progress shown: every file done
    rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    table = [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]
    assert [old for _, old, _, _ in table] == [p.name for p in paths]
    for (_, _, new, link), (_, _, label) in zip(table, drawn):
        assert new.startswith(label) and link == "download"
    assert browser.find_element(By.ID, "summary").text.startswith("3 renamed, 0 failed")
    thumbnails = browser.find_elements(By.CSS_SELECTOR, "#table img")
    assert all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in thumbnails)

    browser.find_element(By.ID, "zip").click()
    archive = eventually(lambda: next(browser.downloads.glob("*.zip"), None), "the ZIP is downloaded", timeout=60,
                         every=0.2)
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == sorted(new for _, _, new, _ in table)


def test_errors_are_shown_in_words(stack, browser, tmp_path):
    text_file = tmp_path / "notes.jpg"
    text_file.write_text("not really a photo")
    browser.get(stack.api + "/")
    browser.find_element(By.ID, "submit").click()
    error = browser.find_element(By.ID, "error")
    assert error.text == "Choose one or more images first."

    browser.find_element(By.ID, "files").send_keys(str(text_file))
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(lambda b: "API key" in b.find_element(By.ID, "error").text)
    assert "needs a valid API key" in error.text  # no key entered yet

    browser.find_element(By.ID, "apikey").send_keys(KEY_A)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 60).until(lambda b: "not an image" in b.find_element(By.ID, "error").text)
    assert "notes.jpg" in error.text
