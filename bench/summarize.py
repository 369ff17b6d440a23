#!/usr/bin/env python3
"""Turns the JSON lines of `make bench` (stdin) into the markdown tables of bench/compare.md."""
import json
import sys

rows = [json.loads(line) for line in sys.stdin if line.startswith("{")]
kernels = [r for r in rows if "kernel" in r]
models = [r for r in rows if "model" in r and "framework" not in r]
torch = {(r["model"], r["policy"]): r for r in rows if "framework" in r}

def machine(r):
    return f"{r['cpu']}, kernels {r['isa']}, OpenBLAS core {r['blas_core']}"


for r in rows:
    if "microkernel" in r:
        print(f"- Micro-kernel {r['microkernel']} ({machine(r)}), cache-resident data: C {r['c_gflops']:.1f} GFLOP/s, "
              f"the 5 × 16 block in Swift SIMD {r['swift_simd_gflops']:.1f} GFLOP/s ({r['c_over_swift']:.1f}×).")
print()
for core in sorted({(r["isa"], r["blas_core"]) for r in kernels}):
    print(f"Kernels {core[0]} against dense OpenBLAS ({core[1]} core), masked operand, T 35, B 20, D 650; "
          "rate = dense ms × keep / ms (1.0: a kept multiply-add costs what OpenBLAS's dense one does):")
    print()
    print("| kernel | N | keep | threads | ms | dense ms | speedup | ideal | rate_vs_dense |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in kernels:
        if (r["isa"], r["blas_core"]) == core:
            print(f"| {r['kernel']} | {r['N']} | {r['keep']} | {r['threads']} | {r['ms']:.1f} | {r['dense_ms']:.1f} "
                  f"| {r['speedup']:.2f}× | {r['ideal']:.2f}× | {r['rate_vs_dense']:.2f} |")
    print()
if models:
    print(f"Training steps ({machine(models[0])}), structured against own standard dropout at the same p:")
    print()
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
