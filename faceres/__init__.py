"""faceres: a reproduction pipeline for 'Rethinking Deep Face Restoration' (Zhao et al., CVPR 2022)."""

__version__ = "0.1.0"
