/*
 * nmt — trains an LSTM encoder-decoder with attention (SDLSTM_TASK_SEQ2SEQ) to translate, by default
 * German to English on Multi30k, with sdlstm, and translates a user's file with one.
 *
 *   nmt [train] --data DIR [options]            train, pick the epoch by val BLEU, --save it
 *   nmt --load FILE --data DIR                  evaluate a checkpoint on DIR's val and test sets
 *   nmt translate --load FILE [options] INPUT   translate a file, one line out per line in
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
 * source line, in order) and whose model goes to --save, with what translating raw text needs: both
 * vocabularies (string tables "src_vocab" and "tgt_vocab"), the lowercasing (metadata "nmt.lower")
 * and the languages ("nmt.src", "nmt.tgt").
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
 * Build (in examples/nmt):
 *   cc -std=c11 -O2 nmt.c ../common/example.c $(pkg-config --cflags --libs sdlstm) -lm -o sdlstm-nmt
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/example.h"

const char *const example_name = "nmt";

static const long long big = INT32_MAX;

typedef struct options {
    train_options train;
    const char *data_dir;
    const char *src;
    const char *tgt;
    const char *test_name;
    const char *out_path;
    int32_t lower;
    int32_t min_count;
    int32_t max_len;
    int32_t bidirectional;
    int32_t input_feeding;
    int32_t beam;
    double length_penalty;
    int32_t max_decode; /* 0: 2 x the longest source of the batch + 10 */
    bool dry_run;
} options;

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

/* Reads the file at path and tokenises its lines. */
static bool load_side(const char *path, bool lower, side *s, int32_t *lines) {
    *s = (side){0};
    size_t size = 0;
    int32_t n = 0;
    if (!(s->text = read_file(NULL, path, &size)) || !split_lines(s->text, size, &s->lines, &n)) return false;
    if (n == 0) {
        fprintf(stderr, "nmt: %s has no lines\n", path);
        return false;
    }
    s->first = malloc((size_t)n * sizeof *s->first);
    s->len = malloc((size_t)n * sizeof *s->len);
    s->arena = malloc(2 * size + 1);
    if (!s->first || !s->len || !s->arena) goto oom;
    token_sink sink = {.at = s->arena};
    for (int32_t i = 0; i < n; i++) {
        s->first[i] = sink.count;
        int64_t count = tokenize_line(s->lines[i], lower, &sink);
        if (count < 0) {
            free(sink.tokens);
            goto oom;
        }
        if (count > INT32_MAX / 4) {
            free(sink.tokens);
            fprintf(stderr, "nmt: %s: line %d has too many tokens\n", path, i + 1);
            return false;
        }
        s->len[i] = (int32_t)count;
        if (count > s->max_len) s->max_len = (int32_t)count;
    }
    s->tokens = sink.tokens;
    s->ids = malloc((size_t)(sink.count > 0 ? sink.count : 1) * sizeof *s->ids);
    if (!s->ids) goto oom;
    *lines = n;
    return true;
oom:
    fprintf(stderr, "nmt: out of memory reading %s\n", path);
    return false;
}

typedef struct dataset {
    split train, val, test;
    vocab src_vocab, tgt_vocab; /* the specials, then training tokens by falling count */
    char **src_block, **tgt_block; /* own the vocabularies' words when they come from a checkpoint */
    char *src_lang, *tgt_lang;     /* a checkpoint's languages */
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
    sdlstm_free(d->src_block);
    sdlstm_free(d->tgt_block);
    sdlstm_free(d->src_lang);
    sdlstm_free(d->tgt_lang);
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

/* The pairs of s by length, for evaluation batches. */
static bool sort_split(split *s) {
    s->by_length = malloc((size_t)s->n * sizeof *s->by_length);
    if (!s->by_length) {
        fputs("nmt: out of memory\n", stderr);
        return false;
    }
    for (int32_t i = 0; i < s->n; i++) s->by_length[i] = i;
    sort_by_length(s, s->by_length, s->n);
    return true;
}

static bool load_split(const options *o, const char *name, split *s) {
    *s = (split){.name = name};
    int32_t src_lines = 0, tgt_lines = 0;
    char src_path[4096], tgt_path[4096];
    if (snprintf(src_path, sizeof src_path, "%s/%s.%s", o->data_dir, name, o->src) >= (int)sizeof src_path ||
        snprintf(tgt_path, sizeof tgt_path, "%s/%s.%s", o->data_dir, name, o->tgt) >= (int)sizeof tgt_path) {
        fprintf(stderr, "nmt: path too long: %s/%s\n", o->data_dir, name);
        return false;
    }
    if (!load_side(src_path, o->lower, &s->src, &src_lines) || !load_side(tgt_path, o->lower, &s->tgt, &tgt_lines))
        return false;
    if (src_lines != tgt_lines) {
        fprintf(stderr, "nmt: %s/%s.%s has %d lines but %s.%s has %d\n", o->data_dir, name, o->src, src_lines,
                name, o->tgt, tgt_lines);
        return false;
    }
    s->n = src_lines;
    return sort_split(s);
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

/* Buffers for batches of --batch pairs of any of splits[0 .. count-1]. */
static bool buffers_init(batch_buffers *b, const split *const *splits, int count, const options *o) {
    *b = (batch_buffers){.rows = o->train.batch, .max_src = 1, .max_tgt = 2};
    for (int i = 0; i < count; i++) {
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
    cfg.bidirectional = o->bidirectional;
    cfg.input_feeding = o->input_feeding;
    return create_model(&cfg, &o->train);
}

/* What a checkpoint needs beyond the model to translate raw text: both vocabularies and how the
 * text was tokenised; and the training settings. */
static bool store_settings(sdlstm_model *m, const options *o, const dataset *d) {
    return vocab_store(m, "src_vocab", &d->src_vocab) && vocab_store(m, "tgt_vocab", &d->tgt_vocab) &&
           meta_set_text(m, "nmt.src", o->src) && meta_set_text(m, "nmt.tgt", o->tgt) &&
           meta_set_number(m, "nmt.lower", o->lower) &&
           meta_set_text(m, "nmt.tokenizer", "sdlstm-nmt examples/nmt/nmt.c") &&
           meta_set_number(m, "nmt.min_count", o->min_count) && meta_set_number(m, "nmt.max_len", o->max_len) &&
           store_schedule(m, "nmt", &o->train);
}

/* A loaded translator's vocabularies, tokenisation and architecture into d and o. */
static bool restore_settings(sdlstm_model *m, options *o, dataset *d) {
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    double lower = o->lower, min_count = o->min_count, max_len = o->max_len;
    if (!restore_model_options(m, SDLSTM_TASK_SEQ2SEQ, &o->train) || !restore_schedule(m, "nmt", &o->train) ||
        !ok(sdlstm_get_config(m, &cfg), "sdlstm_get_config") || !meta_number(m, "nmt.lower", &lower) ||
        !meta_number(m, "nmt.min_count", &min_count) || !meta_number(m, "nmt.max_len", &max_len) ||
        !vocab_restore(m, "src_vocab", cfg.vocab_size, &d->src_vocab, &d->src_block) ||
        !vocab_restore(m, "tgt_vocab", cfg.target_vocab_size, &d->tgt_vocab, &d->tgt_block))
        return false;
    for (int32_t i = 0; i < SPECIALS; i++)
        if (strcmp(d->src_vocab.words[i], special_names[i]) != 0 || strcmp(d->tgt_vocab.words[i], special_names[i]) != 0) {
            fputs("nmt: the checkpoint's vocabularies do not begin with <unk> <pad> <bos> <eos>\n", stderr);
            return false;
        }
    o->lower = lower != 0;
    o->min_count = min_count >= 1 && min_count <= INT32_MAX ? (int32_t)min_count : o->min_count;
    o->max_len = max_len >= 1 && max_len <= INT32_MAX ? (int32_t)max_len : o->max_len;
    o->bidirectional = cfg.bidirectional;
    o->input_feeding = cfg.input_feeding;
    char *src = NULL, *tgt = NULL;
    if (!ok(sdlstm_get_metadata(m, "nmt.src", &src), "sdlstm_get_metadata") ||
        !ok(sdlstm_get_metadata(m, "nmt.tgt", &tgt), "sdlstm_get_metadata")) {
        sdlstm_free(src);
        return false;
    }
    d->src_lang = src;
    d->tgt_lang = tgt;
    if (src) o->src = src;
    if (tgt) o->tgt = tgt;
    return true;
}

/* Saves the best model so far; a failure is reported and counted, and training goes on. */
static void save_best(sdlstm_model *m, const options *o, int32_t epoch, double val_bleu, int *failures) {
    if (!o->train.save_path) return;
    if (meta_set_number(m, "nmt.epoch", epoch) && meta_set_number(m, "nmt.val_bleu", val_bleu))
        save_checkpoint(m, o->train.save_path, failures);
    else
        ++*failures;
}

/* ------------------------------------------------------------------------------------------ */
/* Evaluation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

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

/* Writes lines to path, or to stdout when path is NULL. */
static bool write_lines(const char *path, char *const *lines, int32_t n) {
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f) {
        fprintf(stderr, "nmt: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    for (int32_t i = 0; i < n; i++) {
        fputs(lines[i], f);
        fputc('\n', f);
    }
    if (path ? fclose(f) != 0 : fflush(f) != 0) {
        fprintf(stderr, "nmt: cannot write %s: %s\n", path ? path : "stdout", strerror(errno));
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
    int32_t batches = plan_epoch(d, o->train.batch, rng, order, batch_start);
    int64_t steps = batches;
    if (o->train.max_steps > 0 && o->train.max_steps < steps) steps = o->train.max_steps;
    epoch_meter em;
    meter_start(&em, tot, epoch, steps, lr, true);
    for (int64_t k = 0; k < steps; k++) {
        int32_t first = batch_start[k];
        int32_t n = d->kept - first < o->train.batch ? d->kept - first : o->train.batch;
        sdlstm_batch batch = fill_batch(&d->train, order + first, n, buf);
        if (meter_step(&em, m, &batch, k) < 0) return false;
    }
    meter_finish(&em);
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
    uint64_t rng = rng_seed(o->train.seed);
    int32_t batches = plan_epoch(d, o->train.batch, &rng, order, batch_start);
    int64_t src_cells = 0, tgt_cells = 0, src_tokens = 0;
    for (int32_t k = 0; k < batches; k++) {
        int32_t first = batch_start[k], n = d->kept - first < o->train.batch ? d->kept - first : o->train.batch;
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
    json_begin(stdout, "nmt");
    json_training(stdout, &o->train, tot);
    json_number(stdout, "val_bleu", val_bleu);
    json_number(stdout, "test_bleu", test_bleu);
    json_int(stdout, "best_epoch", best_epoch);
    json_number(stdout, "val_ppl", val_ppl);
    json_string(stdout, "src", o->src);
    json_string(stdout, "tgt", o->tgt);
    json_int(stdout, "lower", o->lower);
    json_int(stdout, "min_count", o->min_count);
    json_int(stdout, "max_len", o->max_len);
    json_int(stdout, "src_vocab", d->src_vocab.size);
    json_int(stdout, "tgt_vocab", d->tgt_vocab.size);
    json_int(stdout, "train_pairs", d->kept);
    json_int(stdout, "bidirectional", o->bidirectional);
    json_int(stdout, "input_feeding", o->input_feeding);
    json_int(stdout, "beam", o->beam);
    json_number(stdout, "length_penalty", o->length_penalty);
    json_int(stdout, "max_decode", o->max_decode);
    json_number(stdout, "train_ppl", ppl_of(tot->last_epoch_loss, tot->last_epoch_tokens));
    json_number(stdout, "seconds", seconds);
    if (o->train.load_path) json_string(stdout, "checkpoint", o->train.load_path);
    json_end(stdout, rt);
}

static void free_lines(char **lines, int32_t n) {
    if (!lines) return;
    for (int32_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
}

/* ------------------------------------------------------------------------------------------ */
/* train                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* The flags of decoding, which train and translate share. */
#define DECODE_FLAGS(o)                                                                                              \
    {.name = "--beam", .kind = FLAG_INT, .value = &(o).beam, .arg = "N", .help = "beam size, 1 = greedy (5)",         \
     .min = 1, .max = 1024},                                                                                         \
    {.name = "--length-penalty", .kind = FLAG_REAL, .value = &(o).length_penalty, .arg = "F",                        \
     .help = "hypotheses rank by log P / (tokens + 1)^F (1)", .range = NON_NEGATIVE},                                 \
    {.name = "--max-decode", .kind = FLAG_INT, .value = &(o).max_decode, .arg = "N",                                 \
     .help = "most target tokens per sentence; 0 = 2 x the longest source of its batch + 10 (0)", .min = 0,          \
     .max = 1 << 16},                                                                                                \
    {.name = "--threads", .kind = FLAG_INT, .value = &(o).train.threads, .arg = "N",                                 \
     .help = "threads used by the library (the cores available)", .min = 1, .max = 4096}

static const options defaults = {
    .train = {.hidden = 256, .layers = 2, .embed = 256, .epochs = 8, .batch = 64, .lr = 5.0, .lr_decay = 0.5,
              .decay_after = 5, .clip = 1.0, .init = 0.1, .policy = 3, .p_nr = 0.3, .seed = 1},
    .src = "de",
    .tgt = "en",
    .test_name = "test_2016_flickr",
    .lower = 1,
    .min_count = 2,
    .max_len = 50,
    .bidirectional = 1,
    .input_feeding = 1,
    .beam = 5,
    .length_penalty = 1.0,
};

static const char train_synopsis[] =
    "usage: nmt [train] --data DIR [options]\n"
    "       nmt --load FILE --data DIR [--test NAME] [--out FILE]   evaluate a checkpoint on val and NAME\n"
    "       nmt translate --load FILE [options] INPUT              translate a file (nmt translate --help)\n"
    "\n"
    "Trains an attention encoder-decoder on DIR/train.{SRC,TGT}, picks the epoch by the BLEU of\n"
    "DIR/val.{SRC,TGT}, reports the BLEU of that epoch on DIR/TEST.{SRC,TGT}.\n"
    "\n";

static int train_main(int argc, char **argv, int first) {
    double t0 = now_s();
    options o = defaults;
    o.train.threads = available_cores();
    train_options *t = &o.train;
    flag flags[] = {
        {.name = "--data", .kind = FLAG_TEXT, .value = &o.data_dir, .arg = "DIR",
         .help = "directory holding the line-aligned raw text files"},
        {.name = "--src", .kind = FLAG_TEXT, .value = &o.src, .arg = "L", .help = "file suffix of the source language (de)",
         .fixed = true},
        {.name = "--tgt", .kind = FLAG_TEXT, .value = &o.tgt, .arg = "L", .help = "file suffix of the target language (en)",
         .fixed = true},
        {.name = "--test", .kind = FLAG_TEXT, .value = &o.test_name, .arg = "NAME",
         .help = "prefix of the test files (test_2016_flickr)"},
        {.name = "--out", .kind = FLAG_TEXT, .value = &o.out_path, .arg = "FILE",
         .help = "test translations of the best-val epoch, one line per source line (none)"},
        {.name = "--save", .kind = FLAG_TEXT, .value = &t->save_path, .arg = "FILE",
         .help = "checkpoint (HDF5) of the best-val epoch, vocabularies included (none)"},
        {.name = "--load", .kind = FLAG_TEXT, .value = &t->load_path, .arg = "FILE",
         .help = "evaluate this checkpoint instead of training (the flags marked * come from it)"},
        {.name = "--epoch-json", .kind = FLAG_TEXT, .value = &t->epoch_json, .arg = "FILE",
         .help = "one JSON line per epoch (lr, train and val ppl, val BLEU)"},
        {.name = "--lower", .kind = FLAG_INT, .value = &o.lower, .arg = "0|1",
         .help = "lowercase the text; BLEU is then case-insensitive (1)", .min = 0, .max = 1, .fixed = true},
        {.name = "--min-count", .kind = FLAG_INT, .value = &o.min_count, .arg = "N",
         .help = "training tokens seen fewer times become <unk> (2)", .min = 1, .max = big, .fixed = true},
        {.name = "--max-len", .kind = FLAG_INT, .value = &o.max_len, .arg = "N",
         .help = "training pairs with a side longer than N tokens are dropped (50)", .min = 1, .max = 1 << 16},
        {.name = "--embed", .kind = FLAG_INT, .value = &t->embed, .arg = "N",
         .help = "embedding width, both languages (256)", .min = 1, .max = big, .fixed = true},
        {.name = "--hidden", .kind = FLAG_INT, .value = &t->hidden, .arg = "N",
         .help = "LSTM width; the bidirectional encoder has N / 2 per direction (256)", .min = 1, .max = big,
         .fixed = true},
        {.name = "--layers", .kind = FLAG_INT, .value = &t->layers, .arg = "N",
         .help = "LSTM layers of the encoder and of the decoder (2)", .min = 1, .max = big, .fixed = true},
        {.name = "--bidirectional", .kind = FLAG_INT, .value = &o.bidirectional, .arg = "0|1",
         .help = "encoder reads both ways (1)", .min = 0, .max = 1, .fixed = true},
        {.name = "--input-feeding", .kind = FLAG_INT, .value = &o.input_feeding, .arg = "0|1",
         .help = "the attentional vector joins the next decoder input (1)", .min = 0, .max = 1, .fixed = true},
        {.name = "--epochs", .kind = FLAG_INT, .value = &t->epochs, .arg = "N", .help = "training epochs (8)", .min = 1,
         .max = big},
        {.name = "--max-steps", .kind = FLAG_INT64, .value = &t->max_steps, .arg = "N",
         .help = "cap on training steps per epoch, 0 = no cap (0)", .min = 0},
        {.name = "--batch", .kind = FLAG_INT, .value = &t->batch, .arg = "N", .help = "sentence pairs per batch (64)",
         .min = 1, .max = 1 << 16},
        {.name = "--lr", .kind = FLAG_REAL, .value = &t->lr, .arg = "F",
         .help = "learning rate for the mean target-token loss (5)", .range = POSITIVE},
        {.name = "--lr-decay", .kind = FLAG_REAL, .value = &t->lr_decay, .arg = "F",
         .help = "factor applied to lr each epoch once decay has begun (0.5)", .range = POSITIVE},
        {.name = "--decay-after", .kind = FLAG_INT, .value = &t->decay_after, .arg = "N",
         .help = "epochs at the full lr, unless val ppl gets worse sooner (5)", .min = 0, .max = big},
        {.name = "--clip", .kind = FLAG_REAL, .value = &t->clip, .arg = "F",
         .help = "global gradient-norm clip, 0 = off (1)", .range = NON_NEGATIVE},
        {.name = "--init", .kind = FLAG_REAL, .value = &t->init, .arg = "F",
         .help = "parameters start uniform in [-F, F] (0.1)", .range = POSITIVE},
        {.name = "--policy", .kind = FLAG_CHOICE, .value = &t->policy, .arg = "P",
         .help = "none|variational|standard|structured|structured-fixed (structured)", .choices = policy_names},
        {.name = "--p-nr", .kind = FLAG_REAL, .value = &t->p_nr, .arg = "F",
         .help = "drop probability on INPUT, BETWEEN (layers >= 2), OUTPUT (0.3)", .range = PROBABILITY},
        {.name = "--p-rh", .kind = FLAG_REAL, .value = &t->p_rh, .arg = "F",
         .help = "drop probability on RECURRENT, 0 = off (0)", .range = PROBABILITY},
        DECODE_FLAGS(o),
        {.name = "--seed", .kind = FLAG_U64, .value = &t->seed, .arg = "N",
         .help = "initialisation, dropout and shuffling seed (1)"},
        {.name = "--dry-run", .kind = FLAG_SWITCH, .value = &o.dry_run,
         .help = "read and batch the data, check the detokeniser, no model"},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    parse_flags(argc, argv, first, train_synopsis, flags, nflags, NULL, 0);
    if (o.data_dir == NULL) bad_usage("--data DIR is required", "", "");
    if (t->load_path) {
        static const char *const training_only[] = {"--save", "--epoch-json", "--epochs", "--max-steps", "--max-len",
                                                    "--batch", "--lr", "--lr-decay", "--decay-after", "--clip",
                                                    "--init", "--policy", "--p-nr", "--p-rh", "--seed", "--dry-run"};
        for (size_t k = 0; k < sizeof training_only / sizeof training_only[0]; k++)
            if (find_flag(flags, nflags, training_only[k])->given)
                bad_usage("--load evaluates a checkpoint and trains no further: drop ", training_only[k], "");
        for (size_t k = 0; k < nflags; k++)
            if (flags[k].fixed && flags[k].given)
                fprintf(stderr, "nmt: warning: %s is ignored: the checkpoint sets it\n", flags[k].name);
    }
    if (o.bidirectional && t->hidden % 2 != 0)
        bad_usage("--hidden must be even with --bidirectional 1 (half per direction)", "", "");
    normalize_dropout(t);
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1, save_failures = 0;
    dataset d = {0};
    sdlstm_model *m = NULL;
    int32_t *order = NULL, *batch_start = NULL;
    char **val_hyps = NULL, **test_hyps = NULL;
    batch_buffers buf = {0};
    FILE *epoch_log = NULL;
    if (!epoch_log_open(t->epoch_json, &epoch_log)) goto done;

    if (t->load_path) {
        if (!ok(sdlstm_load(t->load_path, &m), "sdlstm_load") || !restore_settings(m, &o, &d) ||
            !load_split(&o, "val", &d.val) || !load_split(&o, o.test_name, &d.test))
            goto done;
        split *splits[] = {&d.val, &d.test};
        for (int i = 0; i < 2; i++) {
            assign_ids(&splits[i]->src, splits[i]->n, &d.src_vocab);
            assign_ids(&splits[i]->tgt, splits[i]->n, &d.tgt_vocab);
        }
        t->epochs = 0;
    } else if (!dataset_load(&o, &d)) {
        goto done;
    }
    fprintf(stderr,
            "nmt: %s -> %s; vocab %d -> %d (min count %d); pairs train %d (%d used: %d with a side "
            "over %d tokens or an empty source dropped) val %d %s %d\n",
            o.src, o.tgt, d.src_vocab.size, d.tgt_vocab.size, o.min_count, d.train.n, d.kept, d.train.n - d.kept,
            o.max_len, d.val.n, o.test_name, d.test.n);

    order = malloc((size_t)(d.kept > 0 ? d.kept : 1) * sizeof *order);
    batch_start = malloc((size_t)(d.kept > 0 ? d.kept : 1) * sizeof *batch_start);
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
    const split *all[] = {&d.train, &d.val, &d.test};
    if (!buffers_init(&buf, all, 3, &o)) goto done;
    if (!m && !((m = make_model(&o, &d)) && store_settings(m, &o, &d))) goto done;
    int64_t params = 0;
    if (!ok(sdlstm_get_parameter_count(m, &params), "sdlstm_get_parameter_count")) goto done;
    fprintf(stderr,
            "nmt: encoder-decoder %d x %d%s%s, embed %d, %" PRId64 " parameters; policy %s p_nr %g p_rh %g; "
            "%d steps per epoch; %d threads\n",
            t->layers, t->hidden, o.bidirectional ? ", bidirectional encoder" : "",
            o.input_feeding ? ", input feeding" : "", t->embed, params, policy_name(t), t->p_nr, t->p_rh,
            (d.kept + t->batch - 1) / t->batch, t->threads);

    uint64_t rng = rng_seed(t->seed);
    train_totals tot = {0};
    double best_val = -1, best_test = NAN, best_ppl = NAN, lr = t->lr, last_ppl = NAN;
    bool decaying = false;
    int32_t best_epoch = 0;
    if (t->load_path) {
        double epoch = 0;
        if (!evaluate(m, &d.val, &buf, &best_ppl) || !translate(m, &d, &d.val, &o, &buf, val_hyps) ||
            !bleu(&o, &d.val, val_hyps, &best_val) || !translate(m, &d, &d.test, &o, &buf, test_hyps) ||
            !bleu(&o, &d.test, test_hyps, &best_test) || !meta_number(m, "nmt.epoch", &epoch))
            goto done;
        if (o.out_path && !write_lines(o.out_path, test_hyps, d.test.n)) goto done;
        best_epoch = (int32_t)epoch;
        fprintf(stderr, "nmt: %s: val ppl %.2f, val BLEU %.2f, %s BLEU %.2f\n", t->load_path, best_ppl, best_val,
                o.test_name, best_test);
    }
    for (int32_t e = 1; e <= t->epochs; e++) {
        if (e > t->decay_after) decaying = true;
        if (decaying) lr *= t->lr_decay;
        if (!ok(sdlstm_set_epoch(m, e), "sdlstm_set_epoch")) goto done;
        if (!train_epoch(m, &d, &o, e, lr, &rng, order, batch_start, &buf, &tot)) goto done;

        double val_ppl = NAN, val_bleu = NAN, t_eval = now_s();
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
        format_duration(took, sizeof took, now_s() - t_eval);
        double train_ppl = ppl_of(tot.last_epoch_loss, tot.last_epoch_tokens);
        fprintf(stderr, "epoch %d  train ppl %.2f  val ppl %.2f  val BLEU %.2f%s  (evaluated in %s)\n", e, train_ppl,
                val_ppl, val_bleu, best ? "  (best so far)" : "", took);
        if (epoch_log) {
            epoch_log_begin(epoch_log, "nmt", t, e, lr, &tot);
            json_number(epoch_log, "train_ppl", train_ppl);
            json_number(epoch_log, "val_ppl", val_ppl);
            json_number(epoch_log, "val_bleu", val_bleu);
            json_end(epoch_log, NULL);
        }
    }
    if (t->epochs > 0)
        fprintf(stderr, "best val BLEU %.2f at epoch %d; its test BLEU %.2f\n", best_val, best_epoch, best_test);
    print_result(&o, &rt, &d, &tot, best_epoch, best_val, best_test, best_ppl, now_s() - t0);
    status = save_failures > 0;
done:
    if (epoch_log) fclose(epoch_log);
    sdlstm_model_free(m);
    buffers_free(&buf);
    free(order);
    free(batch_start);
    free_lines(val_hyps, d.val.n);
    free_lines(test_hyps, d.test.n);
    dataset_free(&d);
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* translate: a checkpoint applied to a user's file                                            */
/* ------------------------------------------------------------------------------------------ */

static const char translate_synopsis[] =
    "usage: nmt translate --load FILE [options] INPUT\n"
    "\n"
    "Translates INPUT, raw text with one sentence per line, with the checkpoint's model: tokenised and\n"
    "lowercased as the training text was, tokens outside the source vocabulary read as <unk>, beam\n"
    "search, the best hypothesis detokenised (<unk> left out). One line out per line in, in order; an\n"
    "empty line stays empty.\n"
    "\n";

static int translate_main(int argc, char **argv, int first) {
    options o = defaults;
    o.train.threads = available_cores();
    const char *input = NULL, *output = NULL;
    flag flags[] = {
        {.name = "--load", .kind = FLAG_TEXT, .value = &o.train.load_path, .arg = "FILE",
         .help = "the checkpoint (sdlstm-nmt --save)"},
        {.name = "--output", .kind = FLAG_TEXT, .value = &output, .arg = "FILE", .help = "write here (stdout)"},
        {.name = "--batch", .kind = FLAG_INT, .value = &o.train.batch, .arg = "N", .help = "sentences per batch (64)",
         .min = 1, .max = 1 << 16},
        DECODE_FLAGS(o),
    };
    if (parse_flags(argc, argv, first, translate_synopsis, flags, sizeof flags / sizeof flags[0], &input, 1) != 1)
        bad_usage("the file to translate is required", "", "");
    if (!o.train.load_path) bad_usage("--load FILE is required", "", "");
    int32_t batch = o.train.batch; /* restore_settings reads the training batch */
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1;
    dataset d = {0};
    split s = {.name = input};
    sdlstm_model *m = NULL;
    char **hyps = NULL;
    batch_buffers buf = {0};
    if (!ok(sdlstm_load(o.train.load_path, &m), "sdlstm_load") || !restore_settings(m, &o, &d) ||
        !load_side(input, o.lower, &s.src, &s.n))
        goto done;
    o.train.batch = batch;
    /* No references: every target side is empty. */
    s.tgt.len = calloc((size_t)s.n, sizeof *s.tgt.len);
    s.tgt.first = calloc((size_t)s.n, sizeof *s.tgt.first);
    s.tgt.ids = malloc(sizeof *s.tgt.ids);
    hyps = calloc((size_t)s.n, sizeof *hyps);
    if (!s.tgt.len || !s.tgt.first || !s.tgt.ids || !hyps) {
        fputs("nmt: out of memory\n", stderr);
        goto done;
    }
    assign_ids(&s.src, s.n, &d.src_vocab);
    const split *all[] = {&s};
    if (!sort_split(&s) || !buffers_init(&buf, all, 1, &o) || !translate(m, &d, &s, &o, &buf, hyps)) goto done;
    for (int32_t i = 0; i < s.n; i++)
        if (s.src.len[i] == 0) hyps[i][0] = '\0';
    if (!write_lines(output, hyps, s.n)) goto done;
    int64_t tokens = s.n > 0 ? s.src.first[s.n - 1] + s.src.len[s.n - 1] : 0, oov = 0;
    for (int64_t i = 0; i < tokens; i++) oov += s.src.ids[i] == UNK;
    fprintf(stderr, "nmt: translated %d lines of %s (%s -> %s); %" PRId64 " of %" PRId64
            " source tokens outside the vocabulary read as <unk>\n", s.n, input, o.src, o.tgt, oov, tokens);
    status = 0;
done:
    free_lines(hyps, s.n);
    split_free(&s);
    buffers_free(&buf);
    dataset_free(&d);
    sdlstm_model_free(m);
    return status;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "translate") == 0) return translate_main(argc, argv, 2);
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return train_main(argc, argv, 2);
    return train_main(argc, argv, 1);
}
