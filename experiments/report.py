#!/usr/bin/env python3
"""Turns experiments/results.jsonl into experiments/RESULTS.md, the results section of README.md
(between the markers <!-- results:begin --> and <!-- results:end -->) and learning-curve PNGs in
experiments/curves/ (drawn by build/examples/chart). Standard library only; every number printed
comes from the results file.

  python3 experiments/report.py [--chart build/examples/chart] [--no-readme]
"""
import argparse
import hashlib
import itertools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "experiments", "results.jsonl")
OUT_MD = os.path.join(ROOT, "experiments", "RESULTS.md")
CURVES = os.path.join(ROOT, "experiments", "curves")
README = os.path.join(ROOT, "README.md")
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# The shipped weights (issue 8): the final cell's product and its model card's generated part.
SHIPPED = os.path.join(ROOT, "models", "crunet_res_lw-fingernails.weights")
CARD = os.path.join(ROOT, "models", "README.md")
CARD_BEGIN, CARD_END = "<!-- card:begin -->", "<!-- card:end -->"

NAMES = {"unet2d_lw": "U-Net2D", "unet2d_res_hw": "U-Net2D-Res", "crunet_res_hw": "CR-UNet-Res HW",
         "crunet_res_lw": "CR-UNet-Res LW", "crunet_res_plain_lw": "CR-UNet-Res LW, plain skips",
         "unet2d_res_lw": "U-Net2D-Res LW", "crunet_res_plain_hw": "CR-UNet-Res HW, plain skips"}
DATA = {"d1": "D1", "d12": "D1+2"}
LOSS = {"bce_dice_seed": "BCE-Dice (original)", "bce": "BCE", "bce_dice": "soft-Dice BCE"}
# ../shared/docs/seed-facts.md, section 6: (model, data) -> (BCE-Dice, BCE).
ORIGINAL = {("unet2d_lw", "d1"): (0.82, 0.84), ("unet2d_res_hw", "d1"): (0.93, 0.92),
            ("crunet_res_hw", "d1"): (0.94, 0.94), ("crunet_res_lw", "d1"): (0.85, 0.85),
            ("unet2d_lw", "d12"): (0.61, 0.70), ("unet2d_res_hw", "d12"): (0.84, 0.87),
            ("crunet_res_hw", "d12"): (0.83, 0.87), ("crunet_res_lw", "d12"): (0.71, 0.74)}
SEED_ORDER = ["unet2d_lw", "unet2d_res_hw", "crunet_res_hw", "crunet_res_lw"]
TARGET_DICE = 0.94


def epoch_seconds(r):
    """Seconds per epoch: the median epoch where the cell recorded it (robust to the machine being
    paused or busy for a while), else the mean of the older cells."""
    return r.get("s_per_epoch_median") or r["s_per_epoch"]


def load():
    rows = []
    with open(RESULTS) as f:
        for line in f:
            if line.strip():
                rows.append(json.loads(line))
    return rows


def f4(v):
    return "—" if v is None else f"{v:.4f}"


def mean_std(xs):
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def p_text(p):
    """A p-value as the tables print it: four decimals, or a bound below 0.0001."""
    return f"{p:.4f}" if p >= 1e-4 else "< 0.0001"


def sign_flip_exact(diffs):
    """Two-sided exact sign-flip permutation p-value of the mean paired difference."""
    obs = abs(sum(diffs))
    hits = total = 0
    for signs in itertools.product((1, -1), repeat=len(diffs)):
        total += 1
        hits += abs(sum(s * d for s, d in zip(signs, diffs))) >= obs - 1e-12
    return hits / total


def sign_flip_monte_carlo(diffs, draws=20000, seed=0):
    rng = random.Random(seed)
    obs = abs(sum(diffs))
    hits = 0
    for _ in range(draws):
        s = sum(d if rng.random() < 0.5 else -d for d in diffs)
        hits += abs(s) >= obs - 1e-12
    return (hits + 1) / (draws + 1)


def wilcoxon(diffs):
    """Wilcoxon signed-rank: exact two-sided p for n <= 20, normal approximation (ties corrected,
    continuity corrected) above. Zero differences are dropped (Wilcoxon's convention)."""
    d = [x for x in diffs if x != 0]
    n = len(d)
    if n == 0:
        return 1.0
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [0.0] * n
    i = 0
    ties = []
    while i < n:
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        ties.append(j - i + 1)
        i = j + 1
    w_plus = sum(r for r, x in zip(ranks, d) if x > 0)
    if n <= 20:
        total = n * (n + 1) / 2
        obs = min(w_plus, total - w_plus)
        hits = 0
        for signs in itertools.product((0, 1), repeat=n):
            w = sum(r for r, s in zip(ranks, signs) if s)
            hits += min(w, total - w) <= obs + 1e-12
        return hits / 2 ** n
    mu = n * (n + 1) / 4
    var = n * (n + 1) * (2 * n + 1) / 24 - sum(t ** 3 - t for t in ties) / 48
    z = (abs(w_plus - mu) - 0.5) / math.sqrt(var)
    return math.erfc(z / math.sqrt(2))


def seed_section(rows):
    seed = {(r["model"], r["data"], r["loss"]): r for r in rows if r["protocol"] == "seed"}
    out = ["### Seed protocol: the original's table, re-run",
           "",
           "The original's settings (`train --protocol seed`: Adam lr 1e-5, time decay 1.99e-7, "
           "batch 2, no shuffling, no augmentation, one random 10% test split per dataset, D1+2 = "
           "each dataset split separately, then concatenated). Ours: test Dice at threshold 0.5 / "
           "0.3 of the final weights, then of the weights with the best *validation* Dice "
           "(validation carved from the training part; the original chose on the test split). "
           "The original's numbers are single runs thresholded at 0.3. Epochs: the original ran 220; a "
           "cell with fewer says so.",
           "",
           "| model | data | loss | original | ours final (0.5 / 0.3) | ours best-on-val (0.5 / 0.3) "
           "| epochs | device | s/epoch |",
           "|---|---|---|---:|---:|---:|---:|---|---:|"]
    missing = []
    for data in ("d1", "d12"):
        for model in SEED_ORDER:
            for li, loss in enumerate(("bce_dice_seed", "bce")):
                orig = ORIGINAL[(model, data)][li]
                r = seed.get((model, data, loss))
                if r is None:
                    missing.append(f"{NAMES[model]} / {DATA[data]} / {LOSS[loss]}")
                    out.append(f"| {NAMES[model]} | {DATA[data]} | {LOSS[loss]} | {orig:.2f} | "
                               "not run yet | | | | |")
                    continue
                ep = r["epochs_run"]
                ep_s = f"{ep}" if ep >= 220 else f"**{ep}** (of 220)"
                out.append(
                    f"| {NAMES[model]} | {DATA[data]} | {LOSS[loss]} | {orig:.2f} | "
                    f"{f4(r['test_dice_final'])} / {f4(r['test_dice_final_at_0.3'])} | "
                    f"{f4(r['test_dice_best'])} / {f4(r['test_dice_best_at_0.3'])} | {ep_s} | "
                    f"{r['device']} | {epoch_seconds(r):.1f} |")
    out.append("")
    out.append(f"{16 - len(missing)} of 16 cells in the results file.")
    if missing:
        out.append("Not run yet: " + "; ".join(missing) + ".")
    return out, missing


CV_FOLDS = 5


def cv_groups(rows):
    groups = {}
    for r in rows:
        if r["protocol"] == "cv":
            groups.setdefault((r["data"], r["loss"], r["model"]), {})[r["fold"]] = r
    return groups


def cv_section(rows):
    groups = cv_groups(rows)
    out = ["### Sound protocol: 5-fold cross-validation",
           "",
           "Every shared pair of the data combination is tested exactly once (5 folds of each "
           "dataset, seeded, D1+2 folds concatenated); validation (10%) is carved from each "
           "training part and picks the best epoch; augmentation (flips, rotations, brightness, "
           "contrast) on; Adam lr 1e-3 with a per-epoch cosine schedule to 1e-5, batch 4, 40 "
           "epochs, soft-Dice BCE loss. Test Dice at 0.5, mean ± standard deviation over folds.",
           "",
           "| data | model | folds | test Dice, final | test Dice, best-on-val | IoU, final | "
           "s/epoch |",
           "|---|---|---:|---:|---:|---:|---:|"]
    for (data, loss, model), folds in sorted(groups.items()):
        fin = [r["test_dice_final"] for r in folds.values()]
        best = [r["test_dice_best"] for r in folds.values() if r["test_dice_best"] is not None]
        iou = [r["test_iou_final"] for r in folds.values()]
        spe = statistics.fmean(epoch_seconds(r) for r in folds.values())
        m, s = mean_std(fin)
        mb, sb = mean_std(best)
        mi, si = mean_std(iou)
        def pm(mean, sd, n):  # one fold has no spread to show
            return f"{mean:.4f} ± {sd:.4f}" if n > 1 else f"{mean:.4f} (one fold)"
        out.append(f"| {DATA[data]} | {NAMES.get(model, model)} | {len(folds)} | "
                   f"{pm(m, s, len(fin))} | {pm(mb, sb, len(best))} | {pm(mi, si, len(iou))} "
                   f"| {spe:.1f} |")
    return out


def paired_section(rows):
    groups = cv_groups(rows)
    out = ["### Does the Spatial RNN skip help? Paired comparison",
           "",
           "Each pair trains both models on the same folds (same split, seed, batch order and "
           "augmentation). Fold level: the difference of the folds' global test Dice, with an "
           "exact two-sided sign-flip permutation test and the exact Wilcoxon signed-rank test "
           "(with 5 folds the smallest possible two-sided p is 2/32 = 0.0625). Image level: every "
           "image is a test image in exactly one fold, so the per-image Dice of the two models "
           "pair up over all images: sign-flip test (20,000 seeded draws) and Wilcoxon (normal "
           "approximation).",
           "",
           "| data | A vs B | folds | mean Dice A − B (fold) | per-fold differences | p sign-flip "
           "| p Wilcoxon | images | mean Dice A − B (image) | p sign-flip | p Wilcoxon |",
           "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    pairs = [("crunet_res_lw", "crunet_res_plain_lw"), ("crunet_res_lw", "unet2d_res_lw"),
             ("crunet_res_hw", "crunet_res_plain_hw")]
    found = False
    for data in ("d1", "d12"):
        for a, b in pairs:
            for loss in sorted({k[1] for k in groups}):
                ga, gb = groups.get((data, loss, a)), groups.get((data, loss, b))
                if not ga or not gb:
                    continue
                folds = sorted(set(ga) & set(gb))
                if len(folds) < 2:
                    continue
                found = True
                diffs = [ga[f]["test_dice_final"] - gb[f]["test_dice_final"] for f in folds]
                img_a = {(d, n): v for f in folds for d, n, v in ga[f].get("per_image_final", [])}
                img_b = {(d, n): v for f in folds for d, n, v in gb[f].get("per_image_final", [])}
                keys = sorted(set(img_a) & set(img_b))
                idiffs = [img_a[k] - img_b[k] for k in keys]
                img_cols = (f"{len(keys)} | {statistics.fmean(idiffs):+.4f} | "
                            f"{p_text(sign_flip_monte_carlo(idiffs))} | {p_text(wilcoxon(idiffs))}"
                            if keys else "— | — | — | —")
                out.append(
                    f"| {DATA[data]} | {NAMES.get(a, a)} vs {NAMES.get(b, b)} ({LOSS[loss]}) | "
                    f"{len(folds)} | {statistics.fmean(diffs):+.4f} | "
                    f"{', '.join(f'{d:+.3f}' for d in diffs)} | {p_text(sign_flip_exact(diffs))} | "
                    f"{p_text(wilcoxon(diffs))} | {img_cols} |")
    if not found:
        out.append("| no paired cells finished yet | | | | | | | | | | |")
    return out


def time_to_target(rows):
    out = [f"### Time to reach Dice {TARGET_DICE} on D1 on the CPU",
           "",
           f"First epoch whose validation Dice reaches {TARGET_DICE}, and the training seconds "
           "summed up to it (from each cell's per-epoch log; CPU, threads as stated).",
           "",
           "| cell | epoch | seconds | CPU, threads |", "|---|---:|---:|---|"]
    any_row = False
    for r in rows:
        if r["data"] != "d1" or r["device"] != "cpu":
            continue
        c = r["curve"]
        total = 0.0
        hit = None
        for e, vd, s in zip(c["epoch"], c["val_dice"], c["seconds"]):
            total += s or 0.0
            if vd is not None and vd >= TARGET_DICE:
                hit = (e, total)
                break
        any_row = True
        out.append(f"| {r['cell']} | {hit[0] if hit else 'not reached'} | "
                   f"{f'{hit[1]:.0f}' if hit else '—'} | {r['cpu']}, {r['threads']} |")
    if not any_row:
        out.append("| no D1 cell on the CPU finished yet | | | |")
    return out


def draw_curves(rows, chart, draw=True):
    """Draws the curves (draw=False: only names them, for --check)."""
    if draw and (not chart or not os.path.exists(chart)):
        print(f"report.py: chart program '{chart}' not found; curves not drawn", file=sys.stderr)
        return []
    if draw:
        os.makedirs(CURVES, exist_ok=True)
    made = []
    groups = cv_groups(rows)
    for data in ("d1", "d12"):
        series = {}
        for (d, loss, model), folds in groups.items():
            if d != data:
                continue
            n = max(len(r["curve"]["val_dice"]) for r in folds.values())
            means = []
            for i in range(n):
                v = [r["curve"]["val_dice"][i] for r in folds.values()
                     if i < len(r["curve"]["val_dice"]) and r["curve"]["val_dice"][i] is not None]
                means.append(statistics.fmean(v) if v else None)
            series[f"{model} ({len(folds)} folds)"] = means
        if series:
            made.append(write_chart(chart, f"cv-{data}-val-dice.png", series,
                                    f"5-fold CV on {DATA[data]}: mean validation Dice", "val Dice",
                                    draw))
    for data in ("d1", "d12"):
        series = {f"{r['model']} {r['loss']}": r["curve"]["val_dice"] for r in rows
                  if r["protocol"] == "seed" and r["data"] == data}
        if series:
            made.append(write_chart(chart, f"seed-{data}-val-dice.png", series,
                                    f"Seed protocol on {DATA[data]}: validation Dice", "val Dice",
                                    draw))
    return made


def write_chart(chart, name, series, title, ylabel, draw=True):
    out = os.path.join(CURVES, name)
    if not draw:
        return os.path.relpath(out, ROOT)
    n = max(len(v) for v in series.values())
    with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
        f.write("epoch," + ",".join(k.replace(",", " ") for k in series) + "\n")
        for i in range(n):
            cells = [str(i + 1)]
            for v in series.values():
                cells.append("" if i >= len(v) or v[i] is None else f"{v[i]:.6f}")
            f.write(",".join(cells) + "\n")
        tmp = f.name
    subprocess.run([chart, "--csv", tmp, "--out", out, "--title", title, "--y-label", ylabel,
                    "--y-min", "0", "--y-max", "1"], check=True, stdout=subprocess.DEVNULL)
    os.unlink(tmp)
    return os.path.relpath(out, ROOT)


def per_dataset_dice(folds):
    """Mean per-image test Dice by dataset over the folds' test images (final weights)."""
    by = {}
    for r in folds:
        for d, _, v in r.get("per_image_final", []):
            by.setdefault(d, []).append(v)
    return {d: (statistics.fmean(v), len(v)) for d, v in sorted(by.items())}


def shipped_section(rows):
    """The shipped model: the final cell, the cross-validated Dice of its protocol, the file."""
    final = [r for r in rows if r["protocol"] == "final"]
    if not final:
        return ["### Shipped model", "", "Not trained yet."]
    f = final[-1]
    folds = list(cv_groups(rows).get((f["data"], f["loss"], f["model"]), {}).values())
    out = ["### Shipped model", "",
           f"`models/{os.path.basename(SHIPPED)}`: {NAMES.get(f['model'], f['model'])} "
           f"(`{f['model']}`) trained on all {f['train_images']} shared pairs of "
           f"{DATA[f['data']]} with the cross-validation protocol ({f['epochs_run']} epochs, "
           f"{LOSS[f['loss']]}), {f['train_seconds'] / 60:.0f} min of training on {f['cpu']} "
           f"({f['threads']} threads), finished {f['finished']}, train binary of commit "
           f"{f['commit']}" + (" (resumed from its checkpoint: the epochs before the resume ran "
                                "with an earlier binary, on a loaded machine)" if f["resumed"]
                                else "") + "."]
    if os.path.exists(SHIPPED):
        with open(SHIPPED, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
        out[-1] += f" SHA-256 `{digest}`, {os.path.getsize(SHIPPED):,} bytes."
    else:
        out[-1] += " The file is not in models/ yet."
    if folds:
        m, sd = mean_std([r["test_dice_final"] for r in folds])
        per = per_dataset_dice(folds)
        parts = ", ".join(f"{d}: {v:.4f} over {n} images" for d, (v, n) in per.items())
        out += ["", f"Cross-validated test Dice of this protocol: {m:.4f} ± {sd:.4f} over "
                f"{len(folds)} of {CV_FOLDS} folds (global Dice per fold at 0.5); mean per-image "
                f"Dice by dataset: {parts}."]
    out += ["", f"Command: `{f['command']}`"]
    return out


def provenance(rows):
    cpus = sorted({r["cpu"] for r in rows})
    commits = sorted({r["commit"] for r in rows})
    dates = sorted(r["finished"] for r in rows)
    return [f"From `experiments/results.jsonl` ({len(rows)} cells, finished {dates[0]} .. "
            f"{dates[-1]}; CPU: {', '.join(cpus)}; train binaries of commits "
            f"{', '.join(commits)}), by `python3 experiments/report.py`. Each line of the results "
            "file holds the exact `train` command of its cell; `python3 experiments/run.py "
            "queue --plan all` re-runs the missing ones."]


def replace_between(path, begin, end, lines):
    """The text of `path` with what lies between its markers `begin` and `end` replaced by lines."""
    with open(path) as f:
        text = f.read()
    if begin not in text or end not in text:
        raise SystemExit(f"report.py: {path} lacks the markers {begin} / {end}")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + "\n".join(lines) + "\n" + end + tail


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--chart", default=os.path.join(ROOT, "build", "examples", "chart"))
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; fail if RESULTS.md or README.md differ from the results")
    a = ap.parse_args()
    rows = load()
    if not rows:
        raise SystemExit("report.py: no results yet")
    curves = draw_curves(rows, a.chart, draw=not a.check)
    seed, _ = seed_section(rows)
    shipped = shipped_section(rows)
    body = (provenance(rows) + [""] + seed + [""] + cv_section(rows) + [""] +
            paired_section(rows) + [""] + time_to_target(rows) + [""] + shipped + [""])
    if curves:
        body += ["Learning curves (validation Dice per epoch; numbers only, no image data):", ""]
        body += [f"![{os.path.basename(c)}]({c})" for c in curves] + [""]
    # Image links are relative to the repository root (README); RESULTS.md sits in experiments/.
    results_md = ("# Fingernail results\n\n" +
                  "\n".join(line.replace("](experiments/", "](") for line in body))
    outputs = [("experiments/RESULTS.md", OUT_MD, results_md),
               ("README.md", README, replace_between(README, BEGIN, END, body))]
    if os.path.exists(CARD):  # the model card's generated part (the rest is written by hand)
        card_lines = [line.replace("`models/", "`") for line in shipped[2:]]
        outputs.append(("models/README.md", CARD,
                        replace_between(CARD, CARD_BEGIN, CARD_END, card_lines)))
    if a.check:
        stale = [name for name, path, want in outputs
                 if not os.path.exists(path) or open(path).read() != want]
        if stale:
            raise SystemExit("report.py: " + " and ".join(stale) + " differ from "
                             "experiments/results.jsonl; run python3 experiments/report.py")
        print("report.py: RESULTS.md and README.md match experiments/results.jsonl")
        return
    for name, path, want in outputs:
        if name == "README.md" and a.no_readme:
            continue
        with open(path, "w") as f:
            f.write(want)
        print(f"wrote {name}")


if __name__ == "__main__":
    main()
