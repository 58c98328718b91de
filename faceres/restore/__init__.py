"""Restoration with a trained generator: folders of aligned faces, and faces in any photo."""
