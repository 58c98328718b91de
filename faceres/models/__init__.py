"""Networks of 'Rethinking Deep Face Restoration': the restoration generator and the discriminator.

Build them from a :class:`ModelConfig` (or :func:`build_generator` / :func:`build_discriminator`); images are
float tensors [N, 3, R, R] in [-1, 1].
"""
