"""Shared fixtures: the repo's params, the shared CelebA sample, small configs."""

from __future__ import annotations

from pathlib import Path

import shutil

import pytest
import yaml

from faceres.config.schema import Config, config_from_dict

REPO = Path(__file__).resolve().parents[1]
CELEBA = REPO.parent / "shared" / "data" / "celeba-10k"


def repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


@pytest.fixture
def params() -> dict:
    """A fresh copy of params.yaml's mapping, to modify in a test."""
    return repo_params()


def small_config(**overrides) -> Config:
    """The cpu profile shrunk for tests: a tiny synthetic set at 64 px."""
    base = {
        "skips": 2,
        "profiles.cpu.resolution": 64,
        "profiles.cpu.identities": 6,
        "profiles.cpu.images_per_identity": 2,
        "profiles.cpu.workers": 0,
        "data.test_fraction": 0.34,
    }
    base.update(overrides)
    return config_from_dict(repo_params(), overrides=base)


@pytest.fixture
def celeba() -> Path:
    return require_celeba()


def require_celeba() -> Path:
    """The shared CelebA sample, or a skip saying where it was looked for (any fixture scope)."""
    if not (CELEBA / "images").is_dir():
        pytest.skip(f"{CELEBA} not present (the shared CelebA sample sits beside the repo)")
    return CELEBA


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest module first: under `make test` (pytest-xdist, --dist loadfile, 2 workers) the DVC experiment
    module, ~10 min on one worker, starts at once while the other worker takes every other file."""
    items.sort(key=lambda item: item.path.name != "test_experiments.py")  # stable: the rest keep their order


# --- a real browser (the human-study page, the report) -----------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser(tmp_path):
    """Headless Chromium (selenium), downloads into tmp_path/downloads; skipped where Chromium is absent."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Chromium or chromedriver not installed (Debian: apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_window_size(1280, 900)
    driver.downloads = downloads
    yield driver
    driver.quit()
