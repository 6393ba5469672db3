"""Training stage: one grid cell's resumable, preemptible fine-tuning, and what feeds it.

The loop (:mod:`.loop`) with its run state and output files (:mod:`.state`, :mod:`.outputs`),
cell setup (:mod:`.setup`), validation (:mod:`.validation`), batches as a function of
(seed, step) (:mod:`.batches`, :mod:`.augment`), losses (:mod:`.losses`), signal handling
(:mod:`.signals`), provenance (:mod:`.provenance`), the demo's natural-image pretraining
(:mod:`.pretrain`) and the choice of the best (loss, lr) on validation (:mod:`.selection`).
Called by ``rules/train.smk`` (train, select, studies) and ``rules/pretrained.smk`` (pretrain).
"""
