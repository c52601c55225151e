"""The web page in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium)
against the running local stack: pick images, submit, wait, read the table (HEIC and TIFF thumbnails drawn
from the server's previews), download the ZIP; a name
template; the job in the address (reload, another browser asking for the key, unknown jobs); upload
progress; live updates that drop, go silent, reconnect and fall back to polling; axe-core's accessibility
check on the empty page, during a job and on the results; a folder picked, then dropped, renamed into
its folders with its non-images skipped."""

from __future__ import annotations

import random
import shutil
import zipfile
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from selenium_axe_python import Axe

from renamer_ray.toy.shapes import draw_shape
from tests.support.images import drawn_files, encode
from tests.support.stack import A, KEY_A, KEY_B, images, submit
from tests.support.eventually import eventually

CHROMIUM, CHROMEDRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver")


def start_browser(downloads: Path) -> webdriver.Chrome:
    """A fresh headless Chromium with a profile of its own (no cookies, no storage)."""
    if not (Path(CHROMIUM).exists() and CHROMEDRIVER):
        pytest.fail("Debian's chromium and chromium-driver are required (`make test` installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    downloads.mkdir()
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.downloads = downloads
    return driver


@pytest.fixture
def browser(tmp_path):
    driver = start_browser(tmp_path / "downloads")
    yield driver
    driver.quit()


def write_images(tmp_path: Path, seed: int, count: int, max_side: int = 400) -> tuple[list[Path], list[str]]:
    """Freshly drawn shapes saved as files to pick: (paths, correct labels)."""
    paths, labels = [], []
    for i, (data, fmt, label) in enumerate(drawn_files(seed=seed, count=count, max_side=max_side)):
        paths.append(tmp_path / f"holiday {seed}-{i}.{fmt.lower()}")
        paths[-1].write_bytes(data)
        labels.append(label)
    return paths, labels


def pick_and_submit(browser, paths: list[Path], key: str | None = KEY_A, **fields: str) -> None:
    if key is not None:
        browser.find_element(By.ID, "apikey").send_keys(key)
    browser.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    for field, value in fields.items():
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    browser.find_element(By.ID, "submit").click()


def job_in_url(browser, timeout: float = 120) -> str:
    """The job id the page put in its address once the job was accepted."""
    WebDriverWait(browser, timeout).until(lambda b: "job=" in b.current_url)
    return parse_qs(urlparse(browser.current_url).query)["job"][0]


def wait_for_table(browser, timeout: float = 300) -> list[list[str]]:
    """The results table's cells, once it is there; on a timeout, what the page said instead."""
    try:
        WebDriverWait(browser, timeout).until(EC.presence_of_element_located((By.CSS_SELECTOR, "#table tbody tr")))
    except TimeoutException:
        said = {part: browser.find_element(By.ID, part).text for part in ("error", "connection", "status")}
        raise AssertionError(f"no results table after {timeout} s; the page showed {said}") from None
    rows = browser.find_elements(By.CSS_SELECTOR, "#table tbody tr")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def error_text(browser, containing: str, timeout: float = 60) -> str:
    WebDriverWait(browser, timeout).until(lambda b: containing in b.find_element(By.ID, "error").text)
    return browser.find_element(By.ID, "error").text


def job_ids(stack, headers=A) -> list[str]:
    answer = httpx.get(f"{stack.api}/v1/jobs", params={"limit": 100}, headers=headers, timeout=30)
    answer.raise_for_status()
    return [job["job_id"] for job in answer.json()["jobs"]]


def stored_keys(browser) -> tuple[str | None, str | None]:
    return tuple(browser.execute_script("return [sessionStorage.getItem('renamer-api-key'), "
                                        "localStorage.getItem('renamer-api-key')]"))


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

    table = wait_for_table(browser)
    states = [li.get_attribute("data-state") for li in browser.find_elements(By.CSS_SELECTOR, "#file-progress li")]
    assert states == ["renamed"] * 3  # the last progress shown: every file done
    assert [old for _, old, _, _ in table] == [p.name for p in paths]
    for (_, _, new, link), (_, _, label) in zip(table, drawn):
        assert new.startswith(label) and link == "download"
    assert browser.find_element(By.ID, "summary").text.startswith("3 renamed, 0 failed")
    thumbnails_drawn(browser)

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
    WebDriverWait(browser, 60).until(lambda b: "Nothing here" in b.find_element(By.ID, "error").text)
    assert error.text.startswith("Nothing here can be renamed: ") and "'notes.jpg' is not a supported image" in error.text


def test_template_names_follow_it_and_a_bad_one_is_explained(stack, browser, tmp_path):
    paths, labels = write_images(tmp_path, seed=611, count=3)
    browser.get(stack.api + "/")
    pick_and_submit(browser, paths, template="{colour}-{subject}")
    error = error_text(browser, "template")
    assert error.startswith("Something in the form is not valid: template: unknown placeholder {colour}")
    assert "{subject}, {date}, {camera}, {original}, {index}" in error  # what is allowed, in the same sentence
    assert "job=" not in browser.current_url

    browser.find_element(By.ID, "template").clear()
    browser.find_element(By.ID, "template").send_keys("{index}-{subject}")
    browser.find_element(By.ID, "submit").click()
    table = wait_for_table(browser)
    assert browser.find_element(By.ID, "error").text == ""  # the old error is gone
    assert [old for _, old, _, _ in table] == [p.name for p in paths]
    for i, ((_, _, new, _), label) in enumerate(zip(table, labels), start=1):
        assert new.startswith(f"{i:03d}-{label}.")


def thumbnails_drawn(browser, timeout: float = 60) -> None:
    """Every thumbnail of the results table loads and is drawn (a format the browser cannot draw
    loads with a natural width of 0)."""
    WebDriverWait(browser, timeout).until(lambda b: all(
        b.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)
        for img in b.find_elements(By.CSS_SELECTOR, "#table img")))


def test_heic_and_tiff_thumbnails_are_drawn_from_the_servers_previews(stack, browser, tmp_path):
    samples = Path(__file__).parents[2] / "renamer_ray" / "data" / "samples"
    paths = [tmp_path / name for name in ("IMG_0003.HEIC", "scan_0042.tiff")]
    for path in paths:
        path.write_bytes((samples / path.name).read_bytes())
    browser.get(stack.api + "/")
    pick_and_submit(browser, paths)
    table = wait_for_table(browser)
    assert [old for _, old, _, _ in table] == [p.name for p in paths]
    thumbnails_drawn(browser)
    sources = [img.get_attribute("src") for img in browser.find_elements(By.CSS_SELECTOR, "#table img")]
    assert len(sources) == 2 and all(src.startswith(stack.env["AWS_ENDPOINT_URL"]) for src in sources), sources


def test_the_address_names_the_job_and_a_reload_finds_it_again(stack, browser, tmp_path):
    before = job_ids(stack)
    paths, labels = write_images(tmp_path, seed=621, count=3)
    browser.get(stack.api + "/")
    pick_and_submit(browser, paths)
    job_id = job_in_url(browser)
    assert browser.find_element(By.ID, "joblink").text.endswith(f"?job={job_id}")
    browser.refresh()  # at once: most likely while the job is still running
    table = wait_for_table(browser)
    assert job_in_url(browser) == job_id
    assert browser.find_element(By.ID, "progress-text").text.startswith(f"Job {job_id}: succeeded")
    assert [old for _, old, _, _ in table] == [p.name for p in paths]
    assert all(new.startswith(label) for (_, _, new, _), label in zip(table, labels, strict=True))

    browser.refresh()  # and after the job: straight to the results
    again = wait_for_table(browser)
    assert again == table
    assert browser.find_element(By.ID, "summary").text.startswith("3 renamed, 0 failed")
    assert not browser.find_element(By.ID, "keyask").is_displayed()
    thumbnails_drawn(browser)  # after a reload too: the server's previews
    browser.find_element(By.ID, "zip").click()
    archive = eventually(lambda: next(browser.downloads.glob("*.zip"), None), "the ZIP is downloaded", timeout=60,
                         every=0.2)
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == sorted(new for _, _, new, _ in table)

    assert job_ids(stack) == [job_id] + before  # one job, uploaded once: the reloads made none
    assert KEY_A not in browser.current_url
    assert stored_keys(browser) == (KEY_A, None)  # this tab's sessionStorage, never localStorage


def test_a_fresh_browser_opening_the_job_address_asks_for_the_key(stack, browser, tmp_path):
    files, labels = images(seed=631, count=2)
    job_id = submit(stack, files).json()["job_id"]
    browser.get(f"{stack.api}/?job={job_id}")
    WebDriverWait(browser, 60).until(EC.visibility_of_element_located((By.ID, "keyask")))
    assert job_id in browser.find_element(By.ID, "keyask-text").text
    assert browser.switch_to.active_element == browser.find_element(By.ID, "keyask-input")
    assert browser.find_elements(By.CSS_SELECTOR, "#table tbody tr") == []

    browser.find_element(By.ID, "keyask-input").send_keys("not-a-key")
    browser.find_element(By.ID, "keyask-submit").click()
    assert "not accepted" in error_text(browser, "not accepted")
    WebDriverWait(browser, 30).until(lambda b: "not accepted" in b.find_element(By.ID, "keyask-text").text)

    browser.find_element(By.ID, "keyask-input").send_keys(KEY_A)
    browser.find_element(By.ID, "keyask-submit").click()
    table = wait_for_table(browser)
    assert [old for _, old, _, _ in table] == [name for _, (name, _) in files]
    assert all(new.startswith(label) for (_, _, new, _), label in zip(table, labels, strict=True))
    assert not browser.find_element(By.ID, "keyask").is_displayed()
    assert browser.find_element(By.ID, "error").text == ""
    assert stored_keys(browser) == (KEY_A, None)
    assert browser.find_element(By.ID, "apikey").get_attribute("value") == KEY_A  # ready for a new job too


def noisy_png(seed: int, side: int = 880) -> bytes:
    """A drawn shape with noise over it: about 2.3 MB as PNG, under the stack's 3 MiB per file."""
    sample = draw_shape(random.Random(seed), min_side=side, max_side=side)
    image = sample.image.convert("RGB").resize((side, side))
    noise = Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3))
    return encode(Image.blend(image, noise, 0.5), "PNG")


def test_upload_progress_is_shown(stack, browser, tmp_path):
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"big {i}.png")
        paths[-1].write_bytes(noisy_png(640 + i))
    total = sum(p.stat().st_size for p in paths)
    assert total > 8_000_000
    browser.get(stack.api + "/")
    # A slow uplink (5 MB/s), so that the upload takes a couple of seconds to watch.
    browser.set_network_conditions(offline=False, latency=0, download_throughput=50_000_000,
                                   upload_throughput=5_000_000)
    pick_and_submit(browser, paths)
    bar = browser.find_element(By.ID, "upload-bar")
    WebDriverWait(browser, 60, poll_frequency=0.05).until(
        lambda b: 0 < float(bar.get_attribute("value")) < float(bar.get_attribute("max")))
    text = browser.find_element(By.ID, "upload-text").text
    assert " MB sent (" in text and text.endswith("%)") and browser.find_element(By.ID, "upload").is_displayed()

    job_id = job_in_url(browser)  # accepted: the page moved on to the naming progress
    browser.delete_network_conditions()
    upload = browser.find_element(By.ID, "upload")
    assert upload.get_attribute("data-state") == "accepted" and not upload.is_displayed()
    assert int(upload.get_attribute("data-events")) >= 3
    assert int(upload.get_attribute("data-loaded")) == int(upload.get_attribute("data-total")) >= total
    assert float(bar.get_attribute("value")) == float(bar.get_attribute("max"))
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "progress-text").text.startswith(f"Job {job_id}"))
    httpx.delete(f"{stack.api}/v1/jobs/{job_id}", headers=A, timeout=30)  # the names are not the point here


def test_an_unknown_or_foreign_job_in_the_address_is_explained(stack, browser):
    browser.get(f"{stack.api}/?job=jr_0000000000000000")
    WebDriverWait(browser, 60).until(EC.visibility_of_element_located((By.ID, "keyask")))
    browser.find_element(By.ID, "keyask-input").send_keys(KEY_A)
    browser.find_element(By.ID, "keyask-submit").click()
    assert error_text(browser, "No job").startswith("No job jr_0000000000000000 was found for this API key.")
    assert "another API key" in browser.find_element(By.ID, "error").text

    files, _ = images(seed=641, count=1)
    foreign = submit(stack, files, headers={"X-API-Key": KEY_B}).json()["job_id"]
    browser.get(f"{stack.api}/?job={foreign}")  # this tab has KEY_A: another key's job is not shown
    assert error_text(browser, "No job").startswith(f"No job {foreign} was found for this API key.")
    assert browser.find_elements(By.CSS_SELECTOR, "#status li") == []

    browser.get(f"{stack.api}/?job=../v1/jobs")
    assert "not a job id" in error_text(browser, "not a job id")


def test_live_updates_that_drop_reconnect_then_fall_back_to_polling(stack, browser, tmp_path):
    paths, labels = write_images(tmp_path, seed=651, count=3)
    browser.get(stack.api + "/")
    # The network as the page sees it: the first event stream is cut after its first chunk (a
    # dropped connection); every later one fails (a proxy that will not stream).
    browser.execute_script("""
        const real = window.fetch;
        let streams = 0;
        window.fetch = async (url, options) => {
          if (!String(url).endsWith("/events")) return real(url, options);
          streams += 1;
          if (streams > 1) throw new TypeError("Failed to fetch");
          const response = await real(url, options);
          const reader = response.body.getReader();
          const cut = new ReadableStream({async pull(controller) {
            const {value} = await reader.read();
            controller.enqueue(value);
            controller.error(new TypeError("network error"));
            reader.cancel();
          }});
          return new Response(cut, {status: response.status, headers: response.headers});
        };""")
    pick_and_submit(browser, paths)
    table = wait_for_table(browser)
    assert all(new.startswith(label) for (_, _, new, _), label in zip(table, labels, strict=True))
    connection = browser.find_element(By.ID, "connection")
    assert connection.get_attribute("data-drops") == "3"    # one cut, two refused: then polling
    assert int(connection.get_attribute("data-polls")) >= 1
    assert connection.get_attribute("data-mode") == "finished" and connection.text == ""


# The page's first live stream held after its first event, as a connection that goes silent on the way:
# "silent" until the page gives up on it (its abort signal), "paused" until the test calls
# releaseStream(). window.streams says what each stream carried; window.sameDocument, that no reload came.
HOLD_FIRST_STREAM = """
    const mode = arguments[0], real = window.fetch;
    const released = new Promise((resolve) => { window.releaseStream = resolve; });
    window.streams = [];
    window.sameDocument = true;
    window.fetch = async (url, options) => {
      if (!String(url).endsWith("/events")) return real(url, options);
      const seen = {events: [], held: false, aborted: false, silence: null};
      const first = window.streams.push(seen) === 1;
      const response = await real(url, first && mode === "paused" ? {...options, signal: undefined} : options);
      seen.silence = response.headers.get("X-Event-Silence-Seconds");
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      const body = new ReadableStream({async pull(controller) {
        if (first && seen.events.length && !seen.held) {
          seen.held = true;
          if (mode === "silent") {
            reader.cancel().catch(() => {});
            await new Promise((resolve) => options.signal.addEventListener("abort", resolve));
            seen.aborted = true;
            controller.error(new DOMException("the connection went silent", "AbortError"));
            return;
          }
          await released;
        }
        const {value, done} = await reader.read();
        if (done) { controller.close(); return; }
        seen.events.push(...(value.match(/^event: \\w+/mg) || []).map((line) => line.slice(7)));
        controller.enqueue(new TextEncoder().encode(value));
      }});
      return new Response(body, {status: response.status, headers: response.headers});
    };"""


def test_a_live_stream_gone_silent_is_followed_again_and_the_progress_goes_on(stack, browser, tmp_path):
    """A stream with no byte for EVENT_SILENCE_SECONDS (short on the test stack, 45 s by default; the
    server keeps alive within a third of it) was dropped on the way: the page gives it up, follows the
    job again and goes on to the results, without a reload."""
    paths, labels = write_images(tmp_path, seed=661, count=8)
    browser.get(stack.api + "/")
    browser.execute_script(HOLD_FIRST_STREAM, "silent")
    pick_and_submit(browser, paths)
    table = wait_for_table(browser)
    assert [old for _, old, _, _ in table] == [p.name for p in paths]
    assert all(new.startswith(label) for (_, _, new, _), label in zip(table, labels, strict=True))
    assert browser.execute_script("return window.sameDocument") is True
    silent, *followed = browser.execute_script("return window.streams")
    limit = stack.env["EVENT_SILENCE_SECONDS"]
    assert silent == {"events": ["progress"], "held": True, "aborted": True, "silence": limit}  # given up by the page
    assert followed and followed[-1]["events"][-1] == "done"  # followed again to the end
    states = [li.get_attribute("data-state") for li in browser.find_elements(By.CSS_SELECTOR, "#file-progress li")]
    assert states == ["renamed"] * len(paths)
    connection = browser.find_element(By.ID, "connection")
    assert int(connection.get_attribute("data-drops")) >= 1
    assert connection.get_attribute("data-mode") == "finished" and connection.text == ""


def assert_accessible(browser, when: str) -> None:
    """axe-core (the copy selenium-axe-python ships) finds no serious or critical violation."""
    axe = Axe(browser)
    axe.inject()
    violations = [v for v in axe.run()["violations"] if v["impact"] in ("serious", "critical")]
    assert not violations, f"{when}: {axe.report(violations)}"


def test_the_page_passes_axe_empty_during_a_job_and_with_results(stack, browser, tmp_path):
    """No serious or critical accessibility violation on the empty page, during a job (its live
    stream paused) and on the results, a skipped non-image among them; the drop zone is reached with
    the keyboard, and progress is announced in aria-live regions."""
    browser.get(stack.api + "/")
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.switch_to.active_element == browser.find_element(By.ID, "drop")
    live = {e.get_attribute("id") for e in browser.find_elements(By.CSS_SELECTOR, "[aria-live]")}
    assert {"connection", "status", "announce"} <= live
    assert_accessible(browser, "the empty page")

    paths, labels = write_images(tmp_path, seed=671, count=3)
    notes = tmp_path / "notes.txt"
    notes.write_text("milk, eggs, a new memory card")
    browser.execute_script(HOLD_FIRST_STREAM, "paused")
    pick_and_submit(browser, [*paths, notes])
    WebDriverWait(browser, 120).until(lambda b: b.execute_script("return window.streams[0]?.held === true"))
    assert_accessible(browser, "during a job")
    assert browser.find_elements(By.ID, "table") == []  # it was the job's progress that was checked

    browser.execute_script("window.releaseStream()")
    table = wait_for_table(browser)
    assert [old for _, old, _, _ in table] == [p.name for p in paths] + ["notes.txt"]
    assert all(new.startswith(label) for (_, _, new, _), label in zip(table, labels))
    assert table[-1][2].startswith("skipped: ") and table[-1][3] == ""
    assert browser.find_element(By.ID, "summary").text.startswith("3 renamed, 0 failed, 1 skipped")
    assert_accessible(browser, "the results")


# A fake of what Chromium hands a drop of the picked folder (`#folder`): entries whose readers give
# at most two entries a call, then none, and files that are fresh copies (no webkitRelativePath).
DROP_PICKED_FOLDER = """
window.readerCalls = 0;
const folder = (name, fullPath) => ({name, fullPath, isFile: false, isDirectory: true, children: [],
  createReader() { const rest = [...this.children];
                   return {readEntries(ok) { window.readerCalls++; setTimeout(() => ok(rest.splice(0, 2))); }}; }});
const picked = Array.from(document.getElementById("folder").files);
const root = folder(picked[0].webkitRelativePath.split("/")[0], "/" + picked[0].webkitRelativePath.split("/")[0]);
for (const file of picked) {
  let at = root;
  for (const part of file.webkitRelativePath.split("/").slice(1, -1)) {
    let next = at.children.find((child) => child.name === part);
    if (!next) { next = folder(part, `${at.fullPath}/${part}`); at.children.push(next); }
    at = next;
  }
  const copy = new File([file], file.name, {type: file.type});
  at.children.push({name: file.name, fullPath: `${at.fullPath}/${file.name}`, isFile: true, isDirectory: false,
                    file(ok) { setTimeout(() => ok(copy)); }});
}
const drop = new Event("drop", {bubbles: true, cancelable: true});
Object.defineProperty(drop, "dataTransfer", {value: {items: [{kind: "file", webkitGetAsEntry: () => root}], files: []}});
document.getElementById("drop").dispatchEvent(drop);
"""


def picked_paths(browser, count: int) -> set[str]:
    """The files the page holds, once it holds ``count``, by their paths as its line under the drop zone says."""
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "picked").text.startswith(f"{count} file(s): "))
    return set(browser.find_element(By.ID, "picked").text.split(": ", 1)[1].split(", "))


def test_a_dropped_folder_is_renamed_into_its_folders_and_its_non_images_are_skipped(stack, browser, tmp_path):
    """A phone's export: a HEIC, a TIFF, a PNG in a sub-folder, a .DS_Store and a notes.txt, chosen
    with the folder picker, then dropped (its entries read batch by batch). Every image is renamed
    into its folder, the two non-images are listed as skipped by their paths, and the upload goes
    through (a dropped folder used to fail it with "Could not reach the server")."""
    root = tmp_path / "Phone export"
    (root / "2024").mkdir(parents=True)
    rng = random.Random(681)
    images = {"IMG_001.HEIC": "HEIF", "scan.tiff": "TIFF", "2024/beach.png": "PNG"}
    labels = {}
    for relative, fmt in images.items():
        sample = draw_shape(rng, min_side=64, max_side=300)
        (root / relative).write_bytes(encode(sample.image, fmt))
        labels[relative] = sample.label
    (root / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 2048)
    (root / "2024" / "notes.txt").write_text("milk, eggs, a new memory card")
    every = {f"Phone export/{relative}" for relative in [*images, ".DS_Store", "2024/notes.txt"]}

    browser.get(stack.api + "/")
    browser.find_element(By.ID, "apikey").send_keys(KEY_A)
    browser.find_element(By.ID, "folder").send_keys(str(root))
    assert picked_paths(browser, 5) == every
    browser.execute_script(DROP_PICKED_FOLDER)
    # What the page holds now came from the drop's entries (the copies have no webkitRelativePath of their own).
    WebDriverWait(browser, 30).until(lambda b: b.execute_script(
        "return chosen.length === 5 && chosen.every((f) => f.webkitRelativePath === '' && relativePath(f))"))
    assert picked_paths(browser, 5) == every
    assert browser.execute_script("return window.readerCalls") == 5  # 2 + 2 + none at the top, 2 + none in 2024/
    browser.find_element(By.ID, "submit").click()

    table = wait_for_table(browser)
    assert browser.find_element(By.ID, "error").text == ""
    assert browser.find_element(By.ID, "summary").text.startswith("3 renamed, 0 failed, 2 skipped")
    renamed = {old: new for _, old, new, _ in table if not new.startswith("skipped: ")}
    extension = {"HEIF": "heic", "TIFF": "tiff", "PNG": "png"}
    for relative, fmt in images.items():
        name = relative.rsplit("/", 1)[-1]
        folder = "/".join(["Phone export", *relative.split("/")[:-1]])
        assert renamed[name].startswith(f"{folder}/{labels[relative]}"), (relative, renamed)
        assert renamed[name].endswith(f".{extension[fmt]}") and "/" not in renamed[name][len(folder) + 1:]
    skipped = [old for _, old, new, _ in table if new.startswith("skipped: ")]
    assert sorted(skipped) == ["Phone export/.DS_Store", "Phone export/2024/notes.txt"]
    thumbnails_drawn(browser)  # the previews of files in folders, HEIC and TIFF among them

    browser.find_element(By.ID, "zip").click()
    archive = eventually(lambda: next(browser.downloads.glob("*.zip"), None), "the ZIP is downloaded", timeout=60,
                         every=0.2)
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == sorted(renamed.values())
