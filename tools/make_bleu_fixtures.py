"""sacreBLEU's own results for Tests/SDLSTMCoreTests/Fixtures/bleu_cases.json.

The Swift tests check sdlstm's corpus BLEU against these: every corpus is scored by sacreBLEU
(`BLEU(lowercase=..., tokenize=...).corpus_score`, defaults otherwise: "exp" smoothing, 4-grams,
no effective order) under the four settings lowercase off/on x tokenize 13a/none. The file holds
  corpora        name -> hypotheses and references (one reference per sentence)
  cases          corpus, lowercase, tokenize, and sacreBLEU's score, precisions, bp, ratio,
                 sys_len, ref_len, counts and totals
  tokenizations  single strings and the tokens sacreBLEU counts for them (after `str.lower()`
                 when lowercase, `str.rstrip()`, the tokeniser and `str.split()`)
  lowercase      every code point that Python's `str.lower()` changes, with its lowercase form
The corpora are perturbed sentences of the Multi30k test set (English and German), random strings
heavy in punctuation, digits, HTML entities, Unicode whitespace and non-ASCII letters, and short
sentences that exercise smoothing, clipping and the brevity penalty.

Run from the repository root with sacreBLEU 2.6.0 installed, e.g.
    python3 -m venv /tmp/bleu-venv && /tmp/bleu-venv/bin/pip install sacrebleu==2.6.0
    /tmp/bleu-venv/bin/python tools/make_bleu_fixtures.py
The output is deterministic (fixed seeds), so rerunning should leave the file unchanged.
"""

import json
import os
import random
import sys
import unicodedata

import sacrebleu
from sacrebleu.metrics import BLEU

EXPECTED_VERSION = "2.6.0"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
DATA = os.path.join(ROOT, "..", "shared", "data", "multi30k")
OUT = os.path.join(ROOT, "Tests", "SDLSTMCoreTests", "Fixtures", "bleu_cases.json")
SETTINGS = [(lowercase, tokenize) for lowercase in (False, True) for tokenize in ("13a", "none")]


def data_dir():
    # The worktrees live beside shared/; a checkout elsewhere can point at the data explicitly.
    return os.environ.get("MULTI30K_DIR", DATA)


def read_lines(name):
    with open(os.path.join(data_dir(), name), encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def perturb(sentence, rng, vocabulary):
    """A plausible system output for a reference: some words dropped, swapped, repeated, replaced,
    recased, or the sentence cut short, so that every n-gram order has partial matches."""
    words = sentence.split(" ")
    out = []
    for w in words:
        r = rng.random()
        if r < 0.08:
            continue  # dropped
        if r < 0.16:
            out.append(rng.choice(vocabulary))  # replaced
        elif r < 0.20:
            out += [w, w]  # repeated: clipping matters
        elif r < 0.24:
            out.append(w.upper() if rng.random() < 0.5 else w.lower())  # only lowercase BLEU forgives
        else:
            out.append(w)
    for _ in range(rng.randrange(3)):
        if len(out) > 2:
            i = rng.randrange(len(out) - 1)
            out[i], out[i + 1] = out[i + 1], out[i]
    r = rng.random()
    if r < 0.1:
        out = out[: max(1, len(out) // 2)]  # short: brevity penalty
    elif r < 0.15:
        out += rng.sample(vocabulary, 3)  # long
    text = " ".join(out)
    r = rng.random()
    if r < 0.1:
        text = text.rstrip(".") + " ."  # tokenised period
    elif r < 0.15:
        text = text.replace(",", " ,")
    return text


# Pieces of which the punctuation-heavy strings are made, each chosen because a 13a rule or a Python
# string operation treats it specially.
PIECES = (
    list("abcXYZ019") + list(".,-'") + list("!\"#$%&()*+/:;<=>?@[\\]^_`{|}~")
    + [" ", " ", " ", "  ", "\t", "\n", "\r", "-\n", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0",
       "\u2009", "\u3000", "\u2028", "\u200b", "\u180e", "\ufeff"]
    + ["&quot;", "&amp;", "&lt;", "&gt;", "&amp;lt;", "&AMP;", "&QUOT;", "&nbsp;", "<skipped>", "<SKIPPED>"]
    + ["3.14", "1,000", "2-3", "-5", "5-", "v1.2", "10.", ".5", ",5", "5,", "a.b", "a,b", "x-y", "U.S."]
    + ["ä", "Ö", "ß", "ẞ", "é", "e\u0301", "É", "İ", "ı", "Σ", "ΑΣ", "ΣΑ", "ς", "ﬁ", "Ǆ", "Å", "Ω", "…",
       "–", "—", "„", "“", "”", "«", "»", "’", "¿", "¡", "€", "½", "２", "٣", "日本", "😀", "🇩🇪"]
)


def random_string(rng, length):
    return "".join(rng.choice(PIECES) for _ in range(length))


def hand_corpora():
    """Small corpora whose outcome is easy to reason about: each hits one branch of compute_bleu."""
    return {
        "identical": (["The cat sat on the mat ."], ["The cat sat on the mat ."]),
        "empty_hypothesis": ([""], ["a b c d e"]),
        "all_empty": (["", ""], ["", ""]),
        "whitespace_only": ([" \t ", "\xa0"], ["a b c d", " "]),
        "three_tokens": (["a b c"], ["a b c"]),
        "short_hypotheses_corpus": (["a b", "a b c"], ["a b x y", "a b c d"]),
        "no_unigram_match": (["p q r s t"], ["a b c d e"]),
        "no_bigram_match": (["a c e g"], ["a b c d e f g h"]),
        "no_trigram_match": (["a b x c d y e f"], ["a b c d e f"]),
        "only_4gram_missing": (["a b c x a b c"], ["a b c d a b c"]),
        "clipping": (["the the the the the the the"], ["the cat is on the mat"]),
        "longer_hypothesis": (["a b c d e f g h"], ["a b c d"]),
        "shorter_hypothesis": (["a b c d"], ["a b c d e f g h"]),
        "corpus_sums_before_ratio": (["a b c d e", "x"], ["a b c d e", "y z w v u t"]),
        "case_only": (["THE DOG BIT THE MAN."], ["The dog bit the man."]),
        "final_sigma": (["ΟΔΟΣ ΣΟΦΙΑΣ", "ΑΣ. Σ"], ["οδος σοφιας", "ας. σ"]),
        "dotted_capital_i": (["İstanbul İzmir"], ["i̇stanbul izmir"]),
        "canonical_equivalents_differ": (["caf\u00e9 au lait"], ["cafe\u0301 au lait"]),
        "entities": (["He said &quot;no&quot; &amp; left &lt;fast&gt;."], ['He said "no" & left <fast>.']),
        "hyphen_newline": (["state-of-the-\nart\nresult"], ["state-of-the-art result"]),
        "numbers": (["It costs $1,000.50 - 2-3 times 3.14, or 5.x"], ["It costs $ 1,000.50 - 2 - 3 times 3.14 , or 5 . x"]),
    }


def multi30k_corpora(rng):
    corpora = {}
    for lang in ("en", "de"):
        refs = read_lines(f"test_2016_flickr.{lang}")
        vocabulary = sorted({w for line in refs for w in line.split(" ")})
        hyps = [perturb(r, rng, vocabulary) for r in refs]
        corpora[f"multi30k_{lang}_all"] = (hyps, refs)
        for size in (1, 3, 10, 50):
            start = rng.randrange(len(refs) - size)
            corpora[f"multi30k_{lang}_{size}_at_{start}"] = (hyps[start:start + size], refs[start:start + size])
        # The reference scored against itself and against another sentence.
        corpora[f"multi30k_{lang}_self"] = (refs[:100], refs[:100])
        corpora[f"multi30k_{lang}_shifted"] = (refs[1:101], refs[:100])
    # English hypotheses against German references: almost no matches.
    corpora["multi30k_en_vs_de"] = (read_lines("test_2016_flickr.en")[:200], read_lines("test_2016_flickr.de")[:200])
    return corpora


def random_corpora(rng):
    corpora = {}
    for i in range(120):
        n = rng.choice([1, 1, 1, 2, 3, 5])
        refs = [random_string(rng, rng.randrange(0, 30)) for _ in range(n)]
        # Hypotheses share pieces with their references, so that matches are likely.
        hyps = []
        for r in refs:
            if rng.random() < 0.5:
                k = len(r)
                a, b = sorted(rng.randrange(k + 1) for _ in range(2))
                hyps.append(r[:a] + random_string(rng, rng.randrange(4)) + r[b:])
            else:
                hyps.append(random_string(rng, rng.randrange(0, 30)))
        corpora[f"random_{i:03d}"] = (hyps, refs)
    return corpora


def score(hyps, refs, lowercase, tokenize):
    s = BLEU(lowercase=lowercase, tokenize=tokenize, force=True).corpus_score(hyps, [refs])
    return {"score": s.score, "precisions": s.precisions, "bp": s.bp, "ratio": s.ratio,
            "sys_len": s.sys_len, "ref_len": s.ref_len, "counts": s.counts, "totals": s.totals}


def tokenizations(rng, corpora):
    strings = [random_string(rng, rng.randrange(1, 25)) for _ in range(400)]
    strings += list(PIECES)
    strings += [s for name in ("multi30k_en_10_at", "multi30k_de_10_at") for key, (h, r) in corpora.items()
                if key.startswith(name) for s in h + r]
    out = []
    for s in strings:
        for lowercase, tokenize in SETTINGS:
            metric = BLEU(lowercase=lowercase, tokenize=tokenize)
            out.append({"text": s, "lowercase": lowercase, "tokenize": tokenize,
                        "tokens": metric._preprocess_segment(s).split()})
    return out


def lowercase_table():
    scalars = (cp for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF)  # no lone surrogates
    return [[cp, chr(cp).lower()] for cp in scalars if chr(cp).lower() != chr(cp)]


def main():
    if sacrebleu.__version__ != EXPECTED_VERSION:
        sys.exit(f"need sacreBLEU {EXPECTED_VERSION}, found {sacrebleu.__version__}")
    rng = random.Random(20240611)
    corpora = {}
    corpora.update(hand_corpora())
    corpora.update(multi30k_corpora(rng))
    corpora.update(random_corpora(rng))
    cases = []
    for name, (hyps, refs) in corpora.items():
        for lowercase, tokenize in SETTINGS:
            cases.append({"corpus": name, "lowercase": lowercase, "tokenize": tokenize,
                          "expected": score(hyps, refs, lowercase, tokenize)})
    fixture = {
        "generator": "tools/make_bleu_fixtures.py",
        "sacrebleu": sacrebleu.__version__,
        "python": sys.version.split()[0],
        "unicode": unicodedata.unidata_version,
        "corpora": {name: {"hypotheses": h, "references": r} for name, (h, r) in corpora.items()},
        "cases": cases,
        "tokenizations": tokenizations(rng, corpora),
        "lowercase": lowercase_table(),
    }
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(fixture, f, ensure_ascii=True, indent=None, separators=(",", ":"))
        f.write("\n")
    print(f"{OUT}: {len(corpora)} corpora, {len(cases)} cases, {len(fixture['tokenizations'])} tokenizations, "
          f"{len(fixture['lowercase'])} lowercase mappings")


if __name__ == "__main__":
    main()
