"""Human study kit for Table 8's Preference column (appendix D, Figure 11).

1. :func:`build_questionnaire` writes one self-contained HTML page (images inlined; it opens offline from a
   file or an e-mail attachment) and, separately, the answer key. Per example the page shows the degraded input,
   the ground truth and the methods' restorations in a random order (seeded, a new order per example), labelled
   A, B, C, ...; the key (example, label -> method) is NOT in the page, and every image is re-encoded as PNG so
   neither file names nor formats give a method away. The rater clicks the best restoration per example and
   presses "Export votes": the page downloads ``votes-<rater>.csv`` and also shows it in a text box (id
   ``votes-csv``) for copy and paste.
2. :func:`aggregate_votes` joins the raters' votes files with the key: Preference (%) per method with a
   Wilson score interval.

The page and its key carry the questionnaire's id (:func:`questionnaire_id`, a digest of the key), and every
exported vote repeats it, so votes decoded with another questionnaire's key (the same examples in another
order give wrong Preference numbers without any other sign) are refused in one line.

Votes CSV format (UTF-8, header line, RFC 4180 quoting), one line per answered example::

    rater,example,choice_label,questionnaire
    alice,000123,C,5f0c1e9a2b7d

Key CSV format: ``example,label,method,questionnaire``, one line per (example, label). Files without the
``questionnaire`` column (hand-written, or from before it) are read too, with a warning that they cannot be
checked.
"""

from __future__ import annotations

import csv
import hashlib
import html
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from faceres.core.errors import ConfigError, DataError
from faceres.report.images import data_uri, load_image, png_bytes

log = logging.getLogger(__name__)

VOTES_COLUMNS = ("rater", "example", "choice_label")
KEY_COLUMNS = ("example", "label", "method")
ID_COLUMN = "questionnaire"  # in the key and in every vote: which questionnaire they belong to
LABELS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

CRITERIA = (
    ("Colour fidelity", "little or no colour shift: eyes, hair colour and skin tone consistent with the ground truth."),
    ("Sharpness", "sharp, well-defined features."),
    ("Realism", "looks like a real photograph, with no or few artifacts."),
    ("No exaggerated features", "facial features not too bright or crisp to look real; eyelids and eyelashes "
                                "consistent with the ground truth."),
)

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:2200px;color:#222;padding:0 1rem}
h1{font-size:1.4rem}.instructions{background:#f5f7fa;border:1px solid #dde;padding:.6rem 1rem;border-radius:6px}
fieldset.example{border:1px solid #ccd;border-radius:6px;margin:1rem 0;padding:.5rem 1rem}
fieldset.example.answered{border-color:#2a7}
legend{font-weight:600}.row{display:flex;flex-wrap:wrap;gap:.8rem;align-items:flex-start}
figure{margin:0;text-align:center;font-size:.85rem}figure img,.choice img{display:block;max-width:100%;height:auto;
image-rendering:pixelated;background:#eee}
.refs{margin-bottom:.6rem;padding-bottom:.6rem;border-bottom:1px dashed #ccd}
.choice{cursor:pointer;text-align:center;padding:4px;border:3px solid transparent;border-radius:6px}
.choice.selected{border-color:#2a7;background:#e8f6ee}.choice span{font-weight:700}
html{scroll-padding-bottom:4rem}
#toolbar{position:sticky;bottom:0;background:#fff;border-top:1px solid #ccd;padding:.5rem 0}
textarea{width:100%;font-family:monospace}#status{font-weight:600}
"""

_SCRIPT = """
(function(){
  const sets = Array.from(document.querySelectorAll('fieldset.example'));
  const progress = document.getElementById('progress');
  function refresh(){
    let answered = 0;
    sets.forEach(function(fs){
      const checked = fs.querySelector('input[type=radio]:checked');
      fs.classList.toggle('answered', !!checked);
      fs.querySelectorAll('.choice').forEach(function(c){
        c.classList.toggle('selected', c.contains(checked));
      });
      if (checked) answered += 1;
    });
    progress.textContent = answered + ' of ' + sets.length + ' examples answered';
  }
  document.addEventListener('change', refresh);
  function field(s){ return /[",\\r\\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s; }
  document.getElementById('export').addEventListener('click', function(){
    const status = document.getElementById('status');
    const rater = document.getElementById('rater').value.trim();
    if (!rater){ status.textContent = 'Please enter your name or rater id first.'; return; }
    const questionnaire = document.getElementById('study').dataset.questionnaire;
    const lines = ['rater,example,choice_label,questionnaire'];
    const missing = [];
    sets.forEach(function(fs){
      const checked = fs.querySelector('input[type=radio]:checked');
      if (checked) lines.push([rater, fs.dataset.example, checked.value, questionnaire].map(field).join(','));
      else missing.push(fs.dataset.example);
    });
    const text = lines.join('\\r\\n') + '\\r\\n';
    document.getElementById('votes-csv').value = text;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([text], {type: 'text/csv'}));
    link.download = 'votes-' + rater.replace(/[^A-Za-z0-9_.-]+/g, '_') + '.csv';
    document.body.appendChild(link); link.click(); link.remove();
    setTimeout(function(){ URL.revokeObjectURL(link.href); }, 10000);
    status.textContent = 'Exported ' + (lines.length - 1) + ' of ' + sets.length + ' answers' +
      (missing.length ? '; unanswered: ' + missing.join(', ') : '') +
      '. Send the downloaded file (or the text below) to the study organiser.';
  });
  refresh();
})();
"""


# Images are shown at an integer zoom (pixel replication), never resampled: small ones are enlarged to at least
# this width, large ones stay at their own size, so the browser's filtering cannot blur or sharpen them.
MIN_DISPLAY_PX = 256


def _img(array: np.ndarray, alt: str) -> str:
    zoom = max(1, MIN_DISPLAY_PX // array.shape[1])
    return (f'<img src="{data_uri(png_bytes(array))}" alt="{html.escape(alt)}" '
            f'width="{array.shape[1] * zoom}" height="{array.shape[0] * zoom}">')


def questionnaire_id(key_rows: Sequence[Mapping[str, str]]) -> str:
    """12 hex digits of the SHA-256 of the key's (example, label, method) rows: the same page always gets the
    same id, and two pages that decode votes differently never share one."""
    text = "".join(f"{row['example']}\t{row['label']}\t{row['method']}\n" for row in key_rows)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def build_questionnaire(
    examples: Sequence[str],
    methods_dirs: Mapping[str, str | Path],
    input_dir: str | Path,
    gt_dir: str | Path,
    out_html: str | Path,
    key_csv: str | Path,
    seed: int,
    *,
    title: str = "Face restoration: which restoration is best?",
) -> pd.DataFrame:
    """Write the questionnaire page ``out_html`` and its answer key ``key_csv``; returns the key.

    ``examples``: image ids (file names or stems) found in ``input_dir``, ``gt_dir`` and every method folder;
    ``methods_dirs``: {method name: folder of its restorations} (the names the key and the votes use, e.g. the
    metrics method names of Table 8). ``seed`` fixes the per-example order of the methods.
    """
    examples = list(examples)
    if not examples:
        raise ConfigError("the questionnaire needs at least one example image id")
    duplicates = sorted({e for e in examples if examples.count(e) > 1})
    if duplicates:
        raise ConfigError(f"example ids repeated: {', '.join(duplicates)}; each example may appear once")
    if not 2 <= len(methods_dirs) <= len(LABELS):
        raise ConfigError(f"{len(methods_dirs)} methods given; allowed: 2 to {len(LABELS)} methods to choose from")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed = {seed!r}; allowed: an integer")
    methods = list(methods_dirs)
    rng = np.random.default_rng(int(seed))
    key_rows, blocks = [], []
    for index, example in enumerate(examples):
        order = [methods[i] for i in rng.permutation(len(methods))]
        refs = (
            f'<figure class="ref">{_img(load_image(input_dir, example), "degraded input")}<figcaption>Input</figcaption></figure>'
            f'<figure class="ref">{_img(load_image(gt_dir, example), "ground truth")}<figcaption>Ground truth</figcaption></figure>'
        )
        choices = []
        for label, method in zip(LABELS, order):
            key_rows.append({"example": example, "label": label, "method": method})
            choices.append(
                f'<label class="choice"><input type="radio" name="ex-{index}" value="{label}">'
                f"{_img(load_image(methods_dirs[method], example), f'restoration {label}')}<span>{label}</span></label>"
            )
        blocks.append(
            f'<fieldset class="example" data-example="{html.escape(example)}">'
            f"<legend>Example {index + 1} of {len(examples)}: {html.escape(example)}</legend>"
            f'<div class="row refs">{refs}</div><div class="row choices">{"".join(choices)}</div></fieldset>'
        )
    questionnaire = questionnaire_id(key_rows)
    criteria = "".join(f"<li><b>{html.escape(name)}</b>: {html.escape(text)}</li>" for name, text in CRITERIA)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="instructions"><p>Each example shows a degraded <b>input</b>, its <b>ground truth</b> and {len(methods)}
restorations labelled {", ".join(LABELS[:len(methods)])} in a random order. Click the restoration you judge best,
following these criteria:</p><ol>{criteria}</ol>
<p>When done, enter your name and press <b>Export votes</b>: a CSV file downloads and also appears in the box
at the bottom of the page (copy it from there if the download is blocked).</p></div>
<form id="study" data-questionnaire="{questionnaire}" onsubmit="return false">{"".join(blocks)}</form>
<div id="toolbar"><label>Your name or rater id: <input id="rater" autocomplete="name"></label>
<button id="export" type="button">Export votes (CSV)</button> <span id="progress"></span></div>
<p id="status" role="status"></p>
<textarea id="votes-csv" rows="6" readonly placeholder="rater,example,choice_label,questionnaire"></textarea>
<p class="id">Questionnaire {questionnaire}</p>
<script>{_SCRIPT}</script>
</body></html>
"""
    out_html, key_csv = Path(out_html), Path(key_csv)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    key_csv.parent.mkdir(parents=True, exist_ok=True)
    out_html.write_text(page, encoding="utf-8")
    key = pd.DataFrame.from_records(key_rows, columns=list(KEY_COLUMNS)).assign(**{ID_COLUMN: questionnaire})
    key.to_csv(key_csv, index=False)
    return key


def _read_csv(path: Path, columns: Sequence[str], what: str,
              optional: Sequence[str] = ()) -> tuple[list[tuple[int, dict[str, str]]], bool]:
    """(rows of a CSV with the required ``columns`` and those of ``optional`` it has, as (line number, row);
    whether it has all of ``optional``); extra columns are ignored; one-line errors."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in columns if c not in (reader.fieldnames or [])]
            if missing:
                raise DataError(
                    f"{path}: {what} has columns {reader.fieldnames or []}; required: {', '.join(columns)}"
                )
            present = [c for c in optional if c in reader.fieldnames]
            rows = []
            for row in reader:
                if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
                    continue  # blank line
                values = {c: (row.get(c) or "").strip() for c in (*columns, *present)}
                empty = [c for c in values if not values[c]]
                if empty:
                    raise DataError(f"{path}: line {reader.line_num}: empty {', '.join(empty)}")
                rows.append((reader.line_num, values))
            return rows, len(present) == len(optional)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV {what} ({exc})") from None


def read_key(key_csv: str | Path) -> dict[str, dict[str, str]]:
    """The answer key as {example: {label: method}}."""
    return _read_key(Path(key_csv))[0]


def _read_key(key_csv: Path) -> tuple[dict[str, dict[str, str]], str | None]:
    """({example: {label: method}}, the questionnaire's id, None for a key without that column)."""
    key: dict[str, dict[str, str]] = {}
    rows, has_id = _read_csv(key_csv, KEY_COLUMNS, "answer key", optional=(ID_COLUMN,))
    for line, row in rows:
        labels = key.setdefault(row["example"], {})
        if row["label"] in labels:
            raise DataError(f"{key_csv}: line {line}: example {row['example']!r} label {row['label']!r} appears twice")
        labels[row["label"]] = row["method"]
    if not key:
        raise DataError(f"{key_csv}: the answer key has no rows")
    ids = sorted({row[ID_COLUMN] for _, row in rows}) if has_id else [None]
    if len(ids) > 1:
        raise DataError(f"{key_csv}: rows of {len(ids)} questionnaires ({', '.join(ids)}); allowed: the key of one "
                        "questionnaire, as faceres questionnaire --key writes it")
    return key, ids[0]


def preference_from_counts(counts: Mapping[str, int], *, level: float = 0.95) -> pd.DataFrame:
    """Preference (%) per method from vote counts, with a Wilson score interval (scipy, no continuity
    correction) at ``level``. Columns: votes, total, preference_pct, ci_low_pct, ci_high_pct, ci_level."""
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level = {level!r}; allowed: a confidence level in (0, 1), e.g. 0.95")
    total = int(sum(counts.values()))
    if total <= 0:
        raise DataError("no votes to aggregate")
    records = []
    for method, votes in counts.items():
        ci = stats.binomtest(int(votes), total).proportion_ci(confidence_level=level, method="wilson")
        records.append({
            "method": method, "votes": int(votes), "total": total, "preference_pct": 100.0 * votes / total,
            "ci_low_pct": 100.0 * ci.low, "ci_high_pct": 100.0 * ci.high, "ci_level": level,
        })
    return pd.DataFrame.from_records(records).set_index("method")


def aggregate_votes(votes_csvs: str | Path | Sequence[str | Path], key_csv: str | Path, *, level: float = 0.95) -> pd.DataFrame:
    """Preference (%) per method over all votes in ``votes_csvs`` (one or several raters' files).

    Each vote is one (rater, example) choice; the interval treats votes as independent Bernoulli trials (raters
    judging the same examples are correlated, so it is, if anything, narrow). Every method of the key gets a
    row, with 0 votes if never chosen. Errors (one line, naming file and line): a missing column, an example or
    label not in the key, the same rater voting twice on one example.
    """
    if isinstance(votes_csvs, (str, Path)):
        votes_csvs = [votes_csvs]
    if not votes_csvs:
        raise ConfigError("aggregate_votes needs at least one votes CSV")
    key_csv = Path(key_csv)
    key, questionnaire = _read_key(key_csv)
    if questionnaire is None:
        log.warning(f"{key_csv}: no {ID_COLUMN} column (a hand-written key, or one from before it): the votes "
                    "cannot be checked against the questionnaire they answered")
    methods = list(dict.fromkeys(m for labels in key.values() for m in labels.values()))
    counts = dict.fromkeys(methods, 0)
    seen: dict[tuple[str, str], str] = {}
    for votes_csv in map(Path, votes_csvs):
        rows, has_id = _read_csv(votes_csv, VOTES_COLUMNS, "votes file", optional=(ID_COLUMN,))
        if questionnaire is not None and not has_id:
            log.warning(f"{votes_csv}: no {ID_COLUMN} column (not exported by the page): its votes are not checked "
                        f"against the key's questionnaire {questionnaire}")
        for line, row in rows:
            where = f"{votes_csv}: line {line}"
            voted_on = row.get(ID_COLUMN)
            if questionnaire is not None and voted_on is not None and voted_on != questionnaire:
                raise DataError(f"{where}: votes for questionnaire {voted_on!r}, but the answer key {key_csv} is "
                                f"questionnaire {questionnaire!r}; allowed: the key written with the page this rater "
                                "answered (faceres questionnaire --key)")
            labels = key.get(row["example"])
            if labels is None:
                raise DataError(f"{where}: example {row['example']!r} is not in the answer key {key_csv}")
            method = labels.get(row["choice_label"])
            if method is None:
                raise DataError(
                    f"{where}: label {row['choice_label']!r} for example {row['example']!r} is not in the answer key "
                    f"{key_csv}; allowed: {', '.join(sorted(labels))}"
                )
            earlier = seen.setdefault((row["rater"], row["example"]), where)
            if earlier != where:
                raise DataError(f"{where}: rater {row['rater']!r} already voted on example {row['example']!r} ({earlier}); keep one vote")
            counts[method] += 1
    if not seen:
        raise DataError(f"no votes in {', '.join(map(str, votes_csvs))}")
    result = preference_from_counts(counts, level=level)
    result.attrs["raters"] = len({rater for rater, _ in seen})
    result.attrs["examples"] = len({example for _, example in seen})
    return result


__all__ = [
    "CRITERIA", "ID_COLUMN", "KEY_COLUMNS", "VOTES_COLUMNS", "aggregate_votes", "build_questionnaire",
    "preference_from_counts", "questionnaire_id", "read_key",
]
