#!/usr/bin/env python3
"""Step-time model of data-parallel training of CR-UNet-Res HW (docs/distributed.md).

A step is forward (t_c / 3) then backward (2 t_c / 3). The backward pass finishes the parameters
level by level (out, dec1 .. dec4 with their skip links, then enc5 .. enc1), each of the 9 levels
taking the same time (a level's work, H W C^2, is the same at every level: the resolution halves
as the filters double). The gradients are packed last first into 4 MiB buckets (GradientReducer);
a bucket is ready when its last parameter is finished, and the buckets are summed one after
another, in layout order, each by a ring all-reduce:

    t_bucket = 2 (N - 1) / N * bytes / bandwidth + 2 (N - 1) * alpha

Without overlap the first bucket starts after the backward pass; with it, each bucket starts when
it is ready and the one before it is done. The step ends when the backward pass and the last sum
are done. Prints the markdown tables of docs/distributed.md.
"""

PARAMETERS = [  # crunet_res_hw, tests/data/model_parameters.txt, summed per part
    ("enc1", 11008), ("enc2", 77312), ("enc3", 375808), ("enc4", 1636352), ("enc5", 6811648),
    ("skip3", 66176), ("skip2", 16704), ("dec4", 3968768), ("dec3", 1130880), ("dec2", 282816),
    ("dec1", 70752), ("out", 97)]
# The level of the backward pass after which each part is final (of 9 equal levels).
FINISHED_AFTER = {"out": 0, "dec1": 1, "dec2": 2, "skip2": 2, "dec3": 3, "skip3": 3, "dec4": 4,
                  "enc5": 5, "enc4": 6, "enc3": 7, "enc2": 8, "enc1": 9}
BUCKET_FLOATS = 1 << 20
ALPHA = 30e-6  # s per latency-bound phase (TCP)
BANDWIDTHS = [("10 Gb/s", 1.25e9), ("25 Gb/s", 3.125e9), ("100 Gb/s", 12.5e9)]
COMPUTE = [("CPU", 1.25), ("GPU", 13.7e-3)]  # s per step, batch 2 per machine (README)
RANKS = [2, 4, 8, 16, 64]


def buckets():
    total = sum(n for _, n in PARAMETERS)
    count = (total + BUCKET_FLOATS - 1) // BUCKET_FLOATS
    ready = [0.0] * count
    offset = 0
    for name, n in reversed(PARAMETERS):  # packed last first
        for b in range(offset // BUCKET_FLOATS, (offset + n - 1) // BUCKET_FLOATS + 1):
            ready[b] = max(ready[b], FINISHED_AFTER[name] / 9.0)
        offset += n
    floats = [min(total, (b + 1) * BUCKET_FLOATS) - b * BUCKET_FLOATS for b in range(count)]
    return ready, floats


def step(t_c, ranks, bandwidth, overlap):
    """(step time, all-reduce time) in seconds."""
    ready, floats = buckets()
    t_backward = 2.0 * t_c / 3.0
    done = comm = 0.0
    for r, n in zip(ready, floats):
        t = 2.0 * (ranks - 1) / ranks * 4 * n / bandwidth + 2 * (ranks - 1) * ALPHA
        comm += t
        done = max(done, r * t_backward if overlap else t_backward) + t
    return t_c / 3.0 + max(t_backward, done), comm


def main():
    ready, floats = buckets()
    print(f"{len(floats)} buckets; ready after this fraction of the backward pass:",
          " ".join(f"{r:.2f}" for r in ready))
    print("\n| N | " + " | ".join(b for b, _ in BANDWIDTHS) + " |")
    print("|---" * (len(BANDWIDTHS) + 1) + "|")
    for n in RANKS:
        print(f"| {n} | " + " | ".join(f"{step(1.0, n, bw, False)[1] * 1e3:.1f} ms"
                                      for _, bw in BANDWIDTHS) + " |")
    for device, t_c in COMPUTE:
        print(f"\n{device}, t_c = {t_c * 1e3:g} ms: exposed all-reduce (ms) and speed-up "
              "S(N) = N t_c / step, without / with overlap")
        print("\n| N | " + " | ".join(b for b, _ in BANDWIDTHS) + " |")
        print("|---" * (len(BANDWIDTHS) + 1) + "|")
        for n in RANKS:
            cells = []
            for _, bw in BANDWIDTHS:
                plain, _ = step(t_c, n, bw, False)
                hidden, _ = step(t_c, n, bw, True)
                cells.append(f"{(plain - t_c) * 1e3:.1f} / {(hidden - t_c) * 1e3:.1f} ms, "
                             f"S {n * t_c / plain:.2f} / {n * t_c / hidden:.2f}")
            print(f"| {n} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
