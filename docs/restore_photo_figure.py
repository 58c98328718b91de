"""docs/restore-photo.png: `faceres restore` on a composed photo, input and output side by side.

    python docs/restore_photo_figure.py --generator GENERATOR.pt --aligned-like PREPARED/images/train \\
        [--manifest PREPARED/manifest.csv] [--out docs/restore-photo.png]

The photo: three CelebA faces of held-out identities (the manifest's test split) at 1.5x their 89 x 109 size
on a plain background, degraded as a whole (Gaussian blur sigma 1.2, 3x down and up again, JPEG quality 35),
so that each face is about as degraded as the BFR box's middle. The right half is what `faceres restore` makes
of it with the generator (trained at 64 px on CelebA by docs/calibration.py).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

REPO = Path(__file__).resolve().parents[1]


def composed_photo(files: list[Path]) -> Image.Image:
    faces = [Image.open(f).convert("RGB") for f in files]
    faces = [f.resize((round(f.width * 1.5), round(f.height * 1.5)), Image.Resampling.BICUBIC) for f in faces]
    width = sum(f.width for f in faces) + 20 * (len(faces) + 1)
    canvas = Image.new("RGB", (width, max(f.height for f in faces) + 40), (96, 110, 124))
    x = 20
    for face in faces:
        canvas.paste(face, (x, 20))
        x += face.width + 20
    return canvas


def degraded(photo: Image.Image) -> Image.Image:
    small = photo.filter(ImageFilter.GaussianBlur(1.2)).resize((photo.width // 3, photo.height // 3),
                                                               Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    small.resize(photo.size, Image.Resampling.BICUBIC).save(buffer, format="JPEG", quality=35)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", required=True)
    parser.add_argument("--aligned-like", required=True, help="the prepared training faces of that generator")
    parser.add_argument("--manifest", default=None, help="default: the manifest beside --aligned-like's images/")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "restore-photo.png")
    args = parser.parse_args()
    manifest = Path(args.manifest or Path(args.aligned_like).parents[1] / "manifest.csv")
    table = pd.read_csv(manifest, dtype=str)
    test = table[(table["split"] == "test") & (table["status"] == "ok")].drop_duplicates("identity")
    files = [Path(f) for f in test["source_file"].iloc[[0, 7, 14]]]
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.png"
        degraded(composed_photo(files)).save(photo)
        subprocess.run([sys.executable, "-m", "faceres.cli", "restore", "--generator", args.generator, "--input",
                        str(photo), "--out", str(Path(tmp) / "out"), "--aligned-like", args.aligned_like], check=True)
        before, after = np.asarray(Image.open(photo)), np.asarray(Image.open(Path(tmp) / "out" / "photo.png"))
    gap = np.full((before.shape[0], 12, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([before, gap, after], axis=1)).save(args.out, optimize=True)
    print(f"{args.out}: {', '.join(f.name for f in files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
