#!/usr/bin/env python3
"""PyTorch peer of unetsrnn's six models, for numerical parity and speed comparison.

The graphs are the library's (include/unetsrnn/models/models.hpp, blocks.hpp) op for op: the same
concatenation orders, the U-Net2D-Res level-4 skip quirk (the whole level-4 block output), the CR-UNet
Spatial RNN skips on levels 3 (L = 32) and 2 (L = 64), the same parameter names in the same order
(named_parameters() equals the library's parameters()). Run it with a python that has torch (Debian:
python3-torch, i.e. /usr/bin/python3).

The Spatial RNN is the original layer's *seed* rule computed literally, as a user of the original would
run it: for each direction d in (right, left, down, up), L sequential steps h_k = relu(w_d * S_d h_{k-1}),
h_0 = x, y_d = x + sum_k h_k, S_d a one-pixel zero-filled shift (the original uses a masked depthwise
1x3 / 3x1 convolution per step; a shift is the same arithmetic without the two dead taps).

Modes
  parity --model M --weights W --input X --dlogits G --out O [--threads T]
      Loads W (the library's .weights format, checked name by name and shape by shape), runs the forward
      pass on X and the backward pass of loss = sum(logits * G), and writes O.
  srnn --input X --srnn-weight W --length L --dy G --out O
      The Spatial RNN layer alone (seed rule, ReLU, concat): X (N, C, H, W), W (4, C, 1, 1); writes y,
      dL/dx and dL/dW for loss = sum(y * G).
  bench-srnn [--batch 2 --height 160 --width 192 --base 32 --threads T --steps S --warmup K]
      Times CR-UNet-Res's two SRNN skip links alone (seed SRNN + 1x1 conv + ReLU, forward and backward
      with the input gradient) at their levels' shapes: level 3 (4*base channels, L = 32) and level 2
      (2*base channels, L = 64). Prints one line of JSON.
  jobs FILE
      Runs several parity / srnn jobs in one process (one line of FILE per job, holding that mode's
      arguments, e.g. "parity --model unet2d_lw --weights ..."), paying the torch import once.
  bench --model M [--batch 2 --height 160 --width 192 --threads T --steps S --warmup K --infer-batch 8]
      Times a training step (forward, BCE-with-logits mean loss, backward, Adam step): median of S steps
      after K warm-up steps; inference latency (batch 1) and throughput (--infer-batch). Prints one line
      of JSON.
  bench-openvino --model M [--height 160 --width 192 --threads T --steps S --warmup K --infer-batch 8
                 --onnx FILE]
      The same graph exported to ONNX (torch.onnx, TorchScript exporter, batch dimension dynamic) and
      run by OpenVINO on the CPU in float32 (INFERENCE_PRECISION_HINT f32: no bf16 even where the CPU
      has it), one stream, T threads: inference latency (batch 1) and throughput (--infer-batch), and
      the largest difference from PyTorch's logits on the same input. Needs the openvino and onnx
      packages (a virtual environment: pip install torch onnx openvino). Prints one line of JSON.

Files (all little-endian)
  tensor file (X, G):  4 x u32 dims N, C, H, W, then N*C*H*W float32 in NCHW order.
  parity output (O):   magic b"USRNNP\\0\\0", u32 count T, then T times: u32 element count, float32 data.
                       Tensor 0 is the logits (N, 1, H, W); tensors 1.. are the gradients of the
                       parameters in parameters() order, each flattened in the library's layout.
"""
import argparse
import json
import resource
import shlex
import statistics
import struct
import sys
import time
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F

LOW, HIGH = 8, 32


# ------------------------------------------------------------------------------------------ blocks
class Conv(nn.Module):
    """'Same' kxk convolution + bias, ReLU unless relu=False."""

    def __init__(self, cin, cout, k=3, relu=True):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.pad, self.relu = k // 2, relu

    def forward(self, x):
        y = F.conv2d(x, self.weight, self.bias, padding=self.pad)
        return F.relu(y) if self.relu else y


class Up(nn.Module):
    """2x2 stride-2 transposed convolution + bias, no activation; weight (Cin, Cout, 2, 2)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(cin, cout, 2, 2))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, self.bias, stride=2)


class DoubleConv(nn.Module):
    def __init__(self, cin, f):
        super().__init__()
        self.conv1, self.conv2 = Conv(cin, f), Conv(f, f)
        self.out_channels = f

    def forward(self, x):
        y = self.conv2(self.conv1(x))
        return y, y  # (block output, skip feature)


class ResBlock(nn.Module):
    """a = conv(t); b = conv(cat(t, a)); output cat(t, b); skip feature b."""

    def __init__(self, cin, f):
        super().__init__()
        self.conv_a, self.conv_b = Conv(cin, f), Conv(cin + f, f)
        self.out_channels = cin + f

    def forward(self, t):
        a = self.conv_a(t)
        b = self.conv_b(torch.cat([t, a], 1))
        return torch.cat([t, b], 1), b


def shift(x, direction):
    """One-pixel shift with zero fill: right (S x)[i, j] = x[i, j-1], left x[i, j+1], down x[i-1, j],
    up x[i+1, j]."""
    if direction == 0:
        return F.pad(x[..., :, :-1], (1, 0))
    if direction == 1:
        return F.pad(x[..., :, 1:], (0, 1))
    if direction == 2:
        return F.pad(x[..., :-1, :], (0, 0, 1, 0))
    return F.pad(x[..., 1:, :], (0, 0, 0, 1))


class SeedSRNN(nn.Module):
    """The original Spatial RNN (seed rule, ReLU, concat merge [right, left, down, up]); weight
    (4, C, 1, 1)."""

    def __init__(self, c, length):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4, c, 1, 1))
        self.length = length

    def forward(self, x):
        outs = []
        for d in range(4):
            w = self.weight[d]  # (C, 1, 1), broadcast over (N, C, H, W)
            h, y = x, x
            for _ in range(self.length):
                h = F.relu(w * shift(h, d))
                y = y + h
            outs.append(y)
        return torch.cat(outs, 1)


class SRNNSkip(nn.Module):
    """CR-UNet skip link: seed SRNN (4C channels), then 1x1 conv + bias + ReLU."""

    def __init__(self, c, cout, length):
        super().__init__()
        self.srnn = SeedSRNN(c, length)
        self.conv = Conv(4 * c, cout, k=1)

    def forward(self, x):
        return self.conv(self.srnn(x))


class DecoderLevel(nn.Module):
    """u = up(h) with f filters; c = cat(u, skip); output = body(c)."""

    def __init__(self, cin, skip, f, body):
        super().__init__()
        self.up = Up(cin, f)
        self.body = body(f + skip, f)
        self.out_channels = self.body.out_channels

    def forward(self, h, skip):
        return self.body(torch.cat([self.up(h), skip], 1))[0]


# ------------------------------------------------------------------------------------------ models
class UNetFamily(nn.Module):
    """The three model families of models.hpp; `kind` is 'unet2d', 'unet2d_res' or 'crunet_res'.
    Parameters are registered in the library's collect() order: enc1..enc5, [skip3, skip2],
    dec4..dec1, out."""

    def __init__(self, kind, f, in_channels=3):
        super().__init__()
        self.kind = kind
        block = DoubleConv if kind == "unet2d" else ResBlock
        channels = in_channels
        encoder = []
        for level in range(5):
            b = block(channels, f << level)
            encoder.append(b)
            channels = b.out_channels
        self.enc1, self.enc2, self.enc3, self.enc4, self.enc5 = encoder
        if kind == "crunet_res":
            self.skip3 = SRNNSkip(4 * f, 4 * f, 32)
            self.skip2 = SRNNSkip(2 * f, 2 * f, 64)
        # Skip channels per decoder level 4..1 (level 4 of U-Net2D-Res takes cat(t4, b4)).
        skips = [8 * f, 4 * f, 2 * f, f]
        if kind == "unet2d_res":
            skips[0] = self.enc4.out_channels
        decoders = []
        for i, level in enumerate((4, 3, 2, 1)):
            d = DecoderLevel(channels, skips[i], f << (level - 1), block)
            decoders.append(d)
            channels = d.out_channels
        self.dec4, self.dec3, self.dec2, self.dec1 = decoders
        self.out = Conv(channels, 1, k=1, relu=False)

    def forward(self, x):
        outputs, skips = [], []
        h = x
        for level, enc in enumerate((self.enc1, self.enc2, self.enc3, self.enc4, self.enc5)):
            if level:
                h = F.max_pool2d(h, 2)
            h, s = enc(h)
            outputs.append(h)
            skips.append(s)
        skip4 = outputs[3] if self.kind == "unet2d_res" else skips[3]
        skip3, skip2 = skips[2], skips[1]
        if self.kind == "crunet_res":
            skip3, skip2 = self.skip3(skip3), self.skip2(skip2)
        h = self.dec4(h, skip4)
        h = self.dec3(h, skip3)
        h = self.dec2(h, skip2)
        h = self.dec1(h, skips[0])
        return self.out(h)


MODELS = {
    "unet2d_lw": ("unet2d", LOW),
    "unet2d_hw": ("unet2d", HIGH),
    "unet2d_res_lw": ("unet2d_res", LOW),
    "unet2d_res_hw": ("unet2d_res", HIGH),
    "crunet_res_lw": ("crunet_res", LOW),
    "crunet_res_hw": ("crunet_res", HIGH),
}


def make_model(name):
    if name not in MODELS:
        sys.exit(f"unknown model '{name}'; valid models: {', '.join(MODELS)}")
    kind, f = MODELS[name]
    return UNetFamily(kind, f)


# ------------------------------------------------------------------------------------------ files
def read_tensor(path):
    with open(path, "rb") as fh:
        data = fh.read()
    dims = struct.unpack_from("<4I", data, 0)
    count = dims[0] * dims[1] * dims[2] * dims[3]
    if len(data) != 16 + 4 * count:
        sys.exit(f"{path}: {len(data)} bytes, expected {16 + 4 * count} for dims {dims}")
    return torch.frombuffer(bytearray(data[16:]), dtype=torch.float32).reshape(dims)


def load_weights(model, name, path):
    """Reads the library's .weights file (see include/unetsrnn/io/weights.hpp) into `model`, checking
    the magic, version, CRC32, model name, and every tensor's name and element count."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:8] != b"USRNNW\0\0":
        sys.exit(f"{path}: not a unetsrnn weights file")
    if zlib.crc32(data[:-4]) != struct.unpack_from("<I", data, len(data) - 4)[0]:
        sys.exit(f"{path}: CRC32 mismatch")
    pos = 8
    version, length = struct.unpack_from("<II", data, pos)
    pos += 8
    if version != 1:
        sys.exit(f"{path}: format version {version}, expected 1")
    file_model = data[pos:pos + length].decode()
    pos += length
    if file_model != name:
        sys.exit(f"{path}: written for model '{file_model}', not '{name}'")
    (count,) = struct.unpack_from("<I", data, pos)
    pos += 4
    params = list(model.named_parameters())
    if count != len(params):
        sys.exit(f"{path}: {count} tensors, the peer model has {len(params)}")
    with torch.no_grad():
        for pname, p in params:
            (length,) = struct.unpack_from("<I", data, pos)
            pos += 4
            tname = data[pos:pos + length].decode()
            pos += length
            rank, n, c, h, w = struct.unpack_from("<5I", data, pos)
            pos += 20
            if tname != pname or rank != 4 or n * c * h * w != p.numel():
                sys.exit(f"{path}: tensor '{tname}' {(n, c, h, w)} does not match the peer's "
                         f"'{pname}' {tuple(p.shape)}")
            values = torch.frombuffer(bytearray(data[pos:pos + 4 * p.numel()]), dtype=torch.float32)
            pos += 4 * p.numel()
            p.copy_(values.reshape(p.shape))
    if pos != len(data) - 4:
        sys.exit(f"{path}: {len(data) - 4 - pos} unexpected bytes before the CRC32")


def write_outputs(path, tensors):
    with open(path, "wb") as fh:
        fh.write(b"USRNNP\0\0")
        fh.write(struct.pack("<I", len(tensors)))
        for t in tensors:
            flat = t.detach().contiguous().reshape(-1).to(torch.float32)
            fh.write(struct.pack("<I", flat.numel()))
            fh.write(flat.numpy().astype("<f4").tobytes())


# ------------------------------------------------------------------------------------------ modes
def parity(args):
    model = make_model(args.model)
    load_weights(model, args.model, args.weights)
    x, g = read_tensor(args.input), read_tensor(args.dlogits)
    logits = model(x)
    if logits.shape != g.shape:
        sys.exit(f"dlogits shape {tuple(g.shape)} differs from the logits' {tuple(logits.shape)}")
    (logits * g).sum().backward()
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]
    write_outputs(args.out, [logits] + grads)


def srnn_parity(args):
    x, w, g = read_tensor(args.input), read_tensor(args.srnn_weight), read_tensor(args.dy)
    layer = SeedSRNN(x.shape[1], args.length)
    with torch.no_grad():
        layer.weight.copy_(w)
    x.requires_grad_(True)
    y = layer(x)
    (y * g).sum().backward()
    write_outputs(args.out, [y, x.grad, layer.weight.grad])


def median_ms(fn, steps, warmup, sync=lambda: None):
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        sync()  # GPU work is asynchronous: time until it has finished
        times.append(1e3 * (time.perf_counter() - start))
    return statistics.median(times), times


def bench(args):
    torch.manual_seed(0)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        # float32 arithmetic like ours, unless --tf32 asks for cuDNN's TensorFloat-32 convolutions.
        torch.backends.cudnn.allow_tf32 = args.tf32
        torch.backends.cuda.matmul.allow_tf32 = args.tf32
        torch.backends.cudnn.benchmark = True
    model = make_model(args.model).to(device)
    with torch.no_grad():  # any reasonable weights: the timing does not depend on them
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    x = torch.rand(args.batch, 3, args.height, args.width, device=device)
    target = (torch.rand(args.batch, 1, args.height, args.width, device=device) > 0.5).float()
    opt = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.9, 0.999), eps=1e-8)

    def train_step():
        opt.zero_grad(set_to_none=False)
        loss = F.binary_cross_entropy_with_logits(model(x), target)
        loss.backward()
        opt.step()

    train_ms, train_all = median_ms(train_step, args.steps, args.warmup, sync)
    model.eval()
    x1 = x[:1].clone()
    xb = torch.rand(args.infer_batch, 3, args.height, args.width, device=device)
    with torch.inference_mode():
        infer_ms, infer_all = median_ms(lambda: model(x1), args.steps, args.warmup, sync)
        batch_ms, _ = median_ms(lambda: model(xb), max(1, args.steps // 2), 1, sync)
    print(json.dumps({
        "impl": "pytorch",
        "torch": torch.__version__,
        "model": args.model,
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "tf32": bool(args.tf32) if device.type == "cuda" else False,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "height": args.height,
        "width": args.width,
        "params": sum(p.numel() for p in model.parameters()),
        "train_step_ms": train_ms,
        "train_step_ms_min": min(train_all),
        "train_step_ms_all": train_all,
        "infer_b1_ms": infer_ms,
        "infer_b1_ms_min": min(infer_all),
        "infer_batch": args.infer_batch,
        "infer_batch_ms": batch_ms,
        "infer_batch_img_per_s": 1e3 * args.infer_batch / batch_ms,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "gpu_peak_mib": (torch.cuda.max_memory_allocated() / 2**20
                         if device.type == "cuda" else None),
    }))


def bench_openvino(args):
    import os
    import tempfile
    import warnings

    import numpy as np
    import openvino as ov

    torch.manual_seed(0)
    model = make_model(args.model)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.05)
    model.eval()
    x1 = torch.rand(1, 3, args.height, args.width)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.onnx or os.path.join(tmp, f"{args.model}.onnx")
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on constant folding
            torch.onnx.export(model, (x1,), path, input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                              opset_version=17, dynamo=False)
        core = ov.Core()
        graph = core.read_model(path)
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": args.threads,
              "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"}
    one = core.compile_model(graph, "CPU", config).create_infer_request()
    x1_np = x1.numpy()
    with torch.inference_mode():
        expected = model(x1).numpy()
    got = one.infer({0: x1_np})[0]
    diff = float(np.max(np.abs(got - expected)))
    infer_ms, infer_all = median_ms(lambda: one.infer({0: x1_np}), args.steps, args.warmup)
    xb = np.random.default_rng(0).random((args.infer_batch, 3, args.height, args.width),
                                         dtype=np.float32)
    batched = core.compile_model(graph, "CPU", config).create_infer_request()
    batch_ms, _ = median_ms(lambda: batched.infer({0: xb}), max(1, args.steps // 2), 1)
    print(json.dumps({
        "impl": "openvino",
        "openvino": ov.get_version(),
        "torch": torch.__version__,
        "model": args.model,
        "precision": "f32",
        "threads": args.threads,
        "height": args.height,
        "width": args.width,
        "infer_b1_ms": infer_ms,
        "infer_b1_ms_min": min(infer_all),
        "infer_batch": args.infer_batch,
        "infer_batch_ms": batch_ms,
        "infer_batch_img_per_s": 1e3 * args.infer_batch / batch_ms,
        "max_abs_diff_vs_torch": diff,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }))


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("parity")
    p.add_argument("--model", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--dlogits", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("srnn")
    s.add_argument("--input", required=True)
    s.add_argument("--srnn-weight", required=True)
    s.add_argument("--length", type=int, required=True)
    s.add_argument("--dy", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--threads", type=int, default=1)
    b = sub.add_parser("bench")
    b.add_argument("--model", required=True)
    b.add_argument("--batch", type=int, default=2)
    b.add_argument("--height", type=int, default=160)
    b.add_argument("--width", type=int, default=192)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--steps", type=int, default=5)
    b.add_argument("--warmup", type=int, default=1)
    b.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    b.add_argument("--tf32", action="store_true", help="on cuda: allow TensorFloat-32 (default off)")
    b.add_argument("--infer-batch", type=int, default=8)
    r = sub.add_parser("bench-srnn")
    r.add_argument("--batch", type=int, default=2)
    r.add_argument("--height", type=int, default=160)
    r.add_argument("--width", type=int, default=192)
    r.add_argument("--base", type=int, default=HIGH)
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--steps", type=int, default=5)
    r.add_argument("--warmup", type=int, default=1)
    o = sub.add_parser("bench-openvino")
    o.add_argument("--model", required=True)
    o.add_argument("--height", type=int, default=160)
    o.add_argument("--width", type=int, default=192)
    o.add_argument("--threads", type=int, default=1)
    o.add_argument("--steps", type=int, default=5)
    o.add_argument("--warmup", type=int, default=1)
    o.add_argument("--infer-batch", type=int, default=8)
    o.add_argument("--onnx", help="also keep the exported graph in this file")
    j = sub.add_parser("jobs")
    j.add_argument("file")
    j.add_argument("--threads", type=int, default=1)
    return parser


def run(args, parser):
    torch.set_num_threads(args.threads)
    if args.mode == "parity":
        parity(args)
    elif args.mode == "srnn":
        srnn_parity(args)
    elif args.mode == "jobs":
        failed = 0
        with open(args.file) as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:  # a failing job must not hide the others' results
                    job = parser.parse_args(shlex.split(line))
                    job.threads = args.threads
                    run(job, parser)
                except (SystemExit, Exception) as e:  # sys.exit() carries the reason
                    failed += 1
                    print(f"job failed: {line.strip()}\n  {e}", file=sys.stderr)
        if failed:
            sys.exit(f"{failed} job(s) failed")
    elif args.mode == "bench-srnn":
        bench_srnn(args)
    elif args.mode == "bench-openvino":
        bench_openvino(args)
    else:
        bench(args)


def bench_srnn(args):
    torch.manual_seed(0)
    results = []
    for level, length in ((3, 32), (2, 64)):
        c = args.base << (level - 1)
        shape = (args.batch, c, args.height >> (level - 1), args.width >> (level - 1))
        skip = SRNNSkip(c, c, length)
        with torch.no_grad():
            skip.srnn.weight.uniform_(-0.05, 0.05)  # the original's initialiser
            skip.conv.weight.normal_(0.0, (2.0 / (4 * c)) ** 0.5)
        x = torch.rand(shape, requires_grad=True)
        dy = torch.rand(shape) - 0.5

        def step():
            x.grad = None
            skip.zero_grad(set_to_none=False)
            skip(x).backward(dy)

        ms, _ = median_ms(step, args.steps, args.warmup)
        results.append({"level": level, "length": length, "shape": list(shape), "ms": ms})
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "srnn_skip": results}))


def main():
    parser = build_parser()
    run(parser.parse_args(), parser)


if __name__ == "__main__":
    main()
