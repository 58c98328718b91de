"""Evaluation metrics of the paper (section 4 of the spec): PSNR, SSIM, LPIPS, FID, precision / recall and
iPrecision / iRecall.

Each follows pytorch-fid's short chain (features -> statistics -> distance) and takes its networks as
arguments; :func:`evaluate_folders` ties them together for a folder of restorations and its ground truth.
"""
