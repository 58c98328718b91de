"""Human-study kit: the questionnaire page and its key, vote aggregation, and the page driven in Chromium."""

from __future__ import annotations

import base64
import io
import logging
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from faceres.core.errors import DataError
from faceres.report.human_study import CRITERIA, aggregate_votes, build_questionnaire, read_key

EXAMPLES = ["000101", "000202", "000303", "000404"]
# Unusual names: the page must not contain them (the key lives only in key.csv).
METHODS = ("meth_dfdnet_x", "meth_gfpgan_x", "meth_gpen_x", "meth_ours_x")
COLOURS = {"input": 10, "gt": 250, **{m: 60 + 40 * i for i, m in enumerate(METHODS)}}
Z95 = 1.959963984540054  # standard normal 97.5% quantile


def _write(folder: Path, value: int, fmt: str = "png") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, example in enumerate(EXAMPLES):
        array = np.full((16, 16, 3), value, np.uint8)
        array[0, 0] = (i, i, i)  # a per-example mark
        Image.fromarray(array).save(folder / f"{example}.{fmt}", **({"quality": 100} if fmt == "jpg" else {}))
    return folder


@pytest.fixture
def study(tmp_path):
    dirs = {m: _write(tmp_path / m, COLOURS[m], "jpg" if m == METHODS[0] else "png") for m in METHODS}
    inp, gt = _write(tmp_path / "input", COLOURS["input"]), _write(tmp_path / "gt", COLOURS["gt"])
    page, key_csv = tmp_path / "study" / "questionnaire.html", tmp_path / "private" / "key.csv"
    key = build_questionnaire(EXAMPLES, dirs, inp, gt, page, key_csv, seed=7)
    return {"dirs": dirs, "input": inp, "gt": gt, "page": page, "key_csv": key_csv, "key": key, "tmp": tmp_path}


def _page_images(page: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(base64.b64decode(b))).convert("RGB"))
            for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_questionnaire_page_and_key(study):
    page, key = study["page"].read_text(), study["key"]
    assert list(key.columns) == ["example", "label", "method", "questionnaire"]
    assert len(key) == len(EXAMPLES) * len(METHODS)
    for example in EXAMPLES:
        rows = key[key["example"] == example]
        assert list(rows["label"]) == ["A", "B", "C", "D"] and sorted(rows["method"]) == sorted(METHODS)
    assert len({tuple(key[key["example"] == e]["method"]) for e in EXAMPLES}) > 1  # order differs per example
    assert read_key(study["key_csv"]) == {e: dict(zip(g["label"], g["method"])) for e, g in key.groupby("example")}
    # The key is not in the page: no method names, no folder names, no file names.
    for method in METHODS:
        assert method not in page
    assert str(study["tmp"]) not in page and ".jpg" not in page
    for name, _ in CRITERIA:
        assert name in page
    # 16 px images are shown at an integer zoom (16x: 256 px), never resampled by the browser.
    assert page.count('width="256" height="256"') == len(EXAMPLES) * (2 + len(METHODS))
    assert 'id="votes-csv"' in page and "Blob" in page and not re.search(r'(src|href)="(?!data:)', page)
    # Images appear in the key's order: per example input, GT, then A, B, C, D (checked by their colours).
    images = _page_images(page)
    assert len(images) == len(EXAMPLES) * (2 + len(METHODS))
    for e, example in enumerate(EXAMPLES):
        block = images[e * 6:(e + 1) * 6]
        expected = ["input", "gt"] + list(key[key["example"] == example]["method"])
        for image, source in zip(block, expected):
            assert image[1, 1, 0] == pytest.approx(COLOURS[source], abs=2) and image[0, 0, 0] == pytest.approx(e, abs=2)


def test_questionnaire_order_is_seeded(study, tmp_path):
    again = build_questionnaire(EXAMPLES, study["dirs"], study["input"], study["gt"], tmp_path / "p.html", tmp_path / "k.csv", seed=7)
    assert again.equals(study["key"])
    other = build_questionnaire(EXAMPLES, study["dirs"], study["input"], study["gt"], tmp_path / "p.html", tmp_path / "k.csv", seed=8)
    assert not other.equals(study["key"])
    with pytest.raises(DataError, match="no image '999999'"):
        build_questionnaire(["999999"], study["dirs"], study["input"], study["gt"], tmp_path / "p.html", tmp_path / "k.csv", seed=1)


def _page_id(page: Path) -> str:
    (questionnaire,) = re.findall(r'<form id="study" data-questionnaire="([0-9a-f]+)"', page.read_text())
    return questionnaire


def test_votes_are_decoded_only_with_the_key_of_the_questionnaire_they_answered(study, tmp_path):
    # the review's case: a second questionnaire on the same examples, the methods in other orders
    other_page, other_key_csv = tmp_path / "other.html", tmp_path / "other-key.csv"
    other_key = build_questionnaire(EXAMPLES, study["dirs"], study["input"], study["gt"], other_page, other_key_csv,
                                    seed=8)
    first, second = _page_id(study["page"]), _page_id(other_page)
    assert first != second
    assert set(study["key"]["questionnaire"]) == {first} and set(other_key["questionnaire"]) == {second}
    # alice picks ours everywhere on the first page, as its export writes it
    label_of = {e: {m: label for label, m in labels.items()} for e, labels in read_key(study["key_csv"]).items()}
    votes = tmp_path / "votes-alice.csv"
    votes.write_text("rater,example,choice_label,questionnaire\n" + "".join(
        f"alice,{e},{label_of[e][METHODS[3]]},{first}\n" for e in EXAMPLES))
    assert aggregate_votes(votes, study["key_csv"]).loc[METHODS[3], "preference_pct"] == 100
    with pytest.raises(DataError) as info:
        aggregate_votes(votes, other_key_csv)
    assert str(info.value) == (f"{votes}: line 2: votes for questionnaire {first!r}, but the answer key "
                               f"{other_key_csv} is questionnaire {second!r}; allowed: the key written with the page "
                               "this rater answered (faceres questionnaire --key)")


def test_votes_or_a_key_without_the_questionnaire_column_are_read_with_a_warning(study, tmp_path, caplog):
    label_of = {e: {m: label for label, m in labels.items()} for e, labels in read_key(study["key_csv"]).items()}
    votes = tmp_path / "hand-written.csv"
    votes.write_text("rater,example,choice_label\n" + "".join(f"r,{e},{label_of[e][METHODS[0]]}\n" for e in EXAMPLES))
    logger = logging.getLogger("faceres")  # faceres's console set-up may have stopped it propagating to caplog's
    logger.addHandler(caplog.handler)
    try:
        assert aggregate_votes(votes, study["key_csv"]).loc[METHODS[0], "votes"] == len(EXAMPLES)
    finally:
        logger.removeHandler(caplog.handler)
    assert f"{votes}: no questionnaire column (not exported by the page)" in caplog.text
    mixed = tmp_path / "mixed-key.csv"
    mixed.write_text(study["key_csv"].read_text().replace(_page_id(study["page"]), "000000000000", 1))
    with pytest.raises(DataError, match=r"mixed-key.csv: rows of 2 questionnaires \(000000000000, [0-9a-f]{12}\)"):
        aggregate_votes(votes, mixed)


def _key_csv(path: Path) -> Path:
    rows = ["example,label,method"]
    for example, order in (("e1", "ours gpen gfpgan dfdnet"), ("e2", "gpen ours dfdnet gfpgan"),
                           ("e3", "dfdnet gfpgan ours gpen"), ("e4", "gfpgan dfdnet gpen ours")):
        rows += [f"{example},{label},{m}" for label, m in zip("ABCD", order.split())]
    path.write_text("\n".join(rows) + "\n")
    return path


def _wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_aggregate_votes_hand_computed(tmp_path):
    key = _key_csv(tmp_path / "key.csv")
    (tmp_path / "r1.csv").write_text("rater,example,choice_label\nr1,e1,A\nr1,e2,B\nr1,e3,C\nr1,e4,C\n")
    # r2 picks ours on e1 (A), e2 (B), gfpgan on e3 (B); skips e4. Extra columns are ignored.
    (tmp_path / "r2.csv").write_text("rater,example,choice_label,comment\nr2,e1,A,\nr2,e2,B,\"sharp, real\"\nr2,e3,B,\n")
    result = aggregate_votes([tmp_path / "r1.csv", tmp_path / "r2.csv"], key)
    # r1: ours, ours, ours, gpen; r2: ours, ours, gfpgan -> ours 5, gpen 1, gfpgan 1, dfdnet 0 of 7.
    assert result["votes"].to_dict() == {"ours": 5, "gpen": 1, "gfpgan": 1, "dfdnet": 0}
    assert (result["total"] == 7).all()
    assert result.loc["ours", "preference_pct"] == pytest.approx(100 * 5 / 7)
    for method, k in (("ours", 5), ("dfdnet", 0)):
        low, high = _wilson(k, 7)
        assert result.loc[method, "ci_low_pct"] == pytest.approx(100 * low, abs=1e-9)
        assert result.loc[method, "ci_high_pct"] == pytest.approx(100 * high, abs=1e-9)
    assert result.attrs == {"raters": 2, "examples": 4}


@pytest.mark.parametrize(
    "votes, expected",
    [
        ("rater,example,choice_label\nr1,e9,A\n", "line 2: example 'e9' is not in the answer key"),
        ("rater,example,choice_label\nr1,e1,A\nr1,e2,E\n", "line 3: label 'E' for example 'e2' is not in the answer key"),
        ("rater,example,choice_label\nr1,e1,A\nr1,e1,B\n", "line 3: rater 'r1' already voted on example 'e1'"),
        ("rater,example,label\nr1,e1,A\n", "required: rater, example, choice_label"),
        ("rater,example,choice_label\nr1,,A\n", "line 2: empty example"),
        ("rater,example,choice_label\n", "no votes in"),
    ],
)
def test_bad_votes_give_one_line_errors(tmp_path, votes, expected):
    key = _key_csv(tmp_path / "key.csv")
    path = tmp_path / "votes.csv"
    path.write_text(votes)
    with pytest.raises(DataError) as info:
        aggregate_votes(path, key)
    assert expected in str(info.value) and "\n" not in str(info.value)


# --- the page in a real browser -------------------------------------------------------------------------------

def test_questionnaire_in_chromium(study, browser, tmp_path):
    from selenium.webdriver.common.by import By

    key = read_key(study["key_csv"])
    label_of = {e: {m: label for label, m in labels.items()} for e, labels in key.items()}
    # Rater 1 prefers ours everywhere but the last example (GPEN); rater 2 picks ours on the first two only.
    plans = {"Rater One": [METHODS[3]] * 3 + [METHODS[2]], "r2": [METHODS[3], METHODS[3], None, None]}
    votes_files = []
    for rater, plan in plans.items():
        browser.get(study["page"].as_uri())
        for index, (example, method) in enumerate(zip(EXAMPLES, plan)):
            if method is None:
                continue
            label = label_of[example][method]
            choice = browser.find_element(By.CSS_SELECTOR, f'input[name="ex-{index}"][value="{label}"]')
            choice.find_element(By.XPATH, "..").find_element(By.TAG_NAME, "img").click()  # click the picture
            assert choice.is_selected()
        browser.find_element(By.ID, "rater").send_keys(rater)
        browser.find_element(By.ID, "export").click()
        text = browser.find_element(By.ID, "votes-csv").get_property("value")
        answered = sum(m is not None for m in plan)
        assert text.splitlines()[0] == "rater,example,choice_label,questionnaire"
        assert len(text.splitlines()) == 1 + answered
        # every vote names the questionnaire the key was written with
        assert {line.split(",")[-1] for line in text.splitlines()[1:]} == set(study["key"]["questionnaire"])
        assert f"Exported {answered} of {len(EXAMPLES)} answers" in browser.find_element(By.ID, "status").text
        path = tmp_path / f"votes-{len(votes_files)}.csv"
        path.write_text(text, newline="")
        votes_files.append(path)
    result = aggregate_votes(votes_files, study["key_csv"])
    assert result["votes"].reindex(list(METHODS)).tolist() == [0, 0, 1, 5]
    assert result.loc[METHODS[3], "preference_pct"] == pytest.approx(100 * 5 / 6)
    assert result.attrs["raters"] == 2
    downloaded = browser.downloads / "votes-r2.csv"
    for _ in range(100):  # the Blob download lands asynchronously
        if downloaded.is_file():
            break
        time.sleep(0.1)
    assert downloaded.is_file(), "the Export button did not download votes-r2.csv"
    assert downloaded.read_text() == votes_files[1].read_text()


def test_the_questionnaire_and_votes_commands(study, tmp_path, capsys):
    from faceres.cli import main

    page, key_csv = tmp_path / "cli" / "page.html", tmp_path / "cli" / "key.csv"
    methods = [f"--method={m}={study['dirs'][m]}" for m in METHODS[2:]]
    assert main(["questionnaire", *methods, "--examples", "3", "--input", str(study["input"]), "--gt",
                 str(study["gt"]), "--out", str(page), "--key", str(key_csv)]) == 0
    key = read_key(key_csv)
    assert len(key) == 3 and set(key) < set(EXAMPLES)
    assert all(sorted(labels.values()) == sorted(METHODS[2:]) for labels in key.values())
    # One rater picks meth_ours_x on every example: 3 of 3 votes, Wilson interval by hand
    label_of = {example: {m: lab for lab, m in labels.items()} for example, labels in key.items()}
    votes = tmp_path / "votes-r1.csv"
    votes.write_text("rater,example,choice_label\n" + "".join(
        f"r1,{example},{label_of[example]['meth_ours_x']}\n" for example in key))
    capsys.readouterr()
    assert main(["votes", str(votes), "--key", str(key_csv), "--out", str(tmp_path / "pref.csv")]) == 0
    shown = capsys.readouterr().out
    assert "meth_ours_x" in shown and "meth_gpen_x" in shown
    table = {row["method"]: row for row in pd.read_csv(tmp_path / "pref.csv").to_dict("records")}
    assert table["meth_ours_x"]["preference_pct"] == pytest.approx(100.0)
    n, z = 3, Z95
    low = (1 + z * z / (2 * n) - z * math.sqrt(z * z / (4 * n * n))) / (1 + z * z / n)  # Wilson, p = 1
    assert table["meth_ours_x"]["ci_low_pct"] == pytest.approx(100 * low, abs=0.05)
    assert table["meth_gpen_x"]["preference_pct"] == 0 and table["meth_gpen_x"]["votes"] == 0


def test_more_examples_than_test_images_is_one_line_not_a_silent_cap(study, tmp_path, capsys):
    from faceres.cli import main

    page, key_csv = tmp_path / "cli" / "page.html", tmp_path / "cli" / "key.csv"
    methods = [f"--method={m}={study['dirs'][m]}" for m in METHODS[2:]]
    capsys.readouterr()
    assert main(["questionnaire", *methods, "--examples", str(len(EXAMPLES) + 1), "--input", str(study["input"]),
                 "--gt", str(study["gt"]), "--out", str(page), "--key", str(key_csv)]) == 2
    assert capsys.readouterr().err == (f"error: --examples {len(EXAMPLES) + 1}: allowed: 1..{len(EXAMPLES)} (the test "
                                       f"images in {study['input']})\n")
    assert not page.exists() and not key_csv.exists()


def test_the_questionnaire_command_needs_two_methods(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "faceres.cli", "questionnaire", "--method", "ours", "--out",
                             "p.html", "--key", "k.csv"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --method 'ours': allowed: NAME=FOLDER (e.g. --method " \
                                    "ours=data/restored/main/bfr/seed0)"
