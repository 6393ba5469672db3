"""Data stage: from a published archive to memory-mappable training patches.

Verified, resumable downloads and safe extraction (:mod:`.download`), ingest of a source layout
into paired float32 TIFFs with train/val/test splits (:mod:`.ingest`), CARE-style patches
(:mod:`.patches`), the percentile normalisation every stage shares (:mod:`.normalize`) and the
demo's synthetic Hagen-like source (:mod:`.synthetic`). Called by ``rules/data.smk``.
"""
