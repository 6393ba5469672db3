"""Deployment: a trained model put to use outside the study.

``fmdenoise denoise`` on a user's own TIFFs, metadata kept (:mod:`.denoise`, with model
resolution in :mod:`.model_source` and TIFF metadata in :mod:`.tiff_metadata`), and
``fmdenoise export`` to a bioimage.io model package (:mod:`.export`). Called from the command
line (:mod:`fmdenoise.cli`), not by a rule.
"""
