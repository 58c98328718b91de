"""Synthetic degradation of aligned faces: replayable offline, batched and differentiable online.

Tasks (``faceres.config.schema.TASKS``):

* ``bfr`` - GFPGAN-style blind degradation: Gaussian blur (isotropic, or anisotropic with probability
  ``anisotropic_prob``) -> downsample by ``scale`` -> Gaussian noise -> JPEG -> resize back.
* ``sr8`` / ``sr16`` - bicubic downsample by ``factor``; the model input is the LR upsampled back.

Offline (the ``degrade`` stage): :func:`degrade_batch` on uint8 batches, real libjpeg, one manifest row per
image; :func:`replay` re-creates any image bit-exactly from its row. Online (training and adversarial
augmentation): :func:`sample_online` -> :class:`OnlineBFRParams` tensors -> :func:`apply_bfr_tensor`
(differentiable JPEG), :func:`clamp_to_ranges` for the projection step of PGD.

Module map: ``ops`` (kernels, FFT blur, antialiased resize, noise), ``jpeg`` (real codec and torch model),
``sampling`` (seeds, draw order, records), ``chain`` (the chains: offline, online, replay).
"""
