"""Networks of 'Rethinking Deep Face Restoration': the restoration generator and the discriminator.

Build them from a :class:`~faceres.models.build.ModelConfig` (:mod:`faceres.models.build`); images are
float tensors [N, 3, R, R] in [-1, 1].
"""
