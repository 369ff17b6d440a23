#!/usr/bin/env python3
"""Turns the JSON lines of `make bench` (stdin) into the markdown tables of bench/compare.md."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
kernels = [r for r in rows if "kernel" in r]
models = [r for r in rows if "model" in r and "framework" not in r]
torch = {(r["model"], r["policy"]): r for r in rows if "framework" in r}

for r in rows:
    if "microkernel" in r:
        print(f"Micro-kernel {r['microkernel']}, on cache-resident data: C with AVX2 + FMA "
              f"{r['c_avx2_gflops']:.1f} GFLOP/s, the same block in Swift SIMD {r['swift_simd_gflops']:.1f} GFLOP/s "
              f"({r['c_over_swift']:.1f}×).")
        print()
if kernels:
    print("| kernel | N | keep | threads | masked ms | dense OpenBLAS ms | speedup | ideal |")
    print("|---|---|---|---|---|---|---|---|")
    for r in kernels:
        print(f"| {r['kernel']} | {r['N']} | {r['keep']} | {r['threads']} | {r['ms']:.1f} | {r['dense_ms']:.1f} "
              f"| {r['ratio']:.2f}× | {r['ideal']:.2f}× |")
    print()
if models:
    print("| model | policy | sites | p | threads | ms/step | words/s | vs own standard | vs PyTorch standard "
          "| skipped MACs | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in models:
        ref = torch.get((r["model"], "standard"))
        vs_torch = f"{ref['ms_per_step'] / r['ms_per_step']:.2f}×" if ref else "—"
        print(f"| {r['model']} | {r['policy']} | {r['sites']} | {r['p']} | {r['threads']} | {r['ms_per_step']:.0f} "
              f"| {r['words_per_s']:.0f} | {r['speedup_vs_standard']:.2f}× | {vs_torch} "
              f"| {100 * r['skipped_macs_fraction']:.0f}% | {r['peak_rss_mb']:.0f} |")
    print()
for (model, policy), r in sorted(torch.items()):
    print(f"- PyTorch {r['framework'].split()[-1]} {model} {policy}: {r['ms_per_step']:.0f} ms/step, "
          f"{r['words_per_s']:.0f} words/s, peak RSS {r['peak_rss_mb']:.0f} MB ({r['threads']} threads)")
