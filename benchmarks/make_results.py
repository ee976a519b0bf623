#!/usr/bin/env python3
"""Formats the raw results of benchmarks/run_all.sh (a folder of JSON and text files) as Markdown.

usage: make_results.py RESULTS_DIR --threads T --steps S --warmup K > benchmarks/RESULTS.md
Standard library only.
"""
import argparse
import json
import os
import re
import subprocess

SEED_MODELS = ["unet2d_lw", "unet2d_res_hw", "crunet_res_hw", "crunet_res_lw"]
LABELS = {
    "unet2d_lw": "U-Net2D (LW)",
    "unet2d_hw": "U-Net2D (HW)",
    "unet2d_res_lw": "U-Net2D-Res (LW)",
    "unet2d_res_hw": "U-Net2D-Res (HW)",
    "crunet_res_lw": "CR-UNet-Res LW",
    "crunet_res_hw": "CR-UNet-Res HW",
}


def read_text(folder, name, default=""):
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        return default
    with open(path) as fh:
        return fh.read().strip()


def read_json(folder, name):
    text = read_text(folder, name)
    if not text:
        return None
    try:
        return json.loads(text.splitlines()[-1])  # the peer prints one line; ours one object
    except json.JSONDecodeError:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None


def median(values):
    v = sorted(values)
    return None if not v else (v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2)


def combine_rounds(results):
    """One result from a model's rounds: each timing is the median over the rounds of the
    per-round medians, each "_min" the fastest of all; rates follow the combined times."""
    out = dict(results[0])
    out["_rounds"] = results
    for key in results[0]:
        values = [r[key] for r in results if isinstance(r.get(key), (int, float))]
        if not values or isinstance(results[0][key], bool):
            continue
        if key.endswith("_min"):
            out[key] = min(values)
        elif key.endswith("_ms") or key.endswith("_img_per_s") or key.endswith("gflops"):
            out[key] = median(values)
    return out


def peak_share(o, peak):
    """'median% (fastest%)': the step's convolution FLOP rate as a share of the FMA peak, at the
    median step time and at the fastest one (the probe reports its best run, so the fastest step
    is the like-for-like figure on a machine whose speed drifts)."""
    flops, med, fast = o.get("train_flops"), o.get("train_step_ms"), o.get("train_step_ms_min")
    if not (peak and flops and med):
        return "n/a"
    text = f"{100.0 * flops / (med * 1e6) / peak:.0f}%"
    return text + (f" ({100.0 * flops / (fast * 1e6) / peak:.0f}%)" if fast else "")


def round_ratios(peer, ours, peer_key, ours_key):
    """Peer time / our time per round (rounds matched by number): its smallest and largest."""
    by_round = {r["_round"]: r.get(ours_key) for r in ours.get("_rounds", [])}
    ratios = [p[peer_key] / by_round[p["_round"]] for p in peer.get("_rounds", [])
              if p.get(peer_key) and by_round.get(p["_round"])]
    return (min(ratios), max(ratios)) if len(ratios) > 1 else None


def ratio_text(ratio, spread):
    if ratio is None:
        return "n/a"
    return f"{ratio:.2f}x" + (f" ({spread[0]:.2f}-{spread[1]:.2f})" if spread else "")


def machine():
    model, cores = "unknown CPU", os.cpu_count()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as fh:
            kib = int(fh.readline().split()[1])
            memory = f", {kib / 1024 / 1024:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    return f"{model}, {cores} logical CPUs{memory}"


def instruction_sets():
    """The vector instruction sets /proc/cpuinfo lists (the CPU paths the library can pick)."""
    wanted = ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512dq", "avx512bw", "avx512vl",
              "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "asimd", "sve"]
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    have = set(value.split())
                    return " ".join(f for f in wanted if f in have) or "none of the listed"
    except OSError:
        pass
    return "unknown"


def blas_provider():
    """Which BLAS libblas.so.3 resolves to: PyTorch's Debian build uses it for the products oneDNN
    does not take (the transposed convolutions among them)."""
    for candidate in ("/usr/lib/x86_64-linux-gnu/libblas.so.3", "/usr/lib/aarch64-linux-gnu/libblas.so.3"):
        if os.path.exists(candidate):
            target = os.path.realpath(candidate)
            for key, name in (("openblas", "OpenBLAS"), ("blis", "BLIS"), ("atlas", "ATLAS"),
                              ("mkl", "MKL"), ("/blas/", "netlib reference BLAS")):
                if key in target:
                    return f"{name} ({target})"
            return target
    return "unknown"


def num(v, fmt="{:.1f}"):
    return "n/a" if v is None else fmt.format(v)


def with_min(result, key, fmt="{:.0f}"):
    """'median (min)' of a timing."""
    median, fastest = result.get(key), result.get(key + "_min")
    if median is None or fastest is None:
        return num(median, fmt)
    return f"{fmt.format(median)} ({fmt.format(fastest)})"


def load_summary(folder, threads):
    samples = []
    for line in read_text(folder, "load_samples.txt").splitlines():
        try:
            samples.append(float(line.split()[0]))
        except (ValueError, IndexError):
            pass
    if not samples:
        return None, "no load samples"
    mean, peak = sum(samples) / len(samples), max(samples)
    cpus = os.cpu_count() or 1
    text = (f"1-minute load average during the run: mean {mean:.1f}, max {peak:.1f} "
            f"({len(samples)} samples, {cpus} logical CPUs; the benchmark itself accounts for about "
            f"{threads})")
    return mean, text


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("folder")
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--readme", help="also write the summary table into this file, between "
                        "<!-- bench:begin --> and <!-- bench:end -->")
    args = parser.parse_args()
    d = args.folder

    layers = read_json(d, "ours_layers.json") or {}
    gemm_rate = layers.get("gemm_rate_gflops")
    peak = layers.get("peak_gflops") or None
    rounds = {"ours": {}, "torch": {}, "openvino": {}}  # impl -> model -> [result per round]
    for name in sorted(os.listdir(d)):
        m = re.fullmatch(r"(ours|torch|openvino)_(.+?)(?:\.r(\d+))?\.json", name)
        if not m or m.group(2) in ("layers", "srnn"):
            continue
        data = read_json(d, name)
        if m.group(1) == "ours":
            if not (data and data.get("models")):
                continue
            run_info, data = data, data["models"][0]
            data["_run"] = run_info
        if data:
            data["_round"] = int(m.group(3) or 0)
            rounds[m.group(1)].setdefault(m.group(2), []).append(data)
    ours = {k: combine_rounds(v) for k, v in rounds["ours"].items()}
    torch_res = {k: combine_rounds(v) for k, v in rounds["torch"].items()}
    openvino_res = {k: combine_rounds(v) for k, v in rounds["openvino"].items()}
    models = [m for m in SEED_MODELS if m in ours or m in torch_res]
    models += sorted(m for m in set(ours) | set(torch_res) if m not in models)
    torch_version = next((t.get("torch") for t in torch_res.values()), None)
    openvino_version = next((t.get("openvino") for t in openvino_res.values()), None)
    peer_python = read_text(d, "peer_python.txt", "unknown python")
    run = next((o["_run"] for o in ours.values()), {})
    batch, height, width = run.get("batch", 2), run.get("height", 160), run.get("width", 192)
    infer_batch = run.get("infer_batch", 8)
    load_mean, load_text = load_summary(d, args.threads)

    out = []
    w = out.append
    w("# Benchmark results")
    w("")
    w("Written by `benchmarks/run_all.sh` (raw results: `build-bench/results/`). Do not edit by hand.")
    w("")
    w(f"- Date: {read_text(d, 'date.txt', 'unknown')}")
    w(f"- Code: commit `{read_text(d, 'commit.txt', 'unknown').strip()}`")
    w(f"- Machine: {machine()}")
    w(f"- Instruction sets: {instruction_sets()}")
    w(f"- Our CPU path: {run.get('cpu_path', 'unknown')} (the best this CPU runs: "
      f"{run.get('best_cpu_path', 'unknown')}); FMA peak on {args.threads} threads: 256-bit "
      f"{num(layers.get('peak_256_gflops') or None)} GFLOP/s, 512-bit "
      f"{num(layers.get('peak_512_gflops') or None)} GFLOP/s")
    w(f"- Threads: {args.threads} (ours: `OMP_NUM_THREADS={args.threads}`; PyTorch: "
      f"`torch.set_num_threads({args.threads})`)")
    w(f"- Timing: median of {args.steps} timed runs after {max(1, args.warmup)} warm-up run(s) per "
      f"process; {args.rounds} round(s), each running ours, PyTorch and OpenVINO on one model "
      "right after one another; a table's time is the median over the rounds, a speed-up is the "
      "ratio of those medians, with the smallest and largest per-round ratio in parentheses; "
      f"training batch {batch}, images {height} x {width} x 3")
    compiler = read_text(d, "compiler.txt").splitlines()
    if compiler:
        w(f"- Compiler: {compiler[0]}")
        for line in compiler[1:]:
            w(f"  - `{line.strip()}`")
    if torch_version and "1.13" in torch_version:
        w(f"- PyTorch: {torch_version} ({peer_python}: Debian python3-torch; convolutions by "
          f"oneDNN, other products by libblas.so.3 = {blas_provider()})")
    else:
        w(f"- PyTorch: {torch_version or 'not available'} ({peer_python}; PyPI build: MKL + oneDNN)")
    w(f"- OpenVINO: {openvino_version or 'not available'} (the peer's graphs exported to ONNX, "
      "float32 inference: INFERENCE_PRECISION_HINT f32, one stream)")
    w(f"- Load: {load_text}")
    if load_mean is not None and load_mean > args.threads + 0.5:
        w("")
        w(f"**Timings were taken under load**: other processes shared the {os.cpu_count()} CPUs "
          "(mean load above the benchmark's own threads), so absolute times are inflated and noisy; "
          "ours and PyTorch's ran one after the other under similar conditions, so the ratios are "
          "the more reliable figures.")
    w("")

    w("## Training step: the original's four models")
    w("")
    w(f"One step = forward + BCE-with-logits loss (mean) + backward + Adam update, batch {batch}. "
      "FLOPs are the convolution FLOPs our op table issues (a multiply-add counts 2; pointwise ops, "
      "pooling and the Spatial RNN are not counted). GFLOP/s = those FLOPs / our step time; "
      f"% GEMM = that rate / the Eigen SGEMM rate on 1024^3 ({num(gemm_rate)} GFLOP/s; the "
      "library's convolutions use their own register-blocked kernel, not Eigen's GEMM, so more "
      "than 100% is possible); % peak = that rate / the measured FMA peak at the widest vector "
      f"width this machine has ({num(peak)} GFLOP/s; the probe's best run), at the median step "
      "and, in parentheses, at the fastest. "
      "Times: median (fastest) in ms. Speed-up = PyTorch median / our median (above 1: we are "
      "faster).")
    w("")
    w("| model | params | GFLOP/step | ours ms/step | PyTorch ms/step | speed-up | ours GFLOP/s "
      "| % GEMM | % peak | ours peak RSS MiB | PyTorch peak RSS MiB |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in models:
        o, t = ours.get(m, {}), torch_res.get(m, {})
        ours_ms, torch_ms = o.get("train_step_ms"), t.get("train_step_ms")
        ratio = torch_ms / ours_ms if ours_ms and torch_ms else None
        params = o.get("params") or t.get("params")
        # Each model ran in its own process without the GEMM section: use the layers run's rate.
        pct = o.get("pct_of_gemm")
        if pct is None and gemm_rate and o.get("train_gflops"):
            pct = 100.0 * o["train_gflops"] / gemm_rate
        spread = round_ratios(t, o, "train_step_ms", "train_step_ms")
        w(f"| {LABELS.get(m, m)} (`{m}`) | {num(params, '{:,.0f}')} "
          f"| {num(o.get('train_flops') and o['train_flops'] / 1e9, '{:.1f}')} "
          f"| {with_min(o, 'train_step_ms')} | {with_min(t, 'train_step_ms')} | {ratio_text(ratio, spread)} "
          f"| {num(o.get('train_gflops'))} | {num(pct, '{:.0f}%')} "
          f"| {peak_share(o, peak)} "
          f"| {num(o.get('peak_rss_mib'), '{:.0f}')} | {num(t.get('peak_rss_mib'), '{:.0f}')} |")
    errors = [(m, ours[m]["error"]) for m in models if ours.get(m, {}).get("error")]
    for m, e in errors:
        w(f"\nOurs, `{m}`: not measured ({e}).")
    w("")
    w("Peak RSS is each process's high-water mark (getrusage) after training and inference; each "
      "model ran in its own process.")
    w("")

    w("## Inference")
    w("")
    w(f"Forward pass only. Latency: batch 1, median (fastest) ms. Throughput: batch {infer_batch}, "
      "images/s.")
    w("")
    w(f"| model | GFLOP/image | ours ms (b1) | PyTorch ms (b1) | OpenVINO ms (b1) | speed-up vs "
      f"best peer | ours img/s (b{infer_batch}) | PyTorch img/s (b{infer_batch}) "
      f"| OpenVINO img/s (b{infer_batch}) |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for m in models:
        o, t, v = ours.get(m, {}), torch_res.get(m, {}), openvino_res.get(m, {})
        ours_ms = o.get("infer_b1_ms")
        peers = [p for p in (t.get("infer_b1_ms"), v.get("infer_b1_ms")) if p]
        ratio = min(peers) / ours_ms if ours_ms and peers else None
        best_peer = min((p for p in (t, v) if p.get("infer_b1_ms")), key=lambda p: p["infer_b1_ms"],
                        default={})
        spread = round_ratios(best_peer, o, "infer_b1_ms", "infer_b1_ms")
        w(f"| {LABELS.get(m, m)} | {num(o.get('infer_flops') and o['infer_flops'] / 1e9, '{:.2f}')} "
          f"| {with_min(o, 'infer_b1_ms', '{:.1f}')} | {with_min(t, 'infer_b1_ms', '{:.1f}')} "
          f"| {with_min(v, 'infer_b1_ms', '{:.1f}')} | {ratio_text(ratio, spread)} "
          f"| {num(o.get('infer_batch_img_per_s'), '{:.2f}')} "
          f"| {num(t.get('infer_batch_img_per_s'), '{:.2f}')} "
          f"| {num(v.get('infer_batch_img_per_s'), '{:.2f}')} |")
    diffs = [(m, r["max_abs_diff_vs_torch"]) for m, r in openvino_res.items()
             if r.get("max_abs_diff_vs_torch") is not None]
    if diffs:
        w("")
        w("OpenVINO's logits against PyTorch's on the same input (largest absolute difference): " +
          ", ".join(f"`{m}` {d:.1e}" for m, d in diffs) + ".")
    w("")

    w("## Spatial RNN skip links (CR-UNet-Res HW, training batch shapes)")
    w("")
    w("Seed SRNN (ReLU, concat) + 1x1 conv + bias + ReLU, forward and backward including the input "
      "gradient. PyTorch runs the original's rule literally: L sequential steps "
      "h_k = relu(w * shift(h_{k-1})) per direction, y = x + sum h_k (4L shift steps, autograd "
      "through each), which is what a PyTorch user of the original layer runs; ours is the "
      "library's kernel (exact, same function).")
    w("")
    torch_srnn = read_json(d, "torch_srnn.json") or {}
    torch_skips = {(s["level"], s["length"]): s for s in torch_srnn.get("srnn_skip", [])}
    w("| skip | input shape | ours ms | PyTorch (literal) ms | speed-up |")
    w("|---|---|---:|---:|---:|")
    for layer in layers.get("layers", []):
        m = re.match(r"srnn skip l(\d+) L=(\d+)", layer.get("name", ""))
        if not m:
            continue
        key = (int(m.group(1)), int(m.group(2)))
        t = torch_skips.get(key, {})
        ours_ms = layer.get("ms")
        ratio = t.get("ms") / ours_ms if ours_ms and t.get("ms") else None
        note = f" (ours: {layer['error']})" if layer.get("error") else ""
        w(f"| level {key[0]}, L = {key[1]}{note} | {layer.get('shape')} | {num(ours_ms)} "
          f"| {num(t.get('ms'))} | {num(ratio, '{:.1f}x')} |")
    srnn_text = read_text(d, "bench_srnn.txt")
    if srnn_text:
        w("")
        w("`bench_srnn` output:")
        w("")
        w("```")
        w(srnn_text)
        w("```")
    w("")

    w("## Eigen SGEMM rate and per-layer times (ours)")
    w("")
    w("| GEMM M x K x N (row-major) | GFLOP/s |")
    w("|---|---:|")
    for g in layers.get("gemm", []):
        w(f"| {g['m']} x {g['k']} x {g['n']} | {num(g.get('gflops'))} |")
    w("")
    w(f"Layers at the HW models' shapes (base width 32, batch {batch}); conv3x3 C -> C at each "
      "level, the transposed conv 2C -> C into each level.")
    w("")
    w("| layer | input shape | ms | GFLOP/s |")
    w("|---|---|---:|---:|")
    for layer in layers.get("layers", []):
        if layer.get("error"):
            w(f"| {layer['name']} | {layer.get('shape')} | n/a: {layer['error']} | |")
            continue
        w(f"| {layer['name']} | {layer.get('shape')} | {num(layer.get('ms'), '{:.2f}')} "
          f"| {num(layer.get('gflops'))} |")
    w("")

    w("## Commands")
    w("")
    w("```")
    w(f"OMP_NUM_THREADS={args.threads}")
    w(read_text(d, "commands.txt"))
    w("```")
    w("")
    w("## Notes")
    w("")
    w("- The PyTorch peer (`benchmarks/torch_peer.py`) builds the identical graphs (checked "
      "numerically by `tests/test_torch_parity.cpp`: logits and every parameter gradient agree to "
      "float32 accuracy), uses `torch.optim.Adam` and `binary_cross_entropy_with_logits`, and "
      "PyTorch's default CPU kernels (oneDNN convolutions).")
    w("- Our FLOP counts cover convolutions only; PyTorch does the same convolutions, so the same "
      "count applies to it.")
    w("- PyTorch's CR-UNet-Res times include the literal Spatial RNN (4 L autograd steps per skip "
      "link, see the SRNN table): that is the cost a PyTorch user of the original layer pays, not "
      "PyTorch's best possible implementation of the same function.")
    if torch_version and "1.13" in torch_version:
        w("- The Debian PyTorch build links the system libblas.so.3; with the netlib reference BLAS "
          "its transposed convolutions (aten::slow_conv_transpose2d) are slower than with an "
          "optimised BLAS.")
    if openvino_res:
        w("- OpenVINO runs the PyTorch peer's graphs exported to ONNX (`torch_peer.py "
          "bench-openvino`), including the literal Spatial RNN of the CR-UNet models; inference "
          "only.")
    w("- Fastest-run figures (in parentheses) are the least disturbed by other load on a shared "
      "machine; medians are used for the speed-ups.")
    print("\n".join(out))
    if args.readme:
        write_readme_summary(args.readme, d, models, ours, torch_res, openvino_res, layers, args,
                             torch_version, openvino_version, load_text)


def write_readme_summary(path, d, models, ours, torch_res, openvino_res, layers, args,
                         torch_version, openvino_version, load_text):
    """The README's CPU table: the same figures as RESULTS.md, condensed."""
    run = next((o["_run"] for o in ours.values()), {})
    peak = layers.get("peak_gflops")
    lines = [
        f"CPU: {machine()}; instruction sets {instruction_sets()}; measured FMA peak "
        f"{num(peak)} GFLOP/s on {args.threads} threads. `bash benchmarks/run_all.sh`, "
        f"{read_text(d, 'date.txt', 'unknown')}, commit `{read_text(d, 'commit.txt', 'unknown')}`, "
        f"our CPU path {run.get('cpu_path', 'unknown')} chosen at run time (no `-march` flag), "
        f"{args.threads} threads, batch {run.get('batch', 2)}, {run.get('height', 160)} x "
        f"{run.get('width', 192)}; {args.rounds} interleaved round(s) of ours, PyTorch "
        f"{torch_version or 'n/a'} and OpenVINO {(openvino_version or 'n/a').split('-')[0]} "
        f"(float32, the same graphs via ONNX); {load_text}. Median ms over the rounds; a speed-up "
        "is the ratio of the medians, with the range of the per-round ratios in parentheses.",
        "",
        "| model | ours ms/step | PyTorch ms/step | speed-up | % FMA peak | ours ms (b1) "
        "| PyTorch ms (b1) | OpenVINO ms (b1) | vs best peer (b1) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in models:
        o, t, v = ours.get(m, {}), torch_res.get(m, {}), openvino_res.get(m, {})
        step, tstep = o.get("train_step_ms"), t.get("train_step_ms")
        train_ratio = tstep / step if step and tstep else None
        peers = [p for p in (t, v) if p.get("infer_b1_ms")]
        best = min(peers, key=lambda p: p["infer_b1_ms"], default={})
        infer = o.get("infer_b1_ms")
        infer_ratio = best["infer_b1_ms"] / infer if infer and best else None
        lines.append(
            f"| {m} | {num(step, '{:.0f}')} | {num(tstep, '{:.0f}')} "
            f"| {ratio_text(train_ratio, round_ratios(t, o, 'train_step_ms', 'train_step_ms'))} "
            f"| {peak_share(o, peak)} | {num(infer)} | {num(t.get('infer_b1_ms'))} "
            f"| {num(v.get('infer_b1_ms'))} "
            f"| {ratio_text(infer_ratio, round_ratios(best, o, 'infer_b1_ms', 'infer_b1_ms'))} |")
    begin, end = "<!-- bench:begin -->", "<!-- bench:end -->"
    with open(path) as fh:
        text = fh.read()
    if begin not in text or end not in text:
        raise SystemExit(f"make_results.py: {path} has no {begin} ... {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(head + begin + "\n" + "\n".join(lines) + "\n" + end + tail)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
