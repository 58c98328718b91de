"""Typed configuration: the schema of params.yaml (:mod:`faceres.config.schema`) and the generic loader that
validates it once at the edge (:mod:`faceres.config.loader`)."""
