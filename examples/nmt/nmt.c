/*
 * nmt — trains an LSTM encoder-decoder with attention (SDLSTM_TASK_SEQ2SEQ) to translate, by default
 * German to English on Multi30k, with sdlstm.
 *
 * Reads DIR/{train,val,TEST}.{SRC,TGT}: raw text, one sentence per line, the two languages
 * line-aligned. Both languages go through the same rule-based tokeniser (see "Tokeniser" below),
 * lowercased by default as is usual for Multi30k. Each vocabulary is the training tokens seen at
 * least --min-count times after <unk> <pad> <bos> <eos>; a target row is <bos> y1 … yn <eos>.
 * Training pairs with a side longer than --max-len tokens are dropped; the others are shuffled each
 * epoch and batched with pairs of similar source length.
 *
 * After each epoch: validation perplexity, then validation BLEU: the validation sources are
 * translated by beam search, detokenised, and scored by the library's sacreBLEU-compatible BLEU
 * against the raw reference lines (13a tokenisation, case-insensitive with --lower 1: sacreBLEU's
 * -lc; <unk> is left out of a translation). An epoch with a new best validation BLEU also translates
 * the test set; the test BLEU reported is that epoch's, whose translations go to --out (one line per
 * source line, in order) and whose model goes to --save (with both vocabularies as string tables
 * "src_vocab" and "tgt_vocab").
 *
 * Learning rate: OpenNMT-py's classic SGD schedule. --lr for the first --decay-after epochs; from the
 * first epoch after those, or after the first epoch whose validation perplexity is worse than the
 * epoch before's if that comes sooner, the rate is multiplied by --lr-decay every epoch. OpenNMT-py's
 * lr 1 and clip 5 apply to a loss summed over each sentence's ~14 target tokens; the library's loss is
 * their mean, hence the default lr 5 and clip 1 (lr 8 diverged in a trial run, lr 1 crawled).
 *
 * Progress goes to stderr; one JSON line with the results goes to stdout. --dry-run reads the data
 * and reports the vocabularies, the batches and how well the detokeniser inverts the tokeniser,
 * without a model.
 *
 * Build (in examples/nmt, for ../common/example.h):
 *   cc -std=c11 -O2 nmt.c $(pkg-config --cflags --libs sdlstm) -lm -o sdlstm-nmt
 */
#define _POSIX_C_SOURCE 200809L

#define EXAMPLE_NAME "nmt"

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/example.h"

/* ------------------------------------------------------------------------------------------ */
/* Arguments                                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct options {
    const char *data_dir;
    const char *src;
    const char *tgt;
    const char *test_name;
    const char *out_path;
    const char *save_path;
    int32_t lower;
    int32_t min_count;
    int32_t max_len;
    int32_t embed;
    int32_t hidden;
    int32_t layers;
    int32_t bidirectional;
    int32_t input_feeding;
    int32_t epochs;
    int64_t max_steps;
    int32_t batch;
    double lr;
    double lr_decay;
    int32_t decay_after;
    double clip;
    double init;
    sdlstm_policy policy;
    const char *policy_name;
    double p_nr;
    double p_rh;
    int32_t beam;
    double length_penalty;
    int32_t max_decode; /* 0: 2 x the longest source of the batch + 10 */
    int32_t threads;
    uint64_t seed;
    bool dry_run;
} options;

static void usage(FILE *out) {
    fputs(
        "usage: nmt --data DIR [options]\n"
        "\n"
        "Trains an attention encoder-decoder on DIR/train.{SRC,TGT}, picks the epoch by the BLEU of\n"
        "DIR/val.{SRC,TGT}, reports the BLEU of that epoch on DIR/TEST.{SRC,TGT}.\n"
        "\n"
        "  --data DIR           directory holding the line-aligned raw text files\n"
        "  --src L, --tgt L     file suffixes of the two languages (de, en)\n"
        "  --test NAME          prefix of the test files (test_2016_flickr)\n"
        "  --out FILE           test translations of the best-val epoch, one line per source line (none)\n"
        "  --save FILE          checkpoint (HDF5) of the best-val epoch, vocabularies included (none)\n"
        "  --lower 0|1          lowercase the text; BLEU is then case-insensitive (1)\n"
        "  --min-count N        training tokens seen fewer times become <unk> (2)\n"
        "  --max-len N          training pairs with a side longer than N tokens are dropped (50)\n"
        "  --embed N            embedding width, both languages (256)\n"
        "  --hidden N           LSTM width; the bidirectional encoder has N / 2 per direction (256)\n"
        "  --layers N           LSTM layers of the encoder and of the decoder (2)\n"
        "  --bidirectional 0|1  encoder reads both ways (1)\n"
        "  --input-feeding 0|1  the attentional vector joins the next decoder input (1)\n"
        "  --epochs N           training epochs (8)\n"
        "  --max-steps N        cap on training steps per epoch, 0 = no cap (0)\n"
        "  --batch N            sentence pairs per batch (64)\n"
        "  --lr F               learning rate for the mean target-token loss (5)\n"
        "  --lr-decay F         factor applied to lr each epoch once decay has begun (0.5)\n"
        "  --decay-after N      epochs at the full lr, unless val ppl gets worse sooner (5)\n"
        "  --clip F             global gradient-norm clip, 0 = off (1)\n"
        "  --init F             parameters start uniform in [-F, F] (0.1)\n"
        "  --policy P           none|variational|standard|structured|structured-fixed (structured)\n"
        "  --p-nr F             drop probability on INPUT, BETWEEN (layers >= 2), OUTPUT (0.3)\n"
        "  --p-rh F             drop probability on RECURRENT, 0 = off (0)\n"
        "  --beam N             beam size, 1 = greedy (5)\n"
        "  --length-penalty F   hypotheses rank by log P / (tokens + 1)^F (1)\n"
        "  --max-decode N       most target tokens per sentence; 0 = 2 x the longest source\n"
        "                       of its batch + 10 (0)\n"
        "  --threads N          threads used by the library (1)\n"
        "  --seed N             initialisation, dropout and shuffling seed (1)\n"
        "  --dry-run            read and batch the data, check the detokeniser, no model\n"
        "  --help               this text\n",
        out);
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){
        .data_dir = NULL,
        .src = "de",
        .tgt = "en",
        .test_name = "test_2016_flickr",
        .out_path = NULL,
        .save_path = NULL,
        .lower = 1,
        .min_count = 2,
        .max_len = 50,
        .embed = 256,
        .hidden = 256,
        .layers = 2,
        .bidirectional = 1,
        .input_feeding = 1,
        .epochs = 8,
        .max_steps = 0,
        .batch = 64,
        .lr = 5.0,
        .lr_decay = 0.5,
        .decay_after = 5,
        .clip = 1.0,
        .init = 0.1,
        .policy = SDLSTM_POLICY_STRUCTURED,
        .policy_name = "structured",
        .p_nr = 0.3,
        .p_rh = 0.0,
        .beam = 5,
        .length_penalty = 1.0,
        .max_decode = 0,
        .threads = 1,
        .seed = 1,
        .dry_run = false,
    };
    const long long big = INT32_MAX;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(flag, "--dry-run") == 0) {
            o->dry_run = true;
            continue;
        }
        if (strncmp(flag, "--", 2) != 0) bad_usage("unexpected argument '", flag, "'");
        if (i + 1 >= argc) bad_usage(flag, " needs a value", "");
        const char *v = argv[++i];

        if (strcmp(flag, "--data") == 0) o->data_dir = v;
        else if (strcmp(flag, "--src") == 0) o->src = v;
        else if (strcmp(flag, "--tgt") == 0) o->tgt = v;
        else if (strcmp(flag, "--test") == 0) o->test_name = v;
        else if (strcmp(flag, "--out") == 0) o->out_path = v;
        else if (strcmp(flag, "--save") == 0) o->save_path = v;
        else if (strcmp(flag, "--lower") == 0) o->lower = parse_int(flag, v, 0, 1);
        else if (strcmp(flag, "--min-count") == 0) o->min_count = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--max-len") == 0) o->max_len = parse_int(flag, v, 1, 1 << 16);
        else if (strcmp(flag, "--embed") == 0) o->embed = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--hidden") == 0) o->hidden = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--layers") == 0) o->layers = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--bidirectional") == 0) o->bidirectional = parse_int(flag, v, 0, 1);
        else if (strcmp(flag, "--input-feeding") == 0) o->input_feeding = parse_int(flag, v, 0, 1);
        else if (strcmp(flag, "--epochs") == 0) o->epochs = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--max-steps") == 0) o->max_steps = parse_int64(flag, v, 0);
        else if (strcmp(flag, "--batch") == 0) o->batch = parse_int(flag, v, 1, 1 << 16);
        else if (strcmp(flag, "--lr") == 0) o->lr = parse_real(flag, v, POSITIVE);
        else if (strcmp(flag, "--lr-decay") == 0) o->lr_decay = parse_real(flag, v, POSITIVE);
        else if (strcmp(flag, "--decay-after") == 0) o->decay_after = parse_int(flag, v, 0, big);
        else if (strcmp(flag, "--clip") == 0) o->clip = parse_real(flag, v, NON_NEGATIVE);
        else if (strcmp(flag, "--init") == 0) o->init = parse_real(flag, v, POSITIVE);
        else if (strcmp(flag, "--p-nr") == 0) o->p_nr = parse_real(flag, v, PROBABILITY);
        else if (strcmp(flag, "--p-rh") == 0) o->p_rh = parse_real(flag, v, PROBABILITY);
        else if (strcmp(flag, "--beam") == 0) o->beam = parse_int(flag, v, 1, 1024);
        else if (strcmp(flag, "--length-penalty") == 0) o->length_penalty = parse_real(flag, v, NON_NEGATIVE);
        else if (strcmp(flag, "--max-decode") == 0) o->max_decode = parse_int(flag, v, 0, 1 << 16);
        else if (strcmp(flag, "--threads") == 0) o->threads = parse_int(flag, v, 1, 4096);
        else if (strcmp(flag, "--seed") == 0) o->seed = parse_u64(flag, v);
        else if (strcmp(flag, "--policy") == 0) {
            int k = find_policy(v);
            if (k < 0) bad_usage("unknown policy '", v, "'");
            o->policy = policies[k].policy;
            o->policy_name = policies[k].name;
        } else {
            bad_usage("unknown flag '", flag, "'");
        }
    }
    if (o->data_dir == NULL) bad_usage("--data DIR is required", "", "");
    if (o->bidirectional && o->hidden % 2 != 0)
        bad_usage("--hidden must be even with --bidirectional 1 (half per direction)", "", "");
    /* Without a policy nothing is dropped; reporting the default p would mislabel the run. */
    if (o->policy == SDLSTM_POLICY_NONE) o->p_nr = o->p_rh = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Tokeniser                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/*
 * Whitespace separates tokens; a word is a run of letters and digits (any non-ASCII character that
 * is not punctuation counts as a letter, so UTF-8 words stay whole); every punctuation mark is a
 * token of its own, a run of one repeated mark ("...", "!!") one token. Some marks stay inside a
 * word because splitting them would make rare fragments and lose the spelling: '-', '.' and '/'
 * between word characters (t-shirt, 10-year-old, U.S, 3.5, and/or), ',' and ':' between digits
 * (1,000, 10:30), and a hyphen that ends a word before a space (German "Obst- und Gemüsehändler",
 * English "10- or 11-year-old"). An apostrophe between letters starts a clitic token (woman's -> woman 's,
 * don't -> don 't), as the Moses tokeniser does for English. The detokeniser below undoes all this
 * from the tokens alone, which is what BLEU against the raw references needs.
 */

typedef enum char_class { SPACE, PUNCT, WORD } char_class;

/* The code point at s and its length in bytes. A malformed byte reads as U+FFFD, one byte long (so
 * it joins the word around it), and is copied through unchanged. */
static uint32_t utf8_next(const unsigned char *s, int *len) {
    unsigned char c = s[0];
    if (c < 0x80) {
        *len = 1;
        return c;
    }
    int n = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    uint32_t cp = n == 2 ? c & 0x1Fu : n == 3 ? c & 0x0Fu : c & 0x07u;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            n = 0;
            break;
        }
        cp = cp << 6 | (s[i] & 0x3Fu);
    }
    /* Overlong forms and surrogates are malformed too: copied through, they stay byte for byte. */
    if (n == 0 || (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        *len = 1;
        return 0xFFFD;
    }
    *len = n;
    return cp;
}

/* The character at s, as utf8_next, except that the HTML entities some corpora carry (Multi30k's
 * training English has "&amp;") read as the character they stand for, as BLEU's 13a tokeniser
 * reads them in the references. */
static uint32_t next_char(const unsigned char *s, int *len) {
    static const struct {
        const char *name;
        uint32_t cp;
    } entities[] = {{"&amp;", '&'}, {"&quot;", '"'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&apos;", '\''}, {"&#39;", '\''}};
    if (s[0] == '&')
        for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
            size_t n = strlen(entities[i].name);
            if (strncmp((const char *)s, entities[i].name, n) == 0) {
                *len = (int)n;
                return entities[i].cp;
            }
        }
    return utf8_next(s, len);
}

static int utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static char_class classify(uint32_t cp) {
    if (cp < 0x80) {
        if (cp <= ' ' || cp == 0x7F) return SPACE; /* controls (tab, CR) too */
        if ((cp >= '0' && cp <= '9') || ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')) return WORD;
        return PUNCT;
    }
    /* No-break, typographic and zero-width spaces, and the byte-order mark. */
    if (cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200B) || cp == 0x202F || cp == 0x205F || cp == 0x3000 ||
        cp == 0xFEFF)
        return SPACE;
    /* Latin-1 marks and symbols (the ordinals, superscripts, fractions and micro sign are words),
     * general punctuation (dashes, quotes, ellipsis), currency signs, CJK punctuation. */
    if ((cp >= 0xA1 && cp <= 0xBF && cp != 0xAA && cp != 0xB2 && cp != 0xB3 && cp != 0xB5 && cp != 0xB9 &&
         cp != 0xBA && (cp < 0xBC || cp > 0xBE)) ||
        cp == 0xD7 || cp == 0xF7 || (cp >= 0x2010 && cp <= 0x205E) || (cp >= 0x20A0 && cp <= 0x20CF) ||
        (cp >= 0x3001 && cp <= 0x303F))
        return PUNCT;
    return WORD;
}

static bool is_digit(uint32_t cp) { return cp >= '0' && cp <= '9'; }

static bool is_apostrophe(uint32_t cp) { return cp == '\'' || cp == 0x2019 || cp == '`'; }

/* Whether the mark cp between the word characters prev and next stays inside the word. */
static bool joins_word(uint32_t cp, uint32_t prev, uint32_t next) {
    if (cp == '-' || cp == '.' || cp == '/') return true;
    return (cp == ',' || cp == ':') && is_digit(prev) && is_digit(next);
}

/* The lowercase of cp where it has the same UTF-8 length: ASCII, Latin-1, Latin Extended-A (the
 * letters of the Western and Central European languages), Greek and Cyrillic. Other letters keep
 * their case; BLEU's own lowercasing still compares them fairly. */
static uint32_t lower_cp(uint32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    if (cp < 0xC0) return cp;
    if (cp <= 0xDE && cp != 0xD7) return cp + 32;
    if (cp >= 0x100 && cp <= 0x137 && cp != 0x130) return cp | 1; /* pairs: even upper, odd lower */
    if (cp >= 0x139 && cp <= 0x148) return cp % 2 ? cp + 1 : cp;
    if (cp >= 0x14A && cp <= 0x177) return cp | 1;
    if (cp == 0x178) return 0xFF;
    if (cp >= 0x179 && cp <= 0x17E) return cp % 2 ? cp + 1 : cp;
    if ((cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) || (cp >= 0x410 && cp <= 0x42F)) return cp + 32;
    if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
    return cp;
}

/* Where tokens go: their bytes, NUL-terminated, into a buffer the caller sized (a line of L bytes
 * makes at most 2L, every token being at least one byte and neither lowercasing nor entities
 * making a character longer), and
 * their pointers into a growing array. */
typedef struct token_sink {
    char *at;
    char **tokens;
    int64_t count;
    int64_t cap;
} token_sink;

static bool sink_push(token_sink *s, const unsigned char *from, const unsigned char *to, bool lower) {
    if (s->count == s->cap) {
        int64_t cap = s->cap ? s->cap * 2 : 1 << 12;
        char **tokens = realloc(s->tokens, (size_t)cap * sizeof *tokens);
        if (!tokens) return false;
        s->tokens = tokens;
        s->cap = cap;
    }
    s->tokens[s->count++] = s->at;
    while (from < to) {
        int n;
        uint32_t cp = next_char(from, &n);
        if (cp == 0xFFFD && n == 1) { /* a malformed byte goes through as it was */
            *s->at++ = (char)*from;
        } else {
            s->at += utf8_put(lower ? lower_cp(cp) : cp, s->at);
        }
        from += n;
    }
    *s->at++ = '\0';
    return true;
}

/* Appends the tokens of one line; returns their number, or -1 when out of memory. */
static int64_t tokenize_line(const char *line, bool lower, token_sink *sink) {
    const unsigned char *p = (const unsigned char *)line;
    int64_t first = sink->count;
    uint32_t prev = ' '; /* the code point before p */
    while (*p) {
        int n;
        uint32_t cp = next_char(p, &n);
        char_class cls = classify(cp);
        const unsigned char *start = p;
        if (cls == SPACE) {
            prev = cp;
            p += n;
            continue;
        }
        int m;
        bool clitic = is_apostrophe(cp) && classify(prev) == WORD && classify(next_char(p + n, &m)) == WORD;
        p += n;
        prev = cp;
        if (cls == WORD || clitic) {
            while (*p) {
                uint32_t c = next_char(p, &n);
                char_class k = classify(c);
                if (k == WORD) {
                    p += n;
                    prev = c;
                    continue;
                }
                if (k != PUNCT) break;
                uint32_t next = next_char(p + n, &m);
                if (c == '-' && classify(next) == SPACE) { /* German "Obst- und Gemüsehändler" */
                    p += n;
                    break;
                }
                if (classify(next) != WORD || !joins_word(c, prev, next)) break;
                p += n + m;
                prev = next;
            }
        } else {
            while (*p && next_char(p, &n) == cp) p += n;
        }
        if (!sink_push(sink, start, p, lower)) return -1;
    }
    return sink->count - first;
}

/* How a token attaches to its neighbours when the text is put back together. */
typedef struct detok_state {
    int double_quotes;     /* '"' seen so far: odd ones open, even ones close */
    int single_quotes;     /* standalone '\'' that opened or closed a quotation */
    bool low_double_open;  /* a German „ waits for its “ */
    bool low_single_open;  /* a German ‚ waits for its ‘ */
} detok_state;

/* Sets *left (no space before the token) and *right (none after it). */
static void attachment(const char *token, const char *prev_token, detok_state *st, bool *left, bool *right) {
    int n, m;
    uint32_t cp = utf8_next((const unsigned char *)token, &n);
    bool single = token[n] == '\0' || utf8_next((const unsigned char *)token + n, &m) == cp; /* "..." too */
    *left = *right = false;
    if (is_apostrophe(cp) && !single) { /* a clitic: 's, 't, 'll */
        *left = true;
        return;
    }
    switch (cp) {
    case '.': case ',': case '!': case '?': case ';': case ':': case '%': case ')': case ']': case '}':
    case 0x2026: /* … */ case 0x201D: /* ” */ case 0xBB: /* » */ case 0x203A: /* › */ case 0x2019: /* ’ */
        *left = true;
        break;
    case '(': case '[': case '{': case '#': case '$': case '`': case 0xBF: /* ¿ */ case 0xA1: /* ¡ */
    case 0xAB: /* « */ case 0x2039: /* ‹ */
        *right = true;
        break;
    case 0x201E: /* „ opens a German quotation, closed by “ */
        st->low_double_open = true;
        *right = true;
        break;
    case 0x201A: /* ‚ */
        st->low_single_open = true;
        *right = true;
        break;
    case 0x201C: /* “ closes German, opens English */
        *left = st->low_double_open;
        *right = !st->low_double_open;
        st->low_double_open = false;
        break;
    case 0x2018: /* ‘ */
        *left = st->low_single_open;
        *right = !st->low_single_open;
        st->low_single_open = false;
        break;
    case '"':
        *right = st->double_quotes % 2 == 0;
        *left = !*right;
        st->double_quotes++;
        break;
    case '\'': {
        /* Closing a quotation, a plural possessive (the workers' hats), feet (4' wide), or opening a
         * quotation. */
        size_t k = prev_token ? strlen(prev_token) : 0;
        char last = k > 0 ? prev_token[k - 1] : ' ';
        if (st->single_quotes % 2 == 1) {
            *left = true;
            st->single_quotes++;
        } else if (last == 's' || last == 'S' || is_digit((unsigned char)last)) {
            *left = true;
        } else {
            *right = true;
            st->single_quotes++;
        }
        break;
    }
    default:
        break;
    }
}

/* Writes the tokens back as text into out, which holds at least the tokens' bytes plus one per
 * token; returns the length. Without --lower, detokenize(tokenize(line)) gives back almost every
 * line (--dry-run counts them). */
static size_t detokenize(const char *const *tokens, int64_t n, char *out) {
    detok_state st = {0};
    size_t len = 0;
    bool glue = true; /* no space before the next token */
    for (int64_t i = 0; i < n; i++) {
        bool left, right;
        attachment(tokens[i], i > 0 ? tokens[i - 1] : NULL, &st, &left, &right);
        if (!glue && !left) out[len++] = ' ';
        size_t k = strlen(tokens[i]);
        memcpy(out + len, tokens[i], k);
        len += k;
        glue = right;
    }
    out[len] = '\0';
    return len;
}

/* ------------------------------------------------------------------------------------------ */
/* Data                                                                                        */
/* ------------------------------------------------------------------------------------------ */

enum { UNK = 0, PAD = 1, BOS = 2, EOS = 3, SPECIALS = 4 };
static const char *const special_names[SPECIALS] = {"<unk>", "<pad>", "<bos>", "<eos>"};

/* One language of a split: the raw lines (BLEU's references) and their tokens and ids. */
typedef struct side {
    char *text;      /* the file, cut in place into lines */
    char **lines;    /* line i as written, without its line break */
    char *arena;     /* the tokens' bytes */
    char **tokens;   /* all tokens, line after line */
    int64_t *first;  /* line i is tokens first[i] .. first[i] + len[i] - 1 */
    int32_t *len;
    int32_t *ids;    /* per token, once the vocabulary exists */
    int32_t max_len;
} side;

typedef struct split {
    const char *name;
    side src, tgt;
    int32_t n;         /* sentence pairs */
    int32_t *by_length; /* pair indices by source length, for evaluation batches */
} split;

static void side_free(side *s) {
    free(s->text);
    free(s->lines);
    free(s->arena);
    free(s->tokens);
    free(s->first);
    free(s->len);
    free(s->ids);
    *s = (side){0};
}

/* Reads dir/name.lang and tokenises its lines. */
static bool load_side(const char *dir, const char *name, const char *lang, bool lower, side *s, int32_t *lines) {
    *s = (side){0};
    char file[1024];
    if (snprintf(file, sizeof file, "%s.%s", name, lang) >= (int)sizeof file) {
        fprintf(stderr, "nmt: file name too long: %s.%s\n", name, lang);
        return false;
    }
    size_t size = 0;
    s->text = read_file(dir, file, &size);
    if (!s->text) return false;
    /* A final line without a line break still counts; the break after the last line adds none. */
    int64_t n = 0;
    for (size_t i = 0; i < size; i++) n += s->text[i] == '\n';
    if (size > 0 && s->text[size - 1] != '\n') n++;
    if (n == 0 || n > INT32_MAX) {
        fprintf(stderr, "nmt: %s/%s has %s lines\n", dir, file, n == 0 ? "no" : "too many");
        return false;
    }
    s->lines = malloc((size_t)n * sizeof *s->lines);
    s->first = malloc((size_t)n * sizeof *s->first);
    s->len = malloc((size_t)n * sizeof *s->len);
    s->arena = malloc(2 * size + 1);
    if (!s->lines || !s->first || !s->len || !s->arena) goto oom;
    token_sink sink = {.at = s->arena};
    char *p = s->text;
    for (int64_t i = 0; i < n; i++) {
        char *end = strchr(p, '\n');
        if (end) *end = '\0';
        size_t k = strlen(p);
        if (k > 0 && p[k - 1] == '\r') p[k - 1] = '\0';
        s->lines[i] = p;
        s->first[i] = sink.count;
        int64_t count = tokenize_line(p, lower, &sink);
        if (count < 0) {
            free(sink.tokens);
            goto oom;
        }
        if (count > INT32_MAX / 4) {
            free(sink.tokens);
            fprintf(stderr, "nmt: %s/%s: line %" PRId64 " has too many tokens\n", dir, file, i + 1);
            return false;
        }
        s->len[i] = (int32_t)count;
        if (count > s->max_len) s->max_len = (int32_t)count;
        p = end ? end + 1 : p + k;
    }
    s->tokens = sink.tokens;
    s->ids = malloc((size_t)(sink.count > 0 ? sink.count : 1) * sizeof *s->ids);
    if (!s->ids) goto oom;
    *lines = (int32_t)n;
    return true;
oom:
    fprintf(stderr, "nmt: out of memory reading %s/%s\n", dir, file);
    return false;
}

typedef struct dataset {
    split train, val, test;
    vocab src_vocab, tgt_vocab; /* the specials, then training tokens by falling count */
    int32_t *keep;     /* the training pairs used, neither side longer than --max-len */
    int32_t kept;
    int64_t kept_target_tokens; /* what one epoch trains on: n + 1 per pair */
} dataset;

static void split_free(split *s) {
    side_free(&s->src);
    side_free(&s->tgt);
    free(s->by_length);
    *s = (split){0};
}

static void dataset_free(dataset *d) {
    vocab_free(&d->src_vocab);
    vocab_free(&d->tgt_vocab);
    split_free(&d->train);
    split_free(&d->val);
    split_free(&d->test);
    free(d->keep);
    *d = (dataset){0};
}

static const int64_t *count_key; /* qsort has no context argument */
static const char *const *word_key;

static int by_count(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (count_key[x] != count_key[y]) return count_key[x] > count_key[y] ? -1 : 1;
    return strcmp(word_key[x], word_key[y]);
}

/* The vocabulary of a training side: the specials, then the tokens seen at least min_count times,
 * most frequent first (ties in byte order, so the ids do not depend on the hash map). */
static bool build_vocab(const side *s, int32_t lines, int32_t min_count, vocab *out) {
    vocab counts = {0};
    int64_t ntokens = s->first[lines - 1] + s->len[lines - 1];
    int64_t *count = calloc((size_t)ntokens + 1, sizeof *count);
    int32_t *order = NULL;
    bool good = false;
    if (!count || !vocab_init(&counts) || !vocab_init(out)) goto done;
    for (int64_t i = 0; i < ntokens; i++) {
        int32_t id = vocab_add(&counts, s->tokens[i]);
        if (id < 0) goto done;
        count[id]++;
    }
    order = malloc((size_t)(counts.size > 0 ? counts.size : 1) * sizeof *order);
    if (!order) goto done;
    for (int32_t i = 0; i < counts.size; i++) order[i] = i;
    count_key = count;
    word_key = counts.words;
    qsort(order, (size_t)counts.size, sizeof *order, by_count);
    for (int32_t i = 0; i < SPECIALS; i++)
        if (vocab_add(out, special_names[i]) != i) goto done;
    for (int32_t i = 0; i < counts.size && count[order[i]] >= min_count; i++)
        if (vocab_add(out, counts.words[order[i]]) < 0) goto done;
    good = true;
done:
    if (!good) fputs("nmt: out of memory building a vocabulary\n", stderr);
    vocab_free(&counts);
    free(count);
    free(order);
    return good;
}

static void assign_ids(side *s, int32_t lines, const vocab *v) {
    int64_t ntokens = s->first[lines - 1] + s->len[lines - 1];
    for (int64_t i = 0; i < ntokens; i++) {
        int32_t id = vocab_find(v, s->tokens[i]);
        s->ids[i] = id < 0 ? UNK : id;
    }
}

static const int32_t *src_len_key, *tgt_len_key; /* qsort has no context argument */

/* Source length, then target length, then index: batches of similar shape, a deterministic order. */
static int by_length(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (src_len_key[x] != src_len_key[y]) return src_len_key[x] < src_len_key[y] ? -1 : 1;
    if (tgt_len_key[x] != tgt_len_key[y]) return tgt_len_key[x] < tgt_len_key[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

static void sort_by_length(const split *s, int32_t *pairs, int32_t n) {
    src_len_key = s->src.len;
    tgt_len_key = s->tgt.len;
    qsort(pairs, (size_t)n, sizeof *pairs, by_length);
}

static bool load_split(const options *o, const char *name, split *s) {
    *s = (split){.name = name};
    int32_t src_lines = 0, tgt_lines = 0;
    if (!load_side(o->data_dir, name, o->src, o->lower, &s->src, &src_lines) ||
        !load_side(o->data_dir, name, o->tgt, o->lower, &s->tgt, &tgt_lines))
        return false;
    if (src_lines != tgt_lines) {
        fprintf(stderr, "nmt: %s/%s.%s has %d lines but %s.%s has %d\n", o->data_dir, name, o->src, src_lines,
                name, o->tgt, tgt_lines);
        return false;
    }
    s->n = src_lines;
    s->by_length = malloc((size_t)s->n * sizeof *s->by_length);
    if (!s->by_length) {
        fputs("nmt: out of memory\n", stderr);
        return false;
    }
    for (int32_t i = 0; i < s->n; i++) s->by_length[i] = i;
    sort_by_length(s, s->by_length, s->n);
    return true;
}

static bool dataset_load(const options *o, dataset *d) {
    *d = (dataset){0};
    if (!load_split(o, "train", &d->train) || !load_split(o, "val", &d->val) ||
        !load_split(o, o->test_name, &d->test))
        return false;
    if (!build_vocab(&d->train.src, d->train.n, o->min_count, &d->src_vocab) ||
        !build_vocab(&d->train.tgt, d->train.n, o->min_count, &d->tgt_vocab))
        return false;
    split *splits[] = {&d->train, &d->val, &d->test};
    for (int i = 0; i < 3; i++) {
        assign_ids(&splits[i]->src, splits[i]->n, &d->src_vocab);
        assign_ids(&splits[i]->tgt, splits[i]->n, &d->tgt_vocab);
    }
    /* The model needs a source token to attend to; an empty target just teaches <eos>. */
    d->keep = malloc((size_t)d->train.n * sizeof *d->keep);
    if (!d->keep) {
        fputs("nmt: out of memory\n", stderr);
        return false;
    }
    for (int32_t i = 0; i < d->train.n; i++) {
        int32_t ls = d->train.src.len[i], lt = d->train.tgt.len[i];
        if (ls >= 1 && ls <= o->max_len && lt <= o->max_len) {
            d->keep[d->kept++] = i;
            d->kept_target_tokens += lt + 1;
        }
    }
    if (d->kept == 0) {
        fprintf(stderr, "nmt: no training pair has sides of 1 to %d tokens\n", o->max_len);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Batching                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* The arrays of one sdlstm_batch and of one translation, sized once for the largest batch. */
typedef struct batch_buffers {
    int32_t *src, *src_len, *tgt, *tgt_len, *out, *out_len;
    int32_t max_src, max_tgt; /* longest source and target row over all splits, markers included */
    int32_t rows;
} batch_buffers;

static void buffers_free(batch_buffers *b) {
    free(b->src);
    free(b->src_len);
    free(b->tgt);
    free(b->tgt_len);
    free(b->out);
    free(b->out_len);
    *b = (batch_buffers){0};
}

/* The decoding limit for a batch whose longest source has src_len tokens. */
static int32_t decode_limit(const options *o, int32_t src_len) {
    return o->max_decode > 0 ? o->max_decode : 2 * src_len + 10;
}

static bool buffers_init(batch_buffers *b, const dataset *d, const options *o) {
    *b = (batch_buffers){.rows = o->batch, .max_src = 1, .max_tgt = 2};
    const split *splits[] = {&d->train, &d->val, &d->test};
    for (int i = 0; i < 3; i++) {
        if (splits[i]->src.max_len > b->max_src) b->max_src = splits[i]->src.max_len;
        if (splits[i]->tgt.max_len + 2 > b->max_tgt) b->max_tgt = splits[i]->tgt.max_len + 2;
    }
    int32_t max_out = decode_limit(o, b->max_src);
    /* The library indexes a batch with int32. */
    int64_t widest = b->max_src > b->max_tgt ? b->max_src : b->max_tgt;
    if (max_out > widest) widest = max_out;
    if ((int64_t)b->rows * widest > INT32_MAX) {
        fputs("nmt: --batch times the longest sentence is too large\n", stderr);
        return false;
    }
    size_t rows = (size_t)b->rows;
    b->src = malloc(rows * (size_t)b->max_src * sizeof *b->src);
    b->tgt = malloc(rows * (size_t)b->max_tgt * sizeof *b->tgt);
    b->out = malloc(rows * (size_t)max_out * sizeof *b->out);
    b->src_len = malloc(rows * sizeof *b->src_len);
    b->tgt_len = malloc(rows * sizeof *b->tgt_len);
    b->out_len = malloc(rows * sizeof *b->out_len);
    if (!b->src || !b->tgt || !b->out || !b->src_len || !b->tgt_len || !b->out_len) {
        fputs("nmt: out of memory\n", stderr);
        return false;
    }
    return true;
}

/* Fills a batch with pairs[0 .. n-1] of split s: sources right-padded with <pad>, target rows
 * <bos> y1 … yn <eos>. An empty source line (evaluation only: training drops them) reads as one <unk>. */
static sdlstm_batch fill_batch(const split *s, const int32_t *pairs, int32_t n, batch_buffers *b) {
    int32_t S = 1, T = 2;
    for (int32_t i = 0; i < n; i++) {
        if (s->src.len[pairs[i]] > S) S = s->src.len[pairs[i]];
        if (s->tgt.len[pairs[i]] + 2 > T) T = s->tgt.len[pairs[i]] + 2;
    }
    for (int32_t i = 0; i < n; i++) {
        int32_t pair = pairs[i], ls = s->src.len[pair], lt = s->tgt.len[pair];
        int32_t *src = b->src + (size_t)i * S, *tgt = b->tgt + (size_t)i * T;
        memcpy(src, s->src.ids + s->src.first[pair], (size_t)ls * sizeof *src);
        for (int32_t t = ls; t < S; t++) src[t] = PAD;
        if (ls == 0) src[0] = UNK;
        b->src_len[i] = ls > 0 ? ls : 1;
        tgt[0] = BOS;
        memcpy(tgt + 1, s->tgt.ids + s->tgt.first[pair], (size_t)lt * sizeof *tgt);
        tgt[lt + 1] = EOS;
        for (int32_t t = lt + 2; t < T; t++) tgt[t] = PAD;
        b->tgt_len[i] = lt + 2;
    }
    return (sdlstm_batch){
        .struct_size = sizeof(sdlstm_batch),
        .batch_size = n,
        .seq_len = S,
        .inputs = b->src,
        .lengths = b->src_len,
        .targets = b->tgt,
        .target_len = T,
        .target_lengths = b->tgt_len,
    };
}

/* Batches of one epoch: shuffle the kept pairs, sort pools of 50 batches by length (little
 * padding), cut them into batches, shuffle the batches. batch_start[k] indexes order. */
static int32_t plan_epoch(const dataset *d, int32_t batch, uint64_t *rng, int32_t *order, int32_t *batch_start) {
    int32_t n = d->kept;
    memcpy(order, d->keep, (size_t)n * sizeof *order);
    shuffle(order, n, rng);
    int32_t pool = (int64_t)batch * 50 < n ? batch * 50 : n;
    for (int32_t first = 0; first < n; first += pool)
        sort_by_length(&d->train, order + first, n - first < pool ? n - first : pool);
    int32_t batches = 0;
    for (int32_t first = 0; first < n; first += batch) batch_start[batches++] = first;
    shuffle(batch_start, batches, rng);
    return batches;
}

/* ------------------------------------------------------------------------------------------ */
/* Model set-up                                                                                */
/* ------------------------------------------------------------------------------------------ */

static sdlstm_model *make_model(const options *o, const dataset *d) {
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    if (!ok(sdlstm_config_init(&cfg, SDLSTM_TASK_SEQ2SEQ), "sdlstm_config_init")) return NULL;
    cfg.vocab_size = d->src_vocab.size;
    cfg.target_vocab_size = d->tgt_vocab.size;
    cfg.embed_size = o->embed;
    cfg.hidden_size = o->hidden;
    cfg.num_layers = o->layers;
    cfg.bidirectional = o->bidirectional;
    cfg.input_feeding = o->input_feeding;
    cfg.init_scale = (float)o->init;
    cfg.seed = o->seed;

    sdlstm_model *m = NULL;
    if (!ok(sdlstm_model_create(&cfg, &m), "sdlstm_model_create")) return NULL;

    bool good = ok(sdlstm_set_optimizer(m, SDLSTM_OPTIMIZER_SGD), "sdlstm_set_optimizer") &&
                ok(sdlstm_set_learning_rate(m, (float)o->lr), "sdlstm_set_learning_rate") &&
                ok(sdlstm_set_clip_norm(m, (float)o->clip), "sdlstm_set_clip_norm") &&
                ok(sdlstm_set_num_threads(m, o->threads), "sdlstm_set_num_threads") &&
                set_dropout_sites(m, o->policy, o->p_nr, o->p_rh, o->layers);
    if (!good) {
        sdlstm_model_free(m);
        return NULL;
    }
    return m;
}

/* What a checkpoint needs beyond the model to translate raw text: both vocabularies and how the
 * text was tokenised. */
static bool store_settings(sdlstm_model *m, const options *o, const dataset *d) {
    char buf[32];
    snprintf(buf, sizeof buf, "%d", o->lower);
    return ok(sdlstm_set_strings(m, "src_vocab", d->src_vocab.words, d->src_vocab.size),
              "sdlstm_set_strings(src_vocab)") &&
           ok(sdlstm_set_strings(m, "tgt_vocab", d->tgt_vocab.words, d->tgt_vocab.size),
              "sdlstm_set_strings(tgt_vocab)") &&
           ok(sdlstm_set_metadata(m, "nmt.src", o->src), "sdlstm_set_metadata") &&
           ok(sdlstm_set_metadata(m, "nmt.tgt", o->tgt), "sdlstm_set_metadata") &&
           ok(sdlstm_set_metadata(m, "nmt.lower", buf), "sdlstm_set_metadata") &&
           ok(sdlstm_set_metadata(m, "nmt.tokenizer", "sdlstm-nmt examples/nmt/nmt.c"), "sdlstm_set_metadata") &&
           ok(sdlstm_set_metadata(m, "nmt.policy", o->policy_name), "sdlstm_set_metadata");
}

/* Saves the best model so far; a failure is reported and counted, and training goes on. */
static void save_best(sdlstm_model *m, const options *o, int32_t epoch, double val_bleu, int *failures) {
    if (!o->save_path) return;
    char e[32], b[32];
    snprintf(e, sizeof e, "%d", epoch);
    snprintf(b, sizeof b, "%.17g", val_bleu);
    if (ok(sdlstm_set_metadata(m, "nmt.epoch", e), "sdlstm_set_metadata") &&
        ok(sdlstm_set_metadata(m, "nmt.val_bleu", b), "sdlstm_set_metadata") &&
        ok(sdlstm_save(m, o->save_path, SDLSTM_SAVE_DEFAULT), "sdlstm_save"))
        fprintf(stderr, "nmt: saved %s\n", o->save_path);
    else
        ++*failures;
}

/* ------------------------------------------------------------------------------------------ */
/* Evaluation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static double ppl_of(double loss_sum, int64_t tokens) {
    return tokens > 0 ? exp(loss_sum / (double)tokens) : NAN;
}

/* Perplexity of a split's target sides given their sources. A non-finite loss is reported and
 * gives an infinite perplexity, which the schedule reads as "worse"; other failures end the run. */
static bool evaluate(sdlstm_model *m, const split *s, batch_buffers *b, double *ppl) {
    double loss_sum = 0;
    int64_t tokens = 0;
    for (int32_t first = 0; first < s->n; first += b->rows) {
        int32_t n = s->n - first < b->rows ? s->n - first : b->rows;
        sdlstm_batch batch = fill_batch(s, s->by_length + first, n, b);
        sdlstm_stats st = {.struct_size = sizeof st};
        sdlstm_status rc = sdlstm_evaluate(m, &batch, &st);
        if (rc == SDLSTM_E_NUMERIC) {
            fprintf(stderr, "nmt: warning: %s perplexity: %s: %s\n", s->name, sdlstm_status_name(rc),
                    sdlstm_last_error());
            *ppl = INFINITY;
            return true;
        }
        if (!ok(rc, "sdlstm_evaluate")) return false;
        loss_sum += st.loss * (double)st.tokens;
        tokens += st.tokens;
    }
    *ppl = ppl_of(loss_sum, tokens);
    return true;
}

/* Translates every source line of s into hyps[line] (malloc'd text, replacing what was there):
 * beam search on batches of similar length, the best hypothesis detokenised. <unk> is left out:
 * it has no spelling, and written out it would be three wrong tokens to BLEU's 13a tokeniser. */
static bool translate(sdlstm_model *m, const dataset *d, const split *s, const options *o, batch_buffers *b,
                      char **hyps) {
    const char **words = NULL;
    for (int32_t first = 0; first < s->n; first += b->rows) {
        int32_t n = s->n - first < b->rows ? s->n - first : b->rows;
        sdlstm_batch batch = fill_batch(s, s->by_length + first, n, b);
        int32_t max_len = decode_limit(o, batch.seq_len);
        sdlstm_decode_options dec = {
            .struct_size = sizeof dec,
            .bos_id = BOS,
            .eos_id = EOS,
            .beam_size = o->beam,
            .max_len = max_len,
            .length_penalty = (float)o->length_penalty,
        };
        if (!ok(sdlstm_translate(m, &batch, &dec, b->out, b->out_len, NULL), "sdlstm_translate")) goto fail;
        const char **more = realloc(words, (size_t)max_len * sizeof *words);
        if (!more) goto oom;
        words = more;
        for (int32_t i = 0; i < n; i++) {
            const int32_t *ids = b->out + (size_t)i * max_len;
            int32_t len = b->out_len[i];
            if (len < 0 || len > max_len) {
                fprintf(stderr, "nmt: sdlstm_translate returned a length of %d (max_len %d)\n", len, max_len);
                goto fail;
            }
            int32_t kept = 0;
            size_t bytes = 1;
            for (int32_t t = 0; t < len; t++) {
                if (ids[t] < 0 || ids[t] >= d->tgt_vocab.size) {
                    fprintf(stderr, "nmt: sdlstm_translate returned the target id %d\n", ids[t]);
                    goto fail;
                }
                if (ids[t] < SPECIALS) continue;
                words[kept] = d->tgt_vocab.words[ids[t]];
                bytes += strlen(words[kept]) + 1;
                kept++;
            }
            char *text = malloc(bytes);
            if (!text) goto oom;
            detokenize(words, kept, text);
            int32_t line = s->by_length[first + i];
            free(hyps[line]);
            hyps[line] = text;
        }
    }
    free(words);
    return true;
oom:
    fputs("nmt: out of memory translating\n", stderr);
fail:
    free(words);
    return false;
}

/* Corpus BLEU of hyps against the raw reference lines of s. */
static bool bleu(const options *o, const split *s, char *const *hyps, double *score) {
    sdlstm_bleu_options opt = {.struct_size = sizeof opt, .lowercase = o->lower, .tokenize = 1};
    sdlstm_bleu_scores out = {.struct_size = sizeof out};
    if (!ok(sdlstm_bleu((const char *const *)hyps, (const char *const *)s->tgt.lines, s->n, &opt, &out),
            "sdlstm_bleu"))
        return false;
    *score = out.bleu;
    return true;
}

static bool write_lines(const char *path, char *const *lines, int32_t n) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "nmt: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    for (int32_t i = 0; i < n; i++) {
        fputs(lines[i], f);
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "nmt: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static bool train_epoch(sdlstm_model *m, const dataset *d, const options *o, int32_t epoch, double lr,
                        uint64_t *rng, int32_t *order, int32_t *batch_start, batch_buffers *buf,
                        train_totals *tot) {
    if (!ok(sdlstm_set_learning_rate(m, (float)lr), "sdlstm_set_learning_rate")) return false;
    int32_t batches = plan_epoch(d, o->batch, rng, order, batch_start);
    int64_t steps = batches;
    if (o->max_steps > 0 && o->max_steps < steps) steps = o->max_steps;
    int64_t report_every = steps >= 10 ? steps / 10 : 1;

    double epoch_loss = 0, window_loss = 0;
    int64_t epoch_tokens = 0, window_tokens = 0;
    double t_start = now_s();
    for (int64_t k = 0; k < steps; k++) {
        int32_t first = batch_start[k];
        int32_t n = d->kept - first < o->batch ? d->kept - first : o->batch;
        sdlstm_batch batch = fill_batch(&d->train, order + first, n, buf);
        sdlstm_stats st;
        int stepped = train_step(m, &batch, &st, epoch, k, tot);
        if (stepped < 0) return false;
        if (stepped) {
            epoch_loss += st.loss * (double)st.tokens;
            epoch_tokens += st.tokens;
            window_loss += st.loss * (double)st.tokens;
            window_tokens += st.tokens;
        }
        if ((k + 1) % report_every == 0 || k + 1 == steps) {
            double elapsed = now_s() - t_start;
            double wps = elapsed > 0 ? (double)epoch_tokens / elapsed : 0;
            char eta[32];
            format_duration(eta, sizeof eta, elapsed / (double)(k + 1) * (double)(steps - k - 1));
            double wl = window_tokens > 0 ? window_loss / (double)window_tokens : NAN;
            fprintf(stderr,
                    "epoch %d  step %" PRId64 "/%" PRId64 "  lr %.4g  loss %.4f  ppl %.2f  %.0f words/s  ETA %s\n",
                    epoch, k + 1, steps, lr, wl, exp(wl), wps, eta);
            window_loss = 0;
            window_tokens = 0;
        }
    }
    tot->seconds += now_s() - t_start;
    tot->tokens += epoch_tokens;
    tot->last_epoch_loss = epoch_loss;
    tot->last_epoch_tokens = epoch_tokens;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Dry run                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* How many lines of a side come back unchanged from detokenize(tokenize(line)) with the case kept;
 * the first few that do not are shown. */
static bool round_trip(const split *s, const side *sd, const char *lang) {
    token_sink sink = {0};
    char *scratch = NULL;
    int32_t same = 0, shown = 0;
    bool good = false;
    for (int32_t i = 0; i < s->n; i++) {
        size_t k = strlen(sd->lines[i]);
        char *bytes = realloc(scratch, 4 * k + 2); /* the tokens (2k), then the text (2k) */
        if (!bytes) goto done;
        scratch = bytes;
        sink.at = scratch;
        sink.count = 0;
        int64_t n = tokenize_line(sd->lines[i], false, &sink);
        if (n < 0) goto done;
        char *text = scratch + 2 * k + 1;
        detokenize((const char *const *)sink.tokens, n, text);
        if (strcmp(text, sd->lines[i]) == 0) same++;
        else if (shown++ < 5)
            fprintf(stderr, "  %s.%s:%d\n    raw:   %s\n    detok: %s\n", s->name, lang, i + 1, sd->lines[i], text);
    }
    fprintf(stderr, "nmt: round trip %s.%s: %d of %d lines (%.2f%%) come back exactly\n", s->name, lang, same,
            s->n, 100.0 * same / s->n);
    good = true;
done:
    if (!good) fputs("nmt: out of memory\n", stderr);
    free(sink.tokens);
    free(scratch);
    return good;
}

static bool dry_run(const options *o, const dataset *d, int32_t *order, int32_t *batch_start) {
    uint64_t rng = rng_seed(o->seed);
    int32_t batches = plan_epoch(d, o->batch, &rng, order, batch_start);
    int64_t src_cells = 0, tgt_cells = 0, src_tokens = 0;
    for (int32_t k = 0; k < batches; k++) {
        int32_t first = batch_start[k], n = d->kept - first < o->batch ? d->kept - first : o->batch;
        int32_t S = 1, T = 2;
        for (int32_t i = 0; i < n; i++) {
            int32_t pair = order[first + i];
            src_tokens += d->train.src.len[pair];
            if (d->train.src.len[pair] > S) S = d->train.src.len[pair];
            if (d->train.tgt.len[pair] + 2 > T) T = d->train.tgt.len[pair] + 2;
        }
        src_cells += (int64_t)n * S;
        tgt_cells += (int64_t)n * T;
    }
    int64_t tgt_rows = d->kept_target_tokens + d->kept; /* n + 2 per pair */
    fprintf(stderr,
            "nmt: %d batches per epoch; %" PRId64 " source and %" PRId64 " target tokens per epoch "
            "(the target ones, n + 1 per sentence, are what words/s counts); padding %.1f%% of the "
            "source cells, %.1f%% of the target cells\n",
            batches, src_tokens, d->kept_target_tokens, 100.0 * (double)(src_cells - src_tokens) / (double)src_cells,
            100.0 * (double)(tgt_cells - tgt_rows) / (double)tgt_cells);
    const split *splits[] = {&d->val, &d->test};
    for (int i = 0; i < 2; i++)
        if (!round_trip(splits[i], &splits[i]->src, o->src) || !round_trip(splits[i], &splits[i]->tgt, o->tgt))
            return false;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void print_result(const options *o, const sdlstm_runtime_info *rt, const dataset *d, const train_totals *tot,
                         int32_t best_epoch, double val_bleu, double test_bleu, double val_ppl, double seconds) {
    printf("{\"task\":\"nmt\",\"policy\":\"%s\"", o->policy_name);
    json_number("p_nr", o->p_nr);
    json_number("p_rh", o->p_rh);
    printf(",\"epochs\":%d", o->epochs);
    json_number("val_bleu", val_bleu);
    json_number("test_bleu", test_bleu);
    json_number("words_per_s", tot->seconds > 0 ? (double)tot->tokens / tot->seconds : NAN);
    json_number("seconds", seconds);
    printf(",\"best_epoch\":%d", best_epoch);
    json_number("val_ppl", val_ppl);
    printf(",\"src\":\"%s\",\"tgt\":\"%s\",\"lower\":%d,\"min_count\":%d,\"max_len\":%d", o->src, o->tgt, o->lower,
           o->min_count, o->max_len);
    printf(",\"src_vocab\":%d,\"tgt_vocab\":%d,\"train_pairs\":%d", d->src_vocab.size, d->tgt_vocab.size, d->kept);
    printf(",\"hidden\":%d,\"layers\":%d,\"embed\":%d,\"bidirectional\":%d,\"input_feeding\":%d", o->hidden,
           o->layers, o->embed, o->bidirectional, o->input_feeding);
    printf(",\"batch\":%d,\"max_steps\":%" PRId64 ",\"beam\":%d", o->batch, o->max_steps, o->beam);
    json_number("length_penalty", o->length_penalty);
    printf(",\"max_decode\":%d", o->max_decode);
    json_number("lr", o->lr);
    json_number("lr_decay", o->lr_decay);
    printf(",\"decay_after\":%d", o->decay_after);
    json_number("clip", o->clip);
    json_number("init", o->init);
    printf(",\"threads\":%d,\"seed\":%" PRIu64, o->threads, o->seed);
    printf(",\"steps\":%" PRId64 ",\"numeric_skips\":%" PRId64, tot->steps, tot->numeric_skips);
    json_number("train_ppl", ppl_of(tot->last_epoch_loss, tot->last_epoch_tokens));
    json_number("skipped_macs_fraction", tot->steps > 0 ? tot->skipped_sum / (double)tot->steps : 0);
    json_number("train_seconds", tot->seconds);
    json_runtime(rt);
    printf(",\"version\":\"%s\"}\n", sdlstm_version());
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------ */

static void free_lines(char **lines, int32_t n) {
    if (!lines) return;
    for (int32_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

int main(int argc, char **argv) {
    double t0 = now_s();
    options o;
    parse_args(argc, argv, &o);
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1;
    dataset d = {0};
    sdlstm_model *m = NULL;
    int32_t *order = NULL, *batch_start = NULL;
    char **val_hyps = NULL, **test_hyps = NULL;
    batch_buffers buf = {0};

    if (!dataset_load(&o, &d)) goto done;
    fprintf(stderr,
            "nmt: %s -> %s; vocab %d -> %d (min count %d); pairs train %d (%d used: %d with a side "
            "over %d tokens or an empty source dropped) val %d %s %d\n",
            o.src, o.tgt, d.src_vocab.size, d.tgt_vocab.size, o.min_count, d.train.n, d.kept,
            d.train.n - d.kept, o.max_len, d.val.n, o.test_name, d.test.n);

    order = malloc((size_t)d.kept * sizeof *order);
    batch_start = malloc((size_t)d.kept * sizeof *batch_start);
    val_hyps = calloc((size_t)d.val.n, sizeof *val_hyps);
    test_hyps = calloc((size_t)d.test.n, sizeof *test_hyps);
    if (!order || !batch_start || !val_hyps || !test_hyps) {
        fputs("nmt: out of memory\n", stderr);
        goto done;
    }
    if (o.dry_run) {
        status = dry_run(&o, &d, order, batch_start) ? 0 : 1;
        goto done;
    }
    if (!buffers_init(&buf, &d, &o)) goto done;

    m = make_model(&o, &d);
    if (!m || !store_settings(m, &o, &d)) goto done;
    int64_t params = 0;
    if (!ok(sdlstm_get_parameter_count(m, &params), "sdlstm_get_parameter_count")) goto done;
    fprintf(stderr,
            "nmt: encoder-decoder %d x %d%s%s, embed %d, %" PRId64 " parameters; policy %s p_nr %g p_rh %g; "
            "%d steps per epoch\n",
            o.layers, o.hidden, o.bidirectional ? ", bidirectional encoder" : "",
            o.input_feeding ? ", input feeding" : "", o.embed, params, o.policy_name, o.p_nr, o.p_rh,
            (d.kept + o.batch - 1) / o.batch);

    uint64_t rng = rng_seed(o.seed);
    train_totals tot = {0};
    double best_val = -1, best_test = NAN, best_ppl = NAN, lr = o.lr, last_ppl = NAN;
    bool decaying = false;
    int32_t best_epoch = 0;
    int save_failures = 0;
    for (int32_t e = 1; e <= o.epochs; e++) {
        if (e > o.decay_after) decaying = true;
        if (decaying) lr *= o.lr_decay;
        if (!ok(sdlstm_set_epoch(m, e), "sdlstm_set_epoch")) goto done;
        if (!train_epoch(m, &d, &o, e, lr, &rng, order, batch_start, &buf, &tot)) goto done;

        double val_ppl = NAN, val_bleu = NAN, t = now_s();
        if (!evaluate(m, &d.val, &buf, &val_ppl)) goto done;
        /* OpenNMT-py's trigger: a validation perplexity worse than the epoch before's starts the decay. */
        if (val_ppl > last_ppl || isinf(val_ppl)) decaying = true;
        last_ppl = val_ppl;
        if (!translate(m, &d, &d.val, &o, &buf, val_hyps) || !bleu(&o, &d.val, val_hyps, &val_bleu)) goto done;
        bool best = val_bleu > best_val;
        /* The test set is translated only for a new best validation BLEU: its score is reported, never used. */
        if (best) {
            double test_bleu = NAN;
            if (!translate(m, &d, &d.test, &o, &buf, test_hyps) || !bleu(&o, &d.test, test_hyps, &test_bleu))
                goto done;
            best_val = val_bleu;
            best_test = test_bleu;
            best_ppl = val_ppl;
            best_epoch = e;
            if (o.out_path && !write_lines(o.out_path, test_hyps, d.test.n)) goto done;
            save_best(m, &o, e, val_bleu, &save_failures);
        }
        char took[32];
        format_duration(took, sizeof took, now_s() - t);
        fprintf(stderr, "epoch %d  train ppl %.2f  val ppl %.2f  val BLEU %.2f%s  (evaluated in %s)\n", e,
                ppl_of(tot.last_epoch_loss, tot.last_epoch_tokens), val_ppl, val_bleu, best ? "  (best so far)" : "",
                took);
    }
    fprintf(stderr, "best val BLEU %.2f at epoch %d; its test BLEU %.2f\n", best_val, best_epoch, best_test);

    print_result(&o, &rt, &d, &tot, best_epoch, best_val, best_test, best_ppl, now_s() - t0);
    status = save_failures > 0;

done:
    sdlstm_model_free(m);
    buffers_free(&buf);
    free(order);
    free(batch_start);
    free_lines(val_hyps, d.val.n);
    free_lines(test_hyps, d.test.n);
    dataset_free(&d);
    return status;
}
