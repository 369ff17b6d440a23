#!/usr/bin/env python3
"""Pictures of the examples' per-epoch JSON lines and of `make bench` output (needs python3-matplotlib).

    tools/plot.py curves OUT.png RUN.jsonl...   # the validation metric per epoch, a line per run
    tools/plot.py kernels OUT.png BENCH.jsonl   # each structured kernel's speedup over dense against p
    tools/plot.py steps OUT.png BENCH.jsonl     # training-step words/s and speedup against p

curves reads the files of the examples' --epoch-json (one JSON line per epoch) and plots the
validation perplexity (sdlstm-lm), dev F1 (sdlstm-ner) or validation perplexity and BLEU
(sdlstm-nmt), each run labelled by its dropout policy. kernels and steps read `make bench`'s JSON lines (build/bench.jsonl):
the kernel rows (speedup of a structured kernel over dense OpenBLAS at keep = 1 - p), and the model
rows of the standard and structured policies with dropout on the non-recurrent sites (the --sweep
over p, with the fixed-p rows at the same p replaced by the sweep's).
"""
import argparse
import json
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on a build machine
import matplotlib.pyplot as plt  # noqa: E402

METRICS = {"lm": [("valid_ppl", "validation perplexity (lower is better)")],
           "ner": [("dev_f1", "dev F1 (%)")],
           "nmt": [("val_ppl", "validation perplexity (lower is better)"), ("val_bleu", "validation BLEU")]}
TITLES = {"lm": "PTB language model", "ner": "CoNLL-2003 NER", "nmt": "Multi30k de-en translation"}


def read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.startswith("{")]


def curves(out, paths):
    runs = [read_lines(p) for p in paths]
    tasks = {r["task"] for run in runs for r in run}
    if len(tasks) != 1 or not tasks <= METRICS.keys():
        sys.exit(f"plot.py: curves needs per-epoch lines of one example task, found {sorted(tasks)}")
    task = tasks.pop()
    metrics = METRICS[task]
    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], metrics):
        for path, run in zip(paths, runs):
            if not run:
                sys.exit(f"plot.py: {path} has no JSON lines")
            r = run[0]
            ax.plot([e["epoch"] for e in run], [e[key] for e in run], marker="o",
                    label=f"{r['policy']} (p {r['p_nr']:g})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.set_title(TITLES[task])
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def kernels(out, path):
    rows = [r for r in read_lines(path) if "kernel" in r and r["keep"] < 1]
    if not rows:
        sys.exit(f"plot.py: {path} has no kernel rows")
    isas = sorted({r["isa"] for r in rows})
    fig, axes = plt.subplots(1, len(isas), figsize=(5.5 * len(isas), 4), squeeze=False, sharey=True)
    for ax, isa in zip(axes[0], isas):
        series = {}
        for r in rows:
            if r["isa"] == isa:
                series.setdefault(f"{r['kernel']} N {r['N']}", []).append((1 - r["keep"], r["speedup"]))
        for name, points in sorted(series.items()):
            points.sort()
            ax.plot([p for p, _ in points], [s for _, s in points], marker="o", label=name)
        ps = [i / 100 for i in range(40, 71)]
        ax.plot(ps, [1 / (1 - p) for p in ps], "k--", label="ideal 1 / (1 - p)")
        core = next(r["blas_core"] for r in rows if r["isa"] == isa)
        ax.set_title(f"{isa} kernels vs dense OpenBLAS ({core})")
        ax.set_xlabel("dropout p (kept share 1 - p): the p the bench measured")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("speedup over dense (×)")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def steps(out, path):
    rows = {}
    for r in read_lines(path):
        if "model" in r and "framework" not in r and r.get("sites") == "NR" and \
                r["policy"] in ("standard", "structured"):
            rows[(r["model"], r["policy"], r["p"])] = r  # the sweep comes last and wins
    models = sorted({m for m, _, _ in rows if sum(1 for k in rows if k[0] == m) > 4})
    if not models:
        sys.exit(f"plot.py: {path} has no --sweep rows")
    fig, axes = plt.subplots(2, len(models), figsize=(5.5 * len(models), 7), squeeze=False, sharex=True)
    for col, model in enumerate(models):
        for policy in ("standard", "structured"):
            pts = sorted((p, r) for (m, pol, p), r in rows.items() if m == model and pol == policy)
            axes[0][col].plot([p for p, _ in pts], [r["words_per_s"] for _, r in pts], marker="o", label=policy)
        pts = sorted((p, r) for (m, pol, p), r in rows.items() if m == model and pol == "structured")
        axes[1][col].plot([p for p, _ in pts], [r["speedup_vs_standard"] for _, r in pts], marker="o",
                          label="structured / standard")
        axes[1][col].axhline(1, color="k", lw=0.8)
        any_row = pts[0][1]
        axes[0][col].set_title(f"{model} training step ({any_row['threads']} threads, {any_row['isa']})")
        axes[0][col].set_ylabel("words/s")
        axes[1][col].set_ylabel("speedup (×)")
        axes[1][col].set_xlabel("dropout p on the non-recurrent sites")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
            ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kind", choices=["curves", "kernels", "steps"])
    ap.add_argument("out", help="the PNG to write")
    ap.add_argument("inputs", nargs="+", help="JSON-lines files")
    a = ap.parse_args()
    if a.kind == "curves":
        curves(a.out, a.inputs)
    elif len(a.inputs) != 1:
        sys.exit(f"plot.py: {a.kind} reads one make bench output")
    elif a.kind == "kernels":
        kernels(a.out, a.inputs[0])
    else:
        steps(a.out, a.inputs[0])


if __name__ == "__main__":
    main()
