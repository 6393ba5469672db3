"""Evaluation stage: test-set predictions, per-image metrics, statistics, tables and figures.

Tiled whole-image inference (:mod:`.inference`), the baselines and selected models applied to a
test set (:mod:`.predict`), PSNR/SSIM under the study's convention (:mod:`.metrics`), bootstrap
confidence intervals and paired tests (:mod:`.stats`), the result tables (:mod:`.tables`) and
figures (:mod:`.figures`). Called by ``rules/evaluate.smk`` and ``rules/figures.smk``.
"""
