"""retina studio: the session logic, and the web app driven in a real headless Chromium as a user would.

The browser test starts `retina studio` on a free local port, samples a grade-3 layout, removes every
haemorrhage, re-renders, downloads the masks and the photograph, and checks that the masks hold no haemorrhage
pixel and that the photograph changed only where the haemorrhages were. It needs Debian's chromium and
chromium-driver (.ci/run installs them); elsewhere it is skipped, but never in CI.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from retina.common.errors import RetinaError
from retina.layout.model import load_layout_model
from retina.render.infer import open_renderer
from retina.studio.session import StudioSession

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def session() -> StudioSession:
    import torch

    return StudioSession(load_layout_model(None, torch.device("cpu")), open_renderer(None, torch.device("cpu")))


def test_session_sample_edit_render_export(tmp_path):
    studio = session()
    with pytest.raises(RetinaError, match="sample one first"):
        studio.remove("he")
    studio.sample(3, 5, 128)
    assert studio.layout.grade == 3 and studio.photo.shape == (128, 128, 3)
    assert "agrees" in studio.banner()
    before = studio.photo.copy()
    haemorrhages = studio.layout.channel("he").copy()
    studio.remove("he")
    assert "WARNING" in studio.banner() and "grade 3 needs" in studio.banner()
    after = studio.render()
    near = cv2.dilate(haemorrhages.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    diff = np.abs(before.astype(int) - after.astype(int)).max(-1)
    assert diff[near].max() > 40 and diff[~near].max() <= 2
    stroke = np.zeros((128, 128), bool)
    stroke[60:64, 30:34] = True
    studio.paint("he", stroke)
    assert studio.layout.channel("he")[61, 31] and studio.edits == ["remove he", "paint he"]
    photo, masks, meta = studio.export(tmp_path)
    metadata = json.loads(meta.read_text())
    assert metadata["synthetic"] is True and metadata["edits"] == ["remove he", "paint he"]
    with zipfile.ZipFile(masks) as archive:
        names = archive.namelist()
    assert any(n.endswith("labels.csv") for n in names) and any("/masks/he/" in n for n in names)
    assert np.array_equal(np.array(Image.open(photo)), studio.photo)
    with pytest.raises(RetinaError, match="size 100"):
        studio.sample(3, 0, 100)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def studio_url(tmp_path):
    port = free_port()
    log = open(tmp_path / "studio.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "retina.cli", "studio", "--port", str(port), "--device", "cpu"],
                              cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if server.poll() is not None:
                pytest.fail(f"retina studio exited: {(tmp_path / 'studio.log').read_text()}")
            time.sleep(0.5)
    else:
        pytest.fail("retina studio did not answer within 180 s")
    yield url
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.fixture
def browser(tmp_path):
    if not (CHROMIUM and CHROMEDRIVER):
        if os.environ.get("CI"):
            pytest.fail("CI must install Debian's chromium and chromium-driver (.ci/run does)")
        pytest.skip("no chromium/chromedriver on this machine (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    # No background connections: this machine's closed network refuses them, many at a time.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,2100", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.downloads = downloads
    yield driver
    driver.quit()


def screenshot(driver, tmp_path: Path, name: str) -> None:
    driver.save_screenshot(str(tmp_path / f"{name}.png"))
    keep = os.environ.get("RETINA_STUDIO_SCREENSHOTS")  # a folder to keep them in (closing notes, docs)
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / f"{name}.png", Path(keep) / f"studio-{name}.png")


def test_studio_in_a_browser(studio_url, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 120)
    browser.get(studio_url)
    wait.until(EC.element_to_be_clickable((By.ID, "sample")))

    def click(css: str) -> None:
        element = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
        element.click()

    def banner_says(text: str) -> None:
        wait.until(lambda d: text in d.find_element(By.ID, "banner").text)

    def photo_source() -> str:
        images = browser.find_elements(By.CSS_SELECTOR, "#photo img")
        return images[0].get_attribute("src") if images else ""

    def download_all() -> dict[str, bytes]:
        for stale in browser.downloads.iterdir():
            stale.unlink()
        before = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#downloads a")}
        click("#export")
        wait.until(lambda d: len({a.get_attribute("href") for a in d.find_elements(By.CSS_SELECTOR, "#downloads a")}
                                 - before) >= 3)
        for link in browser.find_elements(By.CSS_SELECTOR, "#downloads a"):
            browser.execute_script("arguments[0].click();", link)  # as a user clicks each download
        wait.until(lambda d: len([p for p in browser.downloads.iterdir() if not p.name.endswith(".crdownload")])
                   >= 3)
        return {p.name: p.read_bytes() for p in browser.downloads.iterdir()}

    def masks_of(files: dict[str, bytes], channel: str) -> np.ndarray:
        archive = zipfile.ZipFile(io.BytesIO(next(v for k, v in files.items() if k.endswith("_masks.zip"))))
        member = next(n for n in archive.namelist() if f"/masks/{channel}/" in n)
        return np.array(Image.open(io.BytesIO(archive.read(member)))) > 0

    def photo_of(files: dict[str, bytes]) -> np.ndarray:
        return np.array(Image.open(io.BytesIO(next(v for k, v in files.items() if k.endswith(".png")))))

    click("#grade label[data-testid='3-radio-label']")
    click("#size label[data-testid='128-radio-label']")
    click("#sample")
    banner_says("stated grade 3 agrees")
    wait.until(lambda d: photo_source())
    screenshot(browser, tmp_path, "sampled")
    sampled = download_all()
    haemorrhages = masks_of(sampled, "he")
    assert haemorrhages.shape == (128, 128) and haemorrhages.any()

    click("#channel label[data-testid='he-radio-label']")
    click("#remove")
    banner_says("grade 3 needs at least")
    screenshot(browser, tmp_path, "edited")
    first_photo = photo_source()
    click("#render")
    wait.until(lambda d: photo_source() and photo_source() != first_photo)
    screenshot(browser, tmp_path, "rerendered")
    edited = download_all()

    assert not masks_of(edited, "he").any()
    assert np.array_equal(masks_of(edited, "ex"), masks_of(sampled, "ex"))
    near = cv2.dilate(haemorrhages.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    diff = np.abs(photo_of(sampled).astype(int) - photo_of(edited).astype(int)).max(-1)
    assert diff[near].max() > 40  # the haemorrhages are gone from the photograph
    assert diff[~near].max() <= 2  # and nothing else changed
    metadata = json.loads(next(v for k, v in edited.items() if k.endswith(".json")))
    assert metadata["edits"] == ["remove he"] and metadata["grade_check"] != "ok"


def test_studio_refuses_a_bad_port(capsys):
    from retina.cli import main

    with pytest.raises(SystemExit) as done:
        main(["studio", "--port", "70000"])
    assert done.value.code == 2 and "--port 70000" in capsys.readouterr().err


def test_session_upload_takes_images_only_within_the_bound(tmp_path):
    from retina.studio import session as studio_session

    studio = session()
    studio.sample(2, 0, 128)
    mask = np.zeros((256, 256), np.uint8)
    mask[100:120, 40:60] = 255
    Image.fromarray(mask).save(tmp_path / "nv.png")
    studio.upload("nv", tmp_path / "nv.png")  # 256 px mask onto a 128 px layout: resized
    assert studio.layout.channel("nv")[55, 25] and studio.edits == ["upload nv"]
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(RetinaError, match="not an image"):
        studio.upload("nv", tmp_path / "notes.txt")
    (tmp_path / "fake.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(RetinaError, match="fake.png"):
        studio.upload("nv", tmp_path / "fake.png")
    (tmp_path / "big.png").write_bytes(b"\0" * (studio_session.MAX_UPLOAD_BYTES + 1))
    with pytest.raises(RetinaError, match="more than the 8 MB"):
        studio.upload("nv", tmp_path / "big.png")
    assert studio.edits == ["upload nv"]
