#!/usr/bin/env python3
"""conlleval in Python: scores a CoNLL prediction file exactly as the CoNLL shared tasks' Perl
script `conlleval` (version 2004-01-26) does, written from that script and independent of
sdlstm's own counting (Sources/SDLSTMCore/SpanF1.swift), which it exists to cross-check.

Input: one token per line, the gold tag and the predicted tag as the last two columns, a blank
line (or a line whose first column is -X-) between sentences. IOB1 and IOB2 both work: the
rules below read either.

    tools/conlleval.py predictions.txt           # conlleval's report
    tools/conlleval.py --json predictions.txt    # {"precision": ..., "recall": ..., "f1": ...} in %
    tools/conlleval.py --seqeval predictions.txt # also score with seqeval, if it is installed

Only the standard library is needed.
"""
import argparse
import json
import sys
from collections import defaultdict

BOUNDARY = "-X-"


def split_tag(tag):
    """conlleval's /^([^-]*)-(.*)$/: the prefix before the first '-', the type after it."""
    if "-" in tag:
        prefix, kind = tag.split("-", 1)
        return prefix, kind
    return tag, ""


def end_of_chunk(prev_tag, tag, prev_type, kind):
    """Did a chunk end between the previous word and this one?"""
    return ((prev_tag == "B" and tag == "B") or (prev_tag == "B" and tag == "O") or
            (prev_tag == "I" and tag == "B") or (prev_tag == "I" and tag == "O") or
            (prev_tag == "E" and tag == "E") or (prev_tag == "E" and tag == "I") or
            (prev_tag == "E" and tag == "O") or (prev_tag == "I" and tag == "O") or
            (prev_tag != "O" and prev_tag != "." and prev_type != kind) or
            prev_tag == "]" or prev_tag == "[")


def start_of_chunk(prev_tag, tag, prev_type, kind):
    """Did a chunk start at this word?"""
    return ((prev_tag == "B" and tag == "B") or (prev_tag == "I" and tag == "B") or
            (prev_tag == "O" and tag == "B") or (prev_tag == "O" and tag == "I") or
            (prev_tag == "E" and tag == "E") or (prev_tag == "E" and tag == "I") or
            (prev_tag == "O" and tag == "E") or (prev_tag == "O" and tag == "I") or
            (tag != "O" and tag != "." and prev_type != kind) or
            tag == "[" or tag == "]")


def evaluate(lines):
    """conlleval's counts over an iterable of lines."""
    c = {"correct_chunk": 0, "found_correct": 0, "found_guessed": 0, "correct_tags": 0, "tokens": 0,
         "per_type": defaultdict(lambda: [0, 0, 0])}  # type -> [correct, found correct, found guessed]
    in_correct = False
    last_correct, last_correct_type = "O", ""
    last_guessed, last_guessed_type = "O", ""
    columns = None
    for number, line in enumerate(lines, 1):
        features = line.split()
        if columns is None and features:
            columns = len(features)
        elif features and len(features) != columns:
            sys.exit(f"conlleval.py: line {number}: {len(features)} columns, expected {columns}")
        if not features or features[0] == BOUNDARY:
            features = [BOUNDARY, "O", "O"]
        if len(features) < 3:
            sys.exit(f"conlleval.py: line {number}: need a token, a gold tag and a predicted tag")
        guessed, guessed_type = split_tag(features[-1])
        correct, correct_type = split_tag(features[-2])
        first = features[0]
        if first == BOUNDARY:
            guessed = "O"

        correct_ends = end_of_chunk(last_correct, correct, last_correct_type, correct_type)
        guessed_ends = end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if in_correct:
            if correct_ends and guessed_ends and last_guessed_type == last_correct_type:
                in_correct = False
                c["correct_chunk"] += 1
                c["per_type"][last_correct_type][0] += 1
            elif correct_ends != guessed_ends or guessed_type != correct_type:
                in_correct = False
        correct_starts = start_of_chunk(last_correct, correct, last_correct_type, correct_type)
        guessed_starts = start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type)
        if correct_starts and guessed_starts and guessed_type == correct_type:
            in_correct = True
        if correct_starts:
            c["found_correct"] += 1
            c["per_type"][correct_type][1] += 1
        if guessed_starts:
            c["found_guessed"] += 1
            c["per_type"][guessed_type][2] += 1
        if first != BOUNDARY:
            if correct == guessed and guessed_type == correct_type:
                c["correct_tags"] += 1
            c["tokens"] += 1
        last_guessed, last_guessed_type = guessed, guessed_type
        last_correct, last_correct_type = correct, correct_type
    if in_correct:
        c["correct_chunk"] += 1
        c["per_type"][last_correct_type][0] += 1
    return c


def scores(correct, found_correct, found_guessed):
    """Precision, recall and F1 in percent, 0 where conlleval prints 0."""
    precision = 100.0 * correct / found_guessed if found_guessed else 0.0
    recall = 100.0 * correct / found_correct if found_correct else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def report(c, out=sys.stdout):
    """conlleval's report, line for line."""
    p, r, f = scores(c["correct_chunk"], c["found_correct"], c["found_guessed"])
    print(f"processed {c['tokens']} tokens with {c['found_correct']} phrases; "
          f"found: {c['found_guessed']} phrases; correct: {c['correct_chunk']}.", file=out)
    if c["tokens"]:
        print(f"accuracy: {100.0 * c['correct_tags'] / c['tokens']:6.2f}%; precision: {p:6.2f}%; "
              f"recall: {r:6.2f}%; FB1: {f:6.2f}", file=out)
    for kind in sorted(k for k, v in c["per_type"].items() if v[1] or v[2]):
        correct, found_correct, found_guessed = c["per_type"][kind]
        p, r, f = scores(correct, found_correct, found_guessed)
        print(f"{kind:>17}: precision: {p:6.2f}%; recall: {r:6.2f}%; FB1: {f:6.2f}  {found_guessed}", file=out)


def seqeval_f1(lines):
    """seqeval's default (conlleval-compatible) micro F1 in percent, or None without seqeval."""
    try:
        from seqeval.metrics import f1_score
    except ImportError:
        return None
    gold, pred, g, p = [], [], [], []
    for line in list(lines) + [""]:
        features = line.split()
        if not features or features[0] == BOUNDARY:
            if g:
                gold.append(g)
                pred.append(p)
            g, p = [], []
            continue
        g.append(features[-2])
        p.append(features[-1])
    return 100.0 * f1_score(gold, pred)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", nargs="?", help="predictions (default: stdin)")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of the report")
    parser.add_argument("--seqeval", action="store_true", help="also report seqeval's F1 if installed")
    args = parser.parse_args()
    with (open(args.file, encoding="utf-8") if args.file else sys.stdin) as f:
        lines = f.read().splitlines()
    c = evaluate(lines)
    p, r, f1 = scores(c["correct_chunk"], c["found_correct"], c["found_guessed"])
    if args.json:
        result = {"tokens": c["tokens"], "gold_spans": c["found_correct"], "predicted_spans": c["found_guessed"],
                  "correct_spans": c["correct_chunk"], "precision": p, "recall": r, "f1": f1}
        if args.seqeval:
            result["seqeval_f1"] = seqeval_f1(lines)
        print(json.dumps(result))
    else:
        report(c)
        if args.seqeval:
            s = seqeval_f1(lines)
            print("seqeval: not installed" if s is None else f"seqeval FB1: {s:6.2f}")


if __name__ == "__main__":
    main()
