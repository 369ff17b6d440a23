#!/usr/bin/env python3
"""PyTorch reference for sdlstm-bench: the same LM training steps (embedding, 2-layer nn.LSTM,
linear, cross-entropy, global-norm clip, SGD) at the same shapes, one JSON line per configuration.

    OMP_WAIT_POLICY=PASSIVE python3 bench/pytorch_reference.py [--threads 2] [--rounds 12]

Policies: standard dropout (nn.Dropout on the non-recurrent sites; nn.LSTM cannot drop the
recurrent input) and structured dropout written by hand (one (T, 1, D) mask per window broadcast
over the batch, new for every step), which is what a PyTorch user would write: it zeroes the same
columns but cannot skip their work. Variants are interleaved round by round; medians reported.
"""
import argparse
import ctypes
import json
import random
import resource
import statistics
import time

import torch
import torch.nn as nn

SHAPES = {
    "ptb-medium": dict(hidden=650, layers=2, vocab=10000, batch=20, bptt=35, p=0.5),
    "ptb-large": dict(hidden=1500, layers=2, vocab=10000, batch=20, bptt=35, p=0.65),
}


class LM(nn.Module):
    """Single-layer nn.LSTMs stacked by hand, so that dropout sits between the layers as in
    Zaremba et al. (nn.LSTM's own `dropout` argument cannot express the structured mask)."""

    def __init__(self, vocab, hidden, layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(nn.LSTM(hidden, hidden) for _ in range(layers))
        self.decoder = nn.Linear(hidden, vocab)
        for p in self.parameters():
            nn.init.uniform_(p, -0.05, 0.05)

    def forward(self, x, drop):
        h = drop(self.embedding(x))
        for layer in self.layers:
            h, _ = layer(h)
            h = drop(h)
        return self.decoder(h)


def structured(p):
    def drop(x):
        t, _, d = x.shape
        keep = (torch.rand(t, 1, d) >= p).to(x.dtype) / (1 - p)
        return x * keep
    return drop


def blas_core():
    """The BLAS this process runs torch's matmuls on, from its loaded libraries: OpenBLAS's core
    (through libblas.so.3 on Debian) or the library's name."""
    torch.ones(64, 64) @ torch.ones(64, 64)
    libs = {line.split()[-1] for line in open("/proc/self/maps") if ".so" in line}
    for lib in sorted(libs):
        if "openblas" in lib:
            l = ctypes.CDLL(lib)
            l.openblas_get_corename.restype = ctypes.c_char_p
            return "OpenBLAS " + l.openblas_get_corename().decode()
    return next((lib.rsplit("/", 1)[-1] for lib in sorted(libs) if "blas" in lib or "mkl" in lib), "unknown")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--shapes", default="ptb-medium,ptb-large")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    core = blas_core()
    for name in args.shapes.split(","):
        s = SHAPES[name]
        model = LM(s["vocab"], s["hidden"], s["layers"])
        opt = torch.optim.SGD(model.parameters(), lr=1.0)
        x = torch.randint(0, s["vocab"], (s["bptt"], s["batch"]))
        y = torch.randint(0, s["vocab"], (s["bptt"], s["batch"]))
        variants = {"standard": nn.Dropout(s["p"]), "structured": structured(s["p"])}
        times = {k: [] for k in variants}
        for r in range(2 + args.rounds):
            for k in random.sample(list(variants), len(variants)):
                start = time.perf_counter()
                logits = model(x, variants[k])
                loss = nn.functional.cross_entropy(logits.view(-1, s["vocab"]), y.view(-1))
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 0.25)
                opt.step()
                if r >= 2:
                    times[k].append(time.perf_counter() - start)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        for k, ts in times.items():
            ms = statistics.median(ts) * 1000
            print(json.dumps({"framework": "pytorch " + torch.__version__, "model": name, "policy": k, "sites": "NR",
                              "p": s["p"], "batch": s["batch"], "bptt": s["bptt"], "threads": args.threads,
                              "blas_core": core, "ms_per_step": round(ms, 2), "words_per_s": round(s["batch"] * s["bptt"] / ms * 1000, 1),
                              "peak_rss_mb": round(rss, 1), "steps": len(ts)}), flush=True)


if __name__ == "__main__":
    main()
