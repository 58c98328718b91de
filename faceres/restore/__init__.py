"""Restoration with a trained generator: folders of aligned faces, and faces in any photo."""

# Restoring a photo holds ~130 bytes per pixel at its peak (float64 copies for the paste-back; measured: 1.6 GB
# for 12 MP), so 50 MP needs ~6.5 GB; larger photos are refused (downscale them first).
MAX_PHOTO_PIXELS = 50_000_000
