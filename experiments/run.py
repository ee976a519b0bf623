#!/usr/bin/env python3
"""Experiment runner for the fingernail results (issue 8): one cell = model x data x loss x protocol
x fold. A finished cell appends one JSON line to experiments/results.jsonl and is never re-run; a
killed cell resumes from its checkpoint (train --resume). Standard library only.

  python3 experiments/run.py cell --protocol seed --model crunet_res_lw --data d1 --loss bce
  python3 experiments/run.py cell --protocol cv --model crunet_res_lw --data d12 --fold 3
  python3 experiments/run.py queue --plan cv-lw        # every cell of a plan, in order
  python3 experiments/run.py list [--plan NAME]        # cells of a plan and whether they are done

Long queues belong in the background: nohup nice -n 19 python3 experiments/run.py queue ... &
The train binary is copied once per queue/cell start into runs/experiments/bin/<commit>/, so that
rebuilding the tree while a queue runs does not change the code a running cell trains with.
"""
import argparse
import csv
import datetime
import fcntl
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "experiments", "results.jsonl")
RUNS = os.path.join(ROOT, "runs", "experiments")
DATA_ROOT = os.environ.get("FINGERNAILS", os.path.join(ROOT, "..", "shared", "data", "fingernails"))
DATA = {"d1": ["dataset1"], "d12": ["dataset1", "dataset2"]}
LOSSES = {"bce": "bce", "bce_dice_seed": "bce_dice_seed", "bce_dice": "bce_dice"}

# The sound protocol (5-fold cross-validation): fixed here so every cell of a comparison uses it.
CV = {"folds": 5, "epochs": 40, "batch": 4, "lr": 1e-3, "min_lr": 1e-5, "val_fraction": 0.1,
      "loss": "bce_dice"}
# Epochs of the seed protocol per model when the CPU cannot afford the original's 220 (HW models).
SEED_EPOCHS_CPU = {"unet2d_res_hw": 20, "crunet_res_hw": 20}
SEED_MODELS = ["unet2d_lw", "unet2d_res_hw", "crunet_res_hw", "crunet_res_lw"]


def cell_id(c):
    fold = f"-f{c['fold']}" if c["protocol"] == "cv" else ""  # seed and final: one cell
    return f"{c['protocol']}-{c['data']}-{c['model']}-{c['loss']}{fold}-e{c['epochs']}-s{c['seed']}"


def make_cell(protocol, model, data, loss=None, fold=0, epochs=None, seed=1, device="cpu"):
    if protocol == "seed":
        loss = loss or "bce"
        if epochs is None:
            epochs = SEED_EPOCHS_CPU.get(model, 220) if device == "cpu" else 220
    elif protocol in ("cv", "final"):  # final: the cv settings on every pair (shipped weights)
        loss = loss or CV["loss"]
        epochs = epochs or CV["epochs"]
    else:
        raise SystemExit(f"run.py: unknown protocol '{protocol}' (seed | cv | final)")
    if data not in DATA:
        raise SystemExit(f"run.py: unknown data '{data}' (d1 | d12)")
    if loss not in LOSSES:
        raise SystemExit(f"run.py: unknown loss '{loss}' ({' | '.join(LOSSES)})")
    return {"protocol": protocol, "model": model, "data": data, "loss": loss, "fold": fold,
            "epochs": epochs, "seed": seed, "device": device}


def plans():
    p = {}
    p["seed-lw"] = [make_cell("seed", m, d, l) for m in ("crunet_res_lw", "unet2d_lw")
                    for d in ("d1", "d12") for l in ("bce", "bce_dice_seed")]
    p["seed-hw"] = [make_cell("seed", m, d, l) for m in ("crunet_res_hw", "unet2d_res_hw")
                    for d in ("d1", "d12") for l in ("bce", "bce_dice_seed")]
    p["seed"] = p["seed-lw"] + p["seed-hw"]
    for d in ("d12", "d1"):
        p[f"cv-srnn-{d}"] = [make_cell("cv", m, d, fold=f) for f in range(CV["folds"])
                             for m in ("crunet_res_lw", "crunet_res_plain_lw")]
        p[f"cv-res-{d}"] = [make_cell("cv", "unet2d_res_lw", d, fold=f) for f in range(CV["folds"])]
    p["final"] = [make_cell("final", "crunet_res_lw", "d12")]
    # Order: CR-UNet-Res LW's folds on D1+D2 (the shipped weights after three of them: the CPU of
    # the first session was shared and slow), the ablation's folds (the SRNN
    # question), U-Net2D-Res LW, D1's cross-validation (small and quick: the D1 goal and the time
    # to reach 0.94), the seed table's CPU cells, then the HW seed cells.
    srnn = p["cv-srnn-d12"]
    lw = [c for c in srnn if c["model"] == "crunet_res_lw"]
    p["all"] = (lw[:3] + p["final"] + lw[3:] + [c for c in srnn if c["model"] != "crunet_res_lw"] +
                p["cv-res-d12"] + p["cv-srnn-d1"] + p["cv-res-d1"] + p["seed-lw"] + p["seed-hw"])
    return p


def read_results():
    out = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            for n, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    r = json.loads(line)
                except json.JSONDecodeError as e:
                    raise SystemExit(f"run.py: {RESULTS} line {n} is not JSON: {e}")
                out[r["cell"]] = r
    return out


def git(*args):
    try:
        return subprocess.run(["git", "-C", ROOT, *args], check=True, capture_output=True,
                              text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def frozen_train_binary(src):
    """Copies the train binary to runs/experiments/bin/<commit>[-dirty]/train once."""
    if not os.path.exists(src):
        raise SystemExit(f"run.py: train binary '{src}' not found; build it first "
                         "(cmake --build build --target train)")
    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--untracked-files=no", "include", "examples"):
        commit += "-dirty"
    dst_dir = os.path.join(RUNS, "bin", commit)
    dst = os.path.join(dst_dir, "train")
    os.makedirs(dst_dir, exist_ok=True)
    if not os.path.exists(dst):
        shutil.copy2(src, dst + ".tmp")
        os.replace(dst + ".tmp", dst)
    return dst, commit


def train_args(c, out_dir):
    a = ["--model", c["model"], "--loss", LOSSES[c["loss"]], "--epochs", str(c["epochs"]),
         "--seed", str(c["seed"]), "--out", out_dir, "--quiet"]
    for d in DATA[c["data"]]:
        a += ["--data", os.path.join(DATA_ROOT, d)]
    if c["protocol"] == "seed":
        a += ["--protocol", "seed"]
    else:
        if c["protocol"] == "cv":
            a += ["--folds", str(CV["folds"]), "--fold", str(c["fold"]),
                  "--val-fraction", str(CV["val_fraction"])]
        else:  # every pair trains; the final weights are the product (epochs fixed by the CV)
            a += ["--test-fraction", "0", "--val-fraction", "0"]
        a += ["--batch", str(CV["batch"]), "--lr", str(CV["lr"]), "--schedule", "cosine",
              "--min-lr", str(CV["min_lr"]), "--augment"]
    if c["device"] != "cpu":
        a += ["--device", c["device"]]
    return a


def read_curve(log_csv):
    curve = {"epoch": [], "train_loss": [], "train_dice": [], "val_loss": [], "val_dice": [],
             "lr": [], "seconds": []}
    with open(log_csv) as f:
        for row in csv.DictReader(f):
            for k in curve:
                v = row[k]
                curve[k].append(int(v) if k == "epoch" else (None if v == "null" else float(v)))
    return curve


def run_cell(c, train_bin, threads):
    cid = cell_id(c)
    if cid in read_results():
        print(f"{cid}: already in results, not re-run", flush=True)
        return True
    out_dir = os.path.join(RUNS, cid)
    args = [train_bin] + train_args(c, out_dir)
    resumed = os.path.exists(os.path.join(out_dir, "checkpoint.txt"))
    if resumed:
        args.append("--resume")
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    print(f"{cid}: {'resuming' if resumed else 'starting'}: {' '.join(args)}", flush=True)
    os.makedirs(out_dir, exist_ok=True)
    t0 = time.time()
    with open(os.path.join(out_dir, "train.log"), "a") as log:
        rc = subprocess.run(args, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.time() - t0
    if rc != 0:
        print(f"{cid}: train exited {rc}; see {out_dir}/train.log", flush=True)
        return False
    with open(os.path.join(out_dir, "result.json")) as f:
        res = json.load(f)
    curve = read_curve(os.path.join(out_dir, "log.csv"))
    best = res.get("test_best_weights") or {}
    test = res["test"] if res["test_images"] else {"dice": None, "dice_at_0.3": None, "iou": None,
                                                    "per_image": []}
    seconds = sum(s for s in curve["seconds"] if s is not None)
    line = {
        "cell": cid, "model": c["model"], "data": c["data"], "loss": c["loss"],
        "protocol": c["protocol"], "fold": c["fold"] if c["protocol"] == "cv" else None,
        "folds": CV["folds"] if c["protocol"] == "cv" else None, "seed": c["seed"],
        "epochs_planned": c["epochs"], "epochs_run": len(curve["epoch"]),
        "best_epoch": res["best_epoch"], "best_val_dice": res["best_val_dice"],
        "train_images": res["train_images"], "val_images": res["val_images"],
        "test_images": res["test_images"],
        "test_dice_final": test["dice"], "test_dice_final_at_0.3": test["dice_at_0.3"],
        "test_iou_final": test["iou"],
        "test_dice_best": best.get("dice"), "test_dice_best_at_0.3": best.get("dice_at_0.3"),
        "test_iou_best": best.get("iou"),
        "train_seconds": seconds, "s_per_epoch": seconds / max(1, len(curve["epoch"])),
        # The median is what an epoch costs even when the machine was paused (SIGSTOP) or busy
        # for a while: the mean above counts those pauses.
        "s_per_epoch_median": statistics.median(s for s in curve["seconds"] if s is not None)
        if any(s is not None for s in curve["seconds"]) else None,
        "wall_seconds_last_invocation": wall, "resumed": resumed,
        "device": c["device"], "cpu": cpu_model(), "threads": threads,
        "loadavg_at_end": os.getloadavg()[0],
        "commit": os.path.basename(os.path.dirname(train_bin)),
        "command": " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in args),
        "finished": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "curve": curve,
        # Per-image test Dice (final and best weights) for image-level paired tests across folds.
        "per_image_final": [[i["dataset"], i["name"], i["dice"]] for i in test["per_image"]],
        "per_image_best": [[i["dataset"], i["name"], i["dice"]] for i in best.get("per_image", [])],
    }
    with open(RESULTS, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(line, separators=(",", ":")) + "\n")
    print(f"{cid}: done in {wall:.0f} s: test Dice final {test['dice']}, best-on-val "
          f"{best.get('dice')}", flush=True)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    cp = sub.add_parser("cell", help="run one cell")
    cp.add_argument("--protocol", required=True, choices=["seed", "cv", "final"])
    cp.add_argument("--model", required=True)
    cp.add_argument("--data", required=True, choices=list(DATA))
    cp.add_argument("--loss", choices=list(LOSSES))
    cp.add_argument("--fold", type=int, default=0)
    cp.add_argument("--epochs", type=int)
    cp.add_argument("--seed", type=int, default=1)
    cp.add_argument("--device", default="cpu")
    qp = sub.add_parser("queue", help="run every cell of a plan, in order")
    qp.add_argument("--plan", default="all")
    lp = sub.add_parser("list", help="cells of a plan and whether they are done")
    lp.add_argument("--plan", default="all")
    for p in (cp, qp):
        p.add_argument("--train", default=os.path.join(ROOT, "build", "examples", "train"))
        p.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if not os.path.isdir(DATA_ROOT):
        raise SystemExit(f"run.py: data folder '{DATA_ROOT}' not found (set FINGERNAILS)")
    all_plans = plans()
    if a.cmd in ("queue", "list") and a.plan not in all_plans:
        raise SystemExit(f"run.py: unknown plan '{a.plan}'; plans: {', '.join(all_plans)}")
    if a.cmd == "list":
        done = read_results()
        for c in all_plans[a.plan]:
            print(("done  " if cell_id(c) in done else "todo  ") + cell_id(c))
        return 0
    train_bin, _ = frozen_train_binary(a.train)
    if a.cmd == "cell":
        c = make_cell(a.protocol, a.model, a.data, a.loss, a.fold, a.epochs, a.seed, a.device)
        return 0 if run_cell(c, train_bin, a.threads) else 1
    failed = 0
    for c in all_plans[a.plan]:
        if not run_cell(c, train_bin, a.threads):
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
