"""The study's three questions, answered from its own tables (``answers.md``).

Q1 (do pretrained Gaussian denoisers help?): fine-tuned against zero-shot weights on the test
set (paired Wilcoxon on per-image PSNR, Holm over the models of a dataset), how the selected
models serve on the other datasets (``tables/transfer``), and pretrained against scratch at
matched steps on validation (the gap early and at the end of the budget, the step where
scratch comes within 0.1 dB). Q2 (how do the architectures compare?): per dataset, the ranking
by test PSNR/SSIM (and MicroSSIM) with confidence intervals, the verdict against the best
baseline, whether each gap between architectures exceeds the seed spread (``grid.final_seeds``)
and the cost. Q3 (which optimisation choices matter most?): the share of the spread of
validation PSNR over the loss x learning-rate grid that each factor explains (two-way sums of
squares), each factor's effect against the seed spread, and the augmentation effect at matched
steps.

Every sentence is generated from the numbers and says what they support and no more: n and the
test are named, "not significant" is said where it is the case, and where n is too small for
any result to reach significance that is said too.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from fmdenoise.data.ingest import read_manifest
from fmdenoise.evaluate.stats import holm, verdict, wilcoxon_paired
from fmdenoise.evaluate.transfer import transfer_summary
from fmdenoise.io import write_text

ALPHA = 0.05
CATCH_UP_DB = 0.1


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p-value of the exact signed-rank test with n pairs."""
    return min(1.0, 2.0 / 2**n) if n > 0 else 1.0


def _n_note(n: int) -> str:
    floor = min_wilcoxon_p(n)
    if floor >= ALPHA:
        return (
            f" With n = {n} the smallest p-value the test can give is {floor:.3g}: no difference "
            f"can be significant at alpha {ALPHA} with this many test images."
        )
    return ""


def _fmt_ci(row: pd.Series, metric: str, digits: int) -> str:
    lo, hi = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    return f"{row[metric]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def zero_shot_comparison(
    main: pd.DataFrame, metrics: Mapping[tuple[str, str], pd.DataFrame], finetuned: list[str]
) -> pd.DataFrame:
    """Per dataset and fine-tuned model: test PSNR gain over its zero-shot weights, paired
    Wilcoxon p, Holm-adjusted over the dataset's models, verdict."""
    rows = []
    for dataset in sorted(main["dataset"].unique()):
        pairs = [
            m
            for m in finetuned
            if (m, dataset) in metrics and (f"{m}-zeroshot", dataset) in metrics
        ]
        pvalues, gains, ns = [], [], []
        for m in pairs:
            a = metrics[(m, dataset)].sort_values("image")["psnr"]
            b = metrics[(f"{m}-zeroshot", dataset)].sort_values("image")["psnr"]
            pvalues.append(wilcoxon_paired(a.to_numpy(), b.to_numpy())[1])
            gains.append(float(a.mean() - b.mean()))
            ns.append(len(a))
        for m, gain, p, p_adj, n in zip(pairs, gains, pvalues, holm(pvalues), ns, strict=True):
            rows.append(
                {
                    "dataset": dataset,
                    "model": m,
                    "n": n,
                    "gain_db": gain,
                    "p": p,
                    "p_holm": p_adj,
                    "verdict": verdict(gain, p_adj, ALPHA),
                }
            )
    return pd.DataFrame(
        rows, columns=["dataset", "model", "n", "gain_db", "p", "p_holm", "verdict"]
    )


def scratch_catch_up(scratch: pd.DataFrame) -> pd.DataFrame:
    """Per (model, dataset, seed): pretrained - scratch validation PSNR at the first validated
    step after 0 and at the last, and the first step where scratch is within 0.1 dB."""
    rows = []
    for (model, dataset, seed), g in scratch.groupby(["model", "dataset", "seed"]):
        g = g.sort_values("step")
        gap = g["val_psnr_pretrained"] - g["val_psnr_scratch"]
        trained = g["step"] > 0
        early = gap[trained].iloc[0] if trained.any() else float("nan")
        within = g.loc[trained & (gap <= CATCH_UP_DB), "step"]
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "seed": seed,
                "early_step": int(g.loc[trained, "step"].iloc[0]) if trained.any() else 0,
                "gap_early_db": float(early),
                "last_step": int(g["step"].iloc[-1]),
                "gap_end_db": float(gap.iloc[-1]),
                "catch_up_step": int(within.iloc[0]) if len(within) else None,
            }
        )
    return pd.DataFrame(rows)


def transfer_sentence(transfer: pd.DataFrame) -> str:
    """Q1's sentence on transfer across datasets (``tables/transfer``)."""
    t = transfer_summary(transfer)
    if not t["pairs"]:
        return ""
    zero_shot = (
        f", and beat their own zero-shot weights in {t['over_zero_shot']} of {t['zero_shot_pairs']}"
        if t["zero_shot_pairs"]
        else ""
    )
    return (
        f"**Beyond their own dataset (transfer, test sets).** Applied to another dataset's test "
        f"set, the models selected on one dataset raised PSNR over the raw input in "
        f"{t['over_raw']} of {t['pairs']} model x (trained on, tested on) pairs (median "
        f"{t['median_gain_over_raw']:+.2f} dB){zero_shot}; against the model selected on the "
        f"tested dataset itself they differ by a median of {t['median_vs_in_domain']:+.2f} dB "
        "(tables/transfer, figures/transfer.png). A model serves a different acquisition "
        "only as far as this table shows; `fmdenoise denoise` warns when an image's noise lies "
        "outside the range a model was trained on."
    )


def answer_pretraining(
    zero_shot: pd.DataFrame, catch_up: pd.DataFrame, transfer: pd.DataFrame | None = None
) -> str:
    """Q1 as Markdown."""
    out = ["## Q1. Do Gaussian denoisers pretrained on natural images help?", ""]
    if zero_shot.empty:
        out.append("No fine-tuned model has zero-shot predictions to compare with.")
    else:
        n_pairs = len(zero_shot)
        above = int((zero_shot["gain_db"] > 0).sum())
        better = int((zero_shot["verdict"] == "better").sum())
        worse = int((zero_shot["verdict"] == "worse").sum())
        ns = sorted(set(zero_shot["n"]))
        out.append(
            f"**Fine-tuned vs its own zero-shot weights (test set).** Fine-tuning raised the mean "
            f"test PSNR in {above} of {n_pairs} model x dataset pairs (median gain "
            f"{zero_shot['gain_db'].median():+.2f} dB); significantly better in {better}, "
            f"significantly worse in {worse}, not significant in {n_pairs - better - worse} "
            f"(paired two-sided Wilcoxon signed-rank test on per-image PSNR, Holm-adjusted over "
            f"the models of each dataset, alpha {ALPHA}; n = {', '.join(map(str, ns))} test images "
            "per dataset)." + _n_note(min(ns))
        )
        out += ["", zero_shot.to_markdown(index=False, floatfmt=".3g"), ""]
    if transfer is not None and not transfer.empty:
        out += [transfer_sentence(transfer), ""]
    if catch_up.empty:
        out.append("The scratch study was not run.")
        return "\n".join(out)
    n = len(catch_up)
    lead_early = int((catch_up["gap_early_db"] > 0).sum())
    lead_end = int((catch_up["gap_end_db"] > 0).sum())
    caught = catch_up.dropna(subset=["catch_up_step"])
    when = f"; median step {int(caught['catch_up_step'].median())}" if len(caught) else ""
    out.append(
        f"**Pretrained vs scratch at matched steps (validation).** Pretrained weights led "
        f"training from scratch at the first validation after step 0 in {lead_early} of {n} "
        f"runs (median gap {catch_up['gap_early_db'].median():+.2f} dB) and at the end of the "
        f"budget in {lead_end} of {n} (median {catch_up['gap_end_db'].median():+.2f} dB). "
        f"Scratch came within {CATCH_UP_DB} dB of pretrained in {len(caught)} of {n} runs{when}. "
        "One seed per cell: these are descriptive differences, not tested."
    )
    out += ["", catch_up.to_markdown(index=False, floatfmt=".3g")]
    return "\n".join(out)


def seed_gaps(g: pd.DataFrame) -> str:
    """Per dataset: whether each gap between trained models (test PSNR, mean over the seeds
    of their selected cells) exceeds the seed spread (the two models' seed sds summed)."""
    if "psnr_seed_sd" not in g:
        return ""
    trained = g.dropna(subset=["psnr_seed_sd"]).sort_values("psnr_seed_mean", ascending=False)
    if len(trained) < 2:
        return ""
    seeds = int(trained["seeds"].min())
    parts = []
    for a, b in zip(trained.itertuples(), trained.iloc[1:].itertuples(), strict=False):
        gap, spread = a.psnr_seed_mean - b.psnr_seed_mean, a.psnr_seed_sd + b.psnr_seed_sd
        said = "exceeds" if gap > spread else "within"
        parts.append(f"{a.method} - {b.method} {gap:+.2f} dB ({said} {spread:.2f})")
    sds = ", ".join(f"{r.method} {r.psnr_seed_sd:.2f}" for r in trained.itertuples())
    return (
        f" Over {seeds} training seeds of each selected cell (sd of the test mean: {sds} dB), "
        f"the gaps between neighbours in the ranking by seed mean, against the sum of their "
        f"two seed sds: {'; '.join(parts)}. A gap within the seed spread is training noise, "
        "whatever its per-image p-value."
    )


def _has(row: object, column: str) -> bool:
    value = getattr(row, column, None)
    return value is not None and not pd.isna(value)


def _second_metric_note(g: pd.DataFrame) -> str:
    """Where SSIM and MicroSSIM name different best methods on a dataset, say so: MicroSSIM
    fits each method's intensity scale and background, which plain SSIM on an affine-fitted,
    percentile-normalised pair does only in part."""
    if "microssim" not in g or g["microssim"].isna().all():
        return ""
    by_ssim = g.sort_values("ssim", ascending=False).iloc[0]
    by_micro = g.sort_values("microssim", ascending=False).iloc[0]
    if by_ssim["method"] == by_micro["method"]:
        return f" SSIM and MicroSSIM agree on the best method ({by_ssim['method']})."
    return (
        f" SSIM and MicroSSIM disagree: best by SSIM is {by_ssim['method']} "
        f"({by_ssim['ssim']:.3f}), by MicroSSIM {by_micro['method']} "
        f"({by_micro['microssim']:.3f}; {by_ssim['method']} {by_ssim['microssim']:.3f}); "
        "MicroSSIM fits each method's background and intensity scale before it compares "
        "structure, plain SSIM an affine map of the prediction to the normalised ground truth."
    )


def answer_architectures(main: pd.DataFrame, cost: pd.DataFrame, finetuned: list[str]) -> str:
    """Q2 as Markdown: per dataset the ranking, the verdicts and the cost."""
    out = ["## Q2. How do the architectures compare, and at what cost?", ""]
    cost = cost.set_index(["dataset", "method"]) if not cost.empty else cost
    for dataset, g in main.groupby("dataset", sort=True):
        g = g.sort_values("psnr", ascending=False)
        top, n = g.iloc[0], int(g["n"].iloc[0])
        tuned = g[g["method"].isin(finetuned)]
        best = (
            tuned["best_baseline"].dropna().iloc[0]
            if tuned["best_baseline"].notna().any()
            else None
        )
        groups = {
            v: ", ".join(tuned.loc[tuned["verdict"] == v, "method"]) or "none"
            for v in ("better", "not significant", "worse")
        }
        sentence = (
            f"**{dataset}** (n = {n} test images): best by mean PSNR is {top['method']} "
            f"({_fmt_ci(top, 'psnr', 2)} dB, SSIM {_fmt_ci(top, 'ssim', 3)})."
        )
        if best is not None:
            b = g[g["method"] == best].iloc[0]
            sentence += (
                f" Against the best baseline, {best} ({_fmt_ci(b, 'psnr', 2)} dB): better: "
                f"{groups['better']}; not significant: {groups['not significant']}; worse: "
                f"{groups['worse']} (paired Wilcoxon on per-image PSNR, Holm over "
                f"{len(tuned)} comparisons, alpha {ALPHA})." + _n_note(n)
            )
        out += [sentence + _second_metric_note(g) + seed_gaps(g), ""]
        rows = []
        for r in g.itertuples():
            c = cost.loc[(dataset, r.method)] if (dataset, r.method) in cost.index else None
            rows.append(
                {
                    "method": r.method,
                    "PSNR [95% CI]": _fmt_ci(pd.Series(r._asdict()), "psnr", 2),
                    "SSIM [95% CI]": _fmt_ci(pd.Series(r._asdict()), "ssim", 3),
                    "MicroSSIM [95% CI]": _fmt_ci(pd.Series(r._asdict()), "microssim", 3)
                    if _has(r, "microssim")
                    else "",
                    "vs best baseline": "" if pd.isna(r.verdict) else r.verdict,
                    "p Holm": "" if r.p_holm is None or pd.isna(r.p_holm) else f"{r.p_holm:.3g}",
                    "train wall h (sweep)": ""
                    if c is None or pd.isna(c["sweep_wall_hours"])
                    else f"{c['sweep_wall_hours']:.3g}",
                    "train GPU-h (sweep)": ""
                    if c is None or pd.isna(c["sweep_gpu_hours"])
                    else f"{c['sweep_gpu_hours']:.3g}",
                    "inference s/Mpx": ""
                    if c is None or pd.isna(c["inference_s_per_mpx"])
                    else f"{c['inference_s_per_mpx']:.3g}",
                }
            )
        out += [pd.DataFrame(rows).to_markdown(index=False), ""]
    return "\n".join(out)


def factor_shares(hyper: pd.DataFrame) -> pd.DataFrame:
    """Per model: the share of the sum of squares of validation PSNR over the loss x lr grid
    explained by the learning rate and by the loss (main effects), averaged over the datasets
    where the grid was swept (a dataset trained only at a transferred cell has no spread)."""
    rows = []
    for (model, dataset), g in hyper.groupby(["model", "dataset"]):
        total = float(((g["val_psnr"] - g["val_psnr"].mean()) ** 2).sum())
        share, effect = {}, {}
        for factor in ("lr", "loss"):
            means = g.groupby(factor)["val_psnr"].agg(["mean", "size"])
            ss = float((means["size"] * (means["mean"] - g["val_psnr"].mean()) ** 2).sum())
            share[factor] = ss / total if total > 0 else float("nan")
            effect[factor] = float(means["mean"].max() - means["mean"].min())
        rows.append(
            {
                "model": model,
                "dataset": dataset,
                "lr_share": share["lr"],
                "loss_share": share["loss"],
                "lr_effect_db": effect["lr"],
                "loss_effect_db": effect["loss"],
                "n_lr": g["lr"].nunique(),
                "n_loss": g["loss"].nunique(),
                "cells": len(g),
            }
        )
    per = pd.DataFrame(rows)
    swept = per.loc[per["cells"] > 1, "model"]
    per = per[(per["cells"] > 1) | ~per["model"].isin(swept)]  # transferred cells: no spread
    return (
        per.groupby("model")
        .agg(
            lr_share=("lr_share", "mean"),
            loss_share=("loss_share", "mean"),
            lr_effect_db=("lr_effect_db", "mean"),
            loss_effect_db=("loss_effect_db", "mean"),
            datasets=("dataset", "size"),
            n_lr=("n_lr", "max"),
            n_loss=("n_loss", "max"),
        )
        .reset_index()
    )


def first_rung_grid(search: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The whole loss x lr grid of a halving search at its first rung (the one budget every
    cell trained to), shaped like the hyperparameters table; and a note saying so."""
    first = min((c for c in search.columns if c.startswith("psnr@")), key=lambda c: int(c[5:]))
    grid = search.rename(columns={first: "val_psnr"})[
        ["model", "dataset", "loss", "lr", "val_psnr"]
    ]
    budgets = sorted(int(c[5:]) for c in search.columns if c.startswith("psnr@"))
    note = (
        f"(successive-halving search: every cell compared at the first rung's budget of "
        f"{int(first[5:]):,} steps, the one budget all of them trained to; later rungs at "
        f"{', '.join(f'{b:,}' for b in budgets[1:]) or 'none'} steps took only the promoted "
        "cells, so what follows measures each factor early in training, where a loss that "
        "converges late is behind; `tables/search` gives every cell's PSNR at each budget it "
        "reached, and `grid.search: full` trains every cell to the full budget)"
    )
    return grid, note


def answer_choices(
    hyper: pd.DataFrame,
    augmentation: pd.DataFrame,
    search: pd.DataFrame | None = None,
    main: pd.DataFrame | None = None,
) -> str:
    """Q3 as Markdown (from the first rung of a halving search when there was one); with
    extra seeds in ``main``, each factor's effect against the seed spread."""
    out = ["## Q3. Which optimisation choices matter most?", ""]
    if search is not None and not search.empty:
        hyper, note = first_rung_grid(search)
        out += [note, ""]
    shares = factor_shares(hyper)
    for r in shares.itertuples():
        if r.n_lr < 2 or r.n_loss < 2:
            varied = "learning rate" if r.n_lr < 2 else "loss"
            out.append(
                f"**{r.model}**: only one {varied} in the grid: its effect cannot be measured."
            )
            continue
        lead = "the learning rate" if r.lr_share > r.loss_share else "the loss"
        out.append(
            f"**{r.model}**: over the {r.n_loss} losses x {r.n_lr} learning rates grid, the "
            f"learning rate explains {100 * r.lr_share:.0f} % of the spread of validation PSNR "
            f"and the loss {100 * r.loss_share:.0f} % (main-effect sums of squares, mean over "
            f"{r.datasets} dataset(s); one seed per cell, so no significance test): {lead} "
            "matters more."
        )
    spread = _seed_spread_note(shares, main)
    out += ([spread] if spread else []) + ["", shares.to_markdown(index=False, floatfmt=".3g"), ""]
    if augmentation.empty:
        out.append("The augmentation study was not run.")
        return "\n".join(out)
    last = augmentation.sort_values("step").groupby(["model", "dataset", "seed"]).tail(1)
    diff = (last["val_psnr_rot"] - last["val_psnr_pretrained"]).to_numpy()
    _, p = wilcoxon_paired(last["val_psnr_rot"].to_numpy(), last["val_psnr_pretrained"].to_numpy())
    said = verdict(float(np.median(diff)), p, ALPHA) or "not tested"
    out.append(
        f"**Rotation augmentation** (D4 rotations and flips) changed validation PSNR at the end of "
        f"the budget by a median of {np.median(diff):+.2f} dB (range {diff.min():+.2f} to "
        f"{diff.max():+.2f}) over {len(diff)} model x dataset runs at matched steps; paired "
        f"two-sided Wilcoxon across runs p = {p:.3g}, {said} "
        f"at alpha {ALPHA}." + (_n_note(len(diff)).replace("test images", "runs"))
    )
    return "\n".join(out)


def _seed_spread_note(shares: pd.DataFrame, main: pd.DataFrame | None) -> str:
    """Each factor's effect (range of its levels' mean validation PSNR) against the median
    seed sd of the selected cells' test PSNR."""
    if main is None or "psnr_seed_sd" not in main or main["psnr_seed_sd"].dropna().empty:
        return ""
    sd = float(main["psnr_seed_sd"].dropna().median())
    parts = []
    for r in shares.itertuples():
        for factor, name in (("lr", "learning rate"), ("loss", "loss")):
            effect = getattr(r, f"{factor}_effect_db")
            if getattr(r, f"n_{factor}") < 2 or pd.isna(effect):
                continue
            ratio = effect / sd if sd > 0 else float("inf")
            parts.append(f"{r.model} {name} {effect:.2f} dB ({ratio:.1f}x)")
    if not parts:
        return ""
    return (
        f"\nAgainst training noise: the median seed sd of the selected cells' test PSNR is "
        f"{sd:.2f} dB ({int(main['seeds'].max())} seeds each); each factor's effect (range of "
        f"its levels' mean validation PSNR) and its multiple of that sd: {'; '.join(parts)}. "
        "An effect under about twice the seed sd cannot be told from a change of seed."
    )


def describe_splits(data_dirs: Mapping[str, str | Path]) -> str:
    """The data section: each dataset's images per split and the rule that made the split
    (the source's test files, or ``split.test_fraction`` on unsplit stacks)."""
    out = [
        "## The data",
        "",
        "| dataset | train | val | test | how the split was made |",
        "|---|---|---|---|---|",
    ]
    for name, folder in data_dirs.items():
        m = read_manifest(folder)
        n = m[m["role"] == "low"].groupby("split").size()
        rule = m["split_rule"].iloc[0] if "split_rule" in m else "not recorded (older ingest)"
        out.append(
            f"| {name} | {n.get('train', 0)} | {n.get('val', 0)} | {n.get('test', 0)} | {rule} |"
        )
    return "\n".join(out)


def write_answers(
    tables: Mapping[str, str | Path],
    metric_files: Mapping[tuple[str, str], str | Path],
    finetuned: list[str],
    out: str | Path,
    data_dirs: Mapping[str, str | Path] | None = None,
) -> str:
    """Read the study's tables (``main``, ``cost``, ``hyperparameters`` and, when run,
    ``scratch``, ``augmentation``, ``search``), per-image metrics and the ingested datasets'
    manifests (``data_dirs``: how each was split); write ``answers.md``."""

    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(tables[name]) if name in tables else pd.DataFrame()

    main = read("main")
    metrics = {k: pd.read_csv(v) for k, v in metric_files.items()}
    text = "\n\n".join(
        [
            "# The study's questions, answered from its numbers",
            *([describe_splits(data_dirs)] if data_dirs else []),
            answer_pretraining(
                zero_shot_comparison(main, metrics, finetuned),
                scratch_catch_up(read("scratch")) if "scratch" in tables else pd.DataFrame(),
                read("transfer"),
            ),
            answer_architectures(main, read("cost"), finetuned),
            answer_choices(read("hyperparameters"), read("augmentation"), read("search"), main),
        ]
    )
    write_text(out, text + "\n")
    return text
