"""The calibration sweep behind params.yaml's loss weights and augmentation strength (docs/calibration.md).

Each setting trains the main arm with the product's trainer (faceres.pipeline.train: resumable, cached by
fingerprint in $FACERES_CACHE, so a stopped sweep continues where it was) on real aligned faces at the cpu
profile's 64 px, then restores a *validation* split (identities held out from both training and test:
data.val_fraction) and scores it with the evaluate stage's metrics, beside the degraded input (DEG). The test
split is looked at once, by ``--test``, for the setting the sweep chose (the issue's target). Every finished setting is one row of docs/calibration.csv; docs/calibration.md's
table is regenerated from the CSV after each row.

    .venv/bin/python docs/calibration.py                      # every setting of SETTINGS not yet in the CSV
    .venv/bin/python docs/calibration.py --only base,hflip0   # some of them
    .venv/bin/python docs/calibration.py --table              # only rewrite the Markdown table
    .venv/bin/python docs/calibration.py --test gentle-3epochs    # the chosen model and DEG on the test split

Data: ../shared/data/celeba-10k (CelebA, 89x109 aligned), the first ``--limit`` images, upscaled crops.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CELEBA = REPO.parent / "shared" / "data" / "celeba-10k"
STRATA_START, STRATA_END = "<!-- strata-table:start (docs/calibration.py --strata) -->", "<!-- strata-table:end -->"
TABLE_START, TABLE_END = "<!-- calibration-table:start (docs/calibration.py) -->", "<!-- calibration-table:end -->"

# name -> params.yaml overrides on top of COMMON and of params.yaml at the row's commit (docs/calibration.csv's
# commit column: the defaults a row did not override are those of that commit)
OLD_WEIGHTS = {"train.perceptual_weight": 0.01, "train.style_weight": 0.01}
WEIGHTS_1 = {"train.perceptual_weight": 1.0, "train.style_weight": 1.0}
# the fifth round's weights from the pilot's gradient norms (docs/calibration.py --shares pilot)
UNIT = {"train.perceptual_weight": 1.0, "train.style_weight": 1.0, "train.adversarial_weight": 1.0}
EQUAL = {"train.perceptual_weight": 7.0e-4, "train.style_weight": 3.3e-4, "train.adversarial_weight": 6.3e-3}
ANCHORED = {key: float(f"{value / 3:.2g}") for key, value in EQUAL.items()}
FP32_NCHW = {"profiles.cpu.precision": "fp32", "profiles.cpu.perceptual_precision": "bf16", "profiles.cpu.channels_last": False}
SETTINGS: dict[str, dict] = {
    # first round, at the loss weights params.yaml had then (perceptual and style 0.01)
    "base": {**OLD_WEIGHTS},
    "issue13-before": {**OLD_WEIGHTS, "train.mapping_lr_multiplier": 0.01, "train.hflip": 0.0},  # the defaults
    "perceptual0.1": {"train.perceptual_weight": 0.1, "train.style_weight": 0.1},
    "perceptual1": {"train.perceptual_weight": 1.0, "train.style_weight": 1.0},
    "aug-gentle": {**OLD_WEIGHTS, "train.augment.prob": 0.25, "train.augment.pgd_step": 0.05,
                   "train.augment.pgd_steps": 2},
    # second round, around the best of the first (perceptual and style weights 1)
    "perceptual3": {"train.perceptual_weight": 3.0, "train.style_weight": 3.0},
    "perceptual1-aug-gentle": {"train.perceptual_weight": 1.0, "train.style_weight": 1.0, "train.augment.prob": 0.25,
                               "train.augment.pgd_step": 0.05, "train.augment.pgd_steps": 2},
    "perceptual1-noaug": {"train.perceptual_weight": 1.0, "train.style_weight": 1.0, "aug": False},
    # third round, after ToRGB's initialization std went from StyleGAN2's 1 to 0.1 (faceres/models/layers.py,
    # TORGB_INIT_STD; every row above was trained at 1): the chosen weights again, augmentation on/off, each with
    # a second training seed (same split), and three epochs (the 15-minute budget)
    "torgb0.1": {**WEIGHTS_1},
    "torgb0.1-noaug": {**WEIGHTS_1, "aug": False},
    "torgb0.1-seed1": {**WEIGHTS_1, "seed": 1},
    "torgb0.1-noaug-seed1": {**WEIGHTS_1, "aug": False, "seed": 1},
    "torgb0.1-3epochs": {**WEIGHTS_1, "profiles.cpu.epochs": 3},
    "torgb0.1-aug-gentle": {**WEIGHTS_1, "train.augment.prob": 0.25, "train.augment.pgd_step": 0.05,
                            "train.augment.pgd_steps": 2},
    "torgb0.1-aug-gentle-seed1": {**WEIGHTS_1, "train.augment.prob": 0.25, "train.augment.pgd_step": 0.05,
                                  "train.augment.pgd_steps": 2, "seed": 1},
    # fourth round, at params.yaml's gentle augmentation (prob 0.25, two PGD steps of 5%, chosen by the third
    # round): the 15-minute budget, which --test scores on the test split
    "gentle-3epochs": {"profiles.cpu.epochs": 3},
    # fifth round (issue 23), on the code that logs each term's gradient share, trains G and D in bf16 and
    # channels_last where the CPU has native bfloat16 (this one: AVX-512 BF16), and shares D(fake) between the
    # G and D steps: the pilot at unit weights, whose second half's gradient norms set the equal-share weights
    # (--shares pilot prints them). Two principles, stated before the pilot was measured: "equal" gives each of
    # the four terms the L1 term's mean gradient norm on the output image at alpha = 1 (a quarter each);
    # "anchored" gives L1 half and the other three a sixth each (a restorer first keeps what its input holds).
    # The pilot's second half (steps 153-305): norms l1 0.00319, feature 4.55, style 9.67, adversarial 0.503
    # (shares 0.03% / 31% / 65% / 3.4%).
    "pilot": {**UNIT},  # ran as {} at db78212, whose params.yaml had unit weights (its code: 729c84a, committed minutes later)
    "unit-seed1": {**UNIT, "seed": 1},  # the pilot's weights again, explicit (a second seed; pilot is the first)
    "unit": {**UNIT},
    "equal": {**EQUAL},
    "equal-seed1": {**EQUAL, "seed": 1},
    "anchored": {**ANCHORED},
    "anchored-seed1": {**ANCHORED, "seed": 1},
    # at the chosen (equal) weights: the alpha sweep of appendix C.4 (alpha 1 is "equal" itself), and the old
    # cpu profile's arithmetic (G and D in float32, NCHW; VGG16 in bf16 as before) at the same step count
    "equal-alpha0.1": {**EQUAL, "alpha": 0.1},
    "equal-alpha0.1-seed1": {**EQUAL, "alpha": 0.1, "seed": 1},
    "equal-alpha3": {**EQUAL, "alpha": 3.0},
    "equal-alpha3-seed1": {**EQUAL, "alpha": 3.0, "seed": 1},
    "equal-fp32": {**EQUAL, **FP32_NCHW},
    "equal-fp32-seed1": {**EQUAL, **FP32_NCHW, "seed": 1},
    # params.yaml's values (the equal weights since b038722) for the 15 minutes of training (4 epochs,
    # 1,220 steps), two training seeds; and capacity: twice the width for one epoch, against "equal"
    "main-4epochs": {"profiles.cpu.epochs": 4},
    "main-4epochs-seed1": {"profiles.cpu.epochs": 4, "seed": 1},
    "width0.25": {"profiles.cpu.width": 0.25},
}
COMMON = {
    "data.source": "folder", "data.folder.train_dir": str(CELEBA / "images"),
    "data.folder.identities_csv": str(CELEBA / "identities.csv"), "data.folder.upscale": True,
    "data.val_fraction": 0.1, "profile": "cpu",
}
METRICS = ("psnr", "ssim", "lpips", "fid", "ipr")
COLUMNS = ["setting", "overrides", "steps", "train_s", "val_images", "psnr", "ssim", "lpips", "lpips_ci", "fid",
           "iprecision1", "iprecision1_ci", "commit"]


def _config(overrides: dict, limit: int):
    from faceres.config.schema import load_config

    return load_config(REPO / "params.yaml", overrides={**COMMON, "data.folder.limit": limit, **overrides})


@functools.cache
def _networks():
    """The pretrained networks, loaded once for DEG and every setting of the sweep."""
    from faceres.metrics.evaluate import Networks

    pretrained = Networks.pretrained()
    return Networks(fid_inception=functools.cache(pretrained.fid_inception),
                    lpips_backbone=functools.cache(pretrained.lpips_backbone),
                    identity_embedder=functools.cache(pretrained.identity_embedder))


def _score(pred_dir: Path, gt_dir: Path, cache: Path, per_image_csv: Path) -> dict:
    """Pooled metrics of one folder; its per-image table is kept in `per_image_csv` (the strata are read from it)."""
    from faceres.metrics.evaluate import EvalOptions, evaluate_folders

    options = EvalOptions(ks=(1,), n_bootstrap=1000, progress=False, fid_cache_dir=str(cache))
    summary = evaluate_folders(pred_dir, gt_dir, metrics=list(METRICS), networks=_networks(), out_csv=per_image_csv,
                               options=options).summary["metrics"]
    iprec = summary["ipr"]["iprecision"]["k1"]

    def interval(entry) -> str:
        return f"[{entry['ci_low']:.4g}, {entry['ci_high']:.4g}]"

    return {"psnr": summary["psnr"]["mean"], "ssim": summary["ssim"]["mean"], "lpips": summary["lpips"]["mean"],
            "lpips_ci": interval(summary["lpips"]), "fid": summary["fid"]["value"], "iprecision1": iprec["mean"],
            "iprecision1_ci": interval(iprec)}


def _commit() -> str:
    import subprocess

    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()


def _rows(csv_file: Path) -> list[dict]:
    if not csv_file.is_file():
        return []
    with csv_file.open(newline="") as handle:
        return list(csv.DictReader(handle))


def _append(csv_file: Path, row: dict) -> None:
    rows = [r for r in _rows(csv_file) if r["setting"] != row["setting"]] + [row]
    with csv_file.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def write_table(csv_file: Path) -> None:
    """The CSV's rows as the Markdown table between the markers of the .md beside it."""
    def cell(row: dict, key: str, digits: int) -> str:
        value = row.get(key, "")
        return f"{float(value):.{digits}f}" if value not in ("", None) else ""

    split = "test" if csv_file.stem.endswith("-test") else "val"
    lines = [f"| setting | overrides | steps | train min | {split} images | PSNR ↑ | SSIM ↑ | LPIPS ↓ [95% CI] | FID ↓ | "
             "iPrecision@1 ↑ [95% CI] |", "|---|---|---|---|---|---|---|---|---|---|"]
    for row in _rows(csv_file):
        minutes = f"{float(row['train_s']) / 60:.1f}" if row["train_s"] else ""
        lines.append(
            f"| {row['setting']} | `{row['overrides']}` | {row['steps']} | {minutes} | {row['val_images']} | "
            f"{cell(row, 'psnr', 2)} | {cell(row, 'ssim', 3)} | {cell(row, 'lpips', 3)} {row['lpips_ci']} | "
            f"{cell(row, 'fid', 1)} | {cell(row, 'iprecision1', 3)} {row['iprecision1_ci']} |")
    table_file = csv_file.with_suffix(".md")
    text = table_file.read_text() if table_file.is_file() else f"{TABLE_START}\n{TABLE_END}\n"
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    table_file.write_text(text[:start] + "\n" + "\n".join(lines) + "\n" + text[end:])


TERMS = ("l1", "feature", "style", "adversarial")
WEIGHT_KEYS = {"l1": "train.l1_weight", "feature": "train.perceptual_weight", "style": "train.style_weight",
               "adversarial": "train.adversarial_weight"}


def equal_share_weights(curve, weights: dict[str, float]) -> dict[str, float]:
    """Weights under which every term's gradient on the output image has the same mean norm as the L1 term's,
    from a run's curve (its `grad_TERM` columns, the weighted terms' gradient norms, averaged over the second
    half of the run) and the weights it was trained with (alpha = 1). With Adam only the ratios matter, so
    the L1 weight stays."""
    from faceres.report.figures import second_half

    late = second_half(curve)
    unit_norm = {term: late[f"grad_{term}"].mean() / weights[term] for term in TERMS}
    return {term: weights["l1"] * unit_norm["l1"] / unit_norm[term] for term in TERMS}


def print_shares(model_dir: Path, limit: int) -> int:
    import pandas as pd

    from faceres.report.figures import second_half

    curve_file = model_dir / "curve.csv"
    if not curve_file.is_file():
        print(f"--shares: {curve_file}: not trained by this sweep yet", file=sys.stderr)
        return 2
    curve = pd.read_csv(curve_file)
    train = json.loads((model_dir / "train.json").read_text())
    train_config = _config(SETTINGS[model_dir.name], limit).train
    weights = {term: getattr(train_config, key.removeprefix("train.")) for term, key in WEIGHT_KEYS.items()}
    late = second_half(curve)
    print(f"{model_dir.name}: {train['steps']} steps; second half (steps > {curve['step'].max() // 2}), weights {weights}")
    for term in TERMS:
        print(f"  {term:<12} gradient norm {late[f'grad_{term}'].mean():.4g}  share {late[f'share_{term}'].mean():.3f}  "
              f"loss {late[f'g_{term}'].mean():.4g}")
    derived = equal_share_weights(curve, weights)
    print("equal-share weights: " + json.dumps({WEIGHT_KEYS[t]: float(f"{w:.3g}") for t, w in derived.items()}))
    return 0


def write_strata(work: Path, csv_file: Path) -> None:
    """By degradation strength (the BFR downsampling bins of faceres.metrics.strata), from each row's kept
    per-image table and its split's manifest: PSNR, SSIM, LPIPS, identity distance and the share of restorations
    inside their own identity ball (iPrecision@1), each with its 95% bootstrap interval over the bin's images.
    Markdown between the strata markers of the .md beside `csv_file`."""
    import pandas as pd

    from faceres.metrics.evaluate import EvalOptions
    from faceres.metrics.strata import scales_from_manifest, stratify

    split = "test" if csv_file.stem.endswith("-test") else "val"
    scales = scales_from_manifest(work / f"degraded-{split}" / "manifest.csv", split=split)
    per_image_dir = work / ("per_image-test" if split == "test" else "per_image")
    options = EvalOptions(ks=(1,), n_bootstrap=1000, progress=False)
    lines = [f"| setting | bin | n | PSNR ↑ | SSIM ↑ | LPIPS ↓ | identity distance ↓ | in own identity ball ↑ |",
             "|---|---|---|---|---|---|---|---|"]

    def cell(stat: dict, digits: int) -> str:
        low, high = stat["ci95"]
        return f"{stat['mean']:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    for row in _rows(csv_file):
        table_file = per_image_dir / f"{row['setting']}.csv"
        if not table_file.is_file():
            continue
        block = stratify(pd.read_csv(table_file, dtype={"name": str}), scales, options)
        for name, entry in block["bins"].items():
            m = entry["metrics"]
            if not m:
                continue
            lines.append(f"| {row['setting']} | {name} | {entry['n']} | {cell(m['psnr'], 2)} | {cell(m['ssim'], 3)} | "
                         f"{cell(m['lpips'], 3)} | {cell(m['identity_distance'], 3)} | {cell(m['iprecision']['1'], 2)} |")
    table_file = csv_file.with_suffix(".md")
    text = table_file.read_text()
    if STRATA_START not in text:
        text += f"\n{STRATA_START}\n{STRATA_END}\n"
    start, end = text.index(STRATA_START) + len(STRATA_START), text.index(STRATA_END)
    table_file.write_text(text[:start] + "\n" + "\n".join(lines) + "\n" + text[end:])


def _degraded_split(base, data: Path, out: Path, split: str) -> Path:
    """`split` of the prepared data under the test degradation (the degrade stage's), written once into `out`."""
    import dataclasses

    from faceres.pipeline.degrade import degrade_dataset

    if not (out / "manifest.csv").is_file():
        degrade_dataset(dataclasses.replace(base, degrade=dataclasses.replace(base.degrade, splits=(split,))), "bfr",
                        data, out)
    return out


def _score_on_test(args, base, data: Path, cache: Path, commit: str) -> int:
    """The chosen setting's model (trained by the sweep) and DEG on the test split, scored once."""
    from faceres.pipeline.layout import ground_truth_dir
    from faceres.models.io import load_generator
    from faceres.restore.folder import restore_folder

    model = args.work / "models" / args.test / "generator.pt"
    rows = {r["setting"]: r for r in _rows(args.csv)}
    if args.test not in rows or not model.is_file():
        print(f"--test {args.test}: not trained by this sweep yet (no row in {args.csv} or no {model})", file=sys.stderr)
        return 2
    degraded = _degraded_split(base, data, args.work / "degraded-test", "test")
    gt_dir, test_csv = ground_truth_dir(data, "test"), args.csv.with_name(args.csv.stem + "-test.csv")
    restored = args.work / "restored-test" / args.test
    restore_folder(load_generator(model), degraded / "test", restored, noise_seed=None, progress=False)
    count = len(list(gt_dir.glob("*.png")))
    for name, folder, source in (("DEG", degraded / "test", {"overrides": "the degraded input", "steps": "",
                                                                     "train_s": ""}),
                                 (args.test, restored, rows[args.test])):
        row = {"setting": name, "overrides": source["overrides"], "steps": source["steps"],
               "train_s": source["train_s"], "val_images": count,
               **_score(folder, gt_dir, cache, args.work / "per_image-test" / f"{name}.csv"), "commit": commit}
        _append(test_csv, row)
        print(f"test split, {name}: {row}", flush=True)
    write_table(test_csv)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/faceres-calibration"), help="data and models")
    parser.add_argument("--limit", type=int, default=3000, help="CelebA images used (train + val + test)")
    parser.add_argument("--only", default=None, help="comma-separated setting names")
    parser.add_argument("--table", action="store_true", help="only regenerate the Markdown table from the CSV")
    parser.add_argument("--test", metavar="SETTING", default=None,
                        help="once the sweep has chosen: score that setting's trained model, and DEG, on the *test* "
                             "split (the issue's target; rows in docs/calibration-test.csv)")
    parser.add_argument("--strata", action="store_true",
                        help="only rewrite the by-degradation-strength table (.md beside --csv) from the kept per-image "
                             "tables")
    parser.add_argument("--shares", metavar="SETTING", default=None,
                        help="print a trained setting's per-term gradient norms and shares on the output image over "
                             "the second half of its curve, and the weights that would give each term an equal share")
    parser.add_argument("--csv", type=Path, default=REPO / "docs" / "calibration.csv", help="rows (the .md beside it)")
    args = parser.parse_args()
    if args.table:
        write_table(args.csv)
        return 0
    if args.strata:
        write_strata(args.work, args.csv)
        return 0
    if args.shares:
        return print_shares(args.work / "models" / args.shares, args.limit)
    from faceres.pipeline.layout import ground_truth_dir
    from faceres.pipeline.train import train
    from faceres.data.prepare import prepare_dataset
    from faceres.models.io import load_generator
    from faceres.restore.folder import restore_folder

    names = args.only.split(",") if args.only else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        print(f"--only: unknown setting(s) {', '.join(unknown)}; allowed: {', '.join(SETTINGS)}", file=sys.stderr)
        return 2
    data, degraded, cache = args.work / "prepared", args.work / "degraded-val", args.work / "metrics-cache"
    base = _config({}, args.limit)
    if not (data / "manifest.csv").is_file():
        prepare_dataset(base, data)
    _degraded_split(base, data, degraded, "val")
    commit = _commit()  # the code this process imported (HEAD may move while a sweep runs)
    if args.test:
        return _score_on_test(args, base, data, cache, commit)
    gt_dir, deg_dir = ground_truth_dir(data, "val"), degraded / "val"
    done = {r["setting"] for r in _rows(args.csv)}
    if "DEG" not in done:
        _append(args.csv, {"setting": "DEG", "overrides": "the degraded input", "steps": "", "train_s": "",
                 "val_images": len(list(gt_dir.glob("*.png"))),
                 **_score(deg_dir, gt_dir, cache, args.work / "per_image" / "DEG.csv"), "commit": commit})
        write_table(args.csv)
    for name in names:
        if name in done:
            continue
        overrides = SETTINGS[name]
        config = _config(overrides, args.limit)
        model_dir = args.work / "models" / name
        summary = train(config, "main", data, model_dir, track=False)
        generator = load_generator(model_dir / "generator.pt")
        restored = args.work / "restored" / name
        restore_folder(generator, deg_dir, restored, noise_seed=None, progress=False)
        row = {"setting": name, "overrides": json.dumps(overrides), "steps": summary["steps"],
               "train_s": summary["seconds"], "val_images": len(list(gt_dir.glob("*.png"))),
               **_score(restored, gt_dir, cache, args.work / "per_image" / f"{name}.csv"), "commit": commit}
        _append(args.csv, row)
        write_table(args.csv)
        print(f"{time.strftime('%H:%M:%S')} {name}: {row}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
