/*
 * ner — trains a BiLSTM-CRF named-entity tagger with character features (Lample et al. 2016) on
 * CoNLL-2003 with sdlstm, and tags a user's text with one.
 *
 *   ner [train] --data DIR [options]      train, pick the epoch by dev F1, report test F1, --save it
 *   ner --load FILE --data DIR            evaluate a checkpoint on DIR's dev and test sets
 *   ner tag --load FILE [options] INPUT   tag a file: CoNLL columns out
 *
 * Reads DIR/train.txt, dev.txt and test.txt: one token per line, its tag in the last column,
 * a blank line between sentences, `-DOCSTART-` lines skipped. Words are looked up lowercased and
 * with digits turned into 0 (both optional); the characters keep the word as written, so case
 * reaches the model through them. Training sentences are shuffled each epoch and batched with
 * others of similar length, each step's learning rate scaled by its batch's share of words (every
 * word weighs the same). A training singleton becomes <unk> with probability --unk-replace, and
 * any training word with probability --word-dropout, so that <unk> learns what rare words look
 * like and the tagger learns to read unseen names from their characters and context.
 *
 * The defaults are the settings of the README's results, chosen by dev F1. Without pretrained
 * embeddings, the 28 % of test entity words (18 % of dev's) that never occur in training are <unk>;
 * word dropout, lowercased words and a longer, decaying schedule are what lifted dev F1.
 *
 * After each epoch the dev set is tagged and scored with the library's conlleval-compatible span
 * F1; at each new best dev F1 the test set is tagged too. The test F1 reported is that of the epoch
 * with the best dev F1, whose test predictions go to --out in conlleval's input format (token, gold
 * tag, predicted tag) and whose model goes to --save, with what tagging raw text needs: the word
 * vocabulary (string table "words"), the characters (metadata "ner.char_bytes"), the lowercasing and
 * digit settings (metadata "ner.lower", "ner.zeros") and the tag names. Progress goes to stderr; one
 * JSON line with the results goes to stdout.
 *
 * Build (in examples/ner):
 *   cc -std=c11 -O2 ner.c ../common/example.c $(pkg-config --cflags --libs sdlstm) -lm -o sdlstm-ner
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/example.h"

const char *const example_name = "ner";

static const long long big = INT32_MAX;

/* How words become lookup keys: the settings a checkpoint keeps. */
typedef struct text_options {
    int32_t lower;
    int32_t zeros;
} text_options;

typedef struct options {
    train_options train;
    text_options text;
    const char *data_dir;
    const char *out_path;
    int32_t char_embed;
    int32_t char_hidden;
    int32_t crf;
    int scheme; /* index into scheme_names */
    int32_t min_count;
    double unk_replace;
    double word_dropout;
} options;

static const char *const scheme_names[] = {"none", "iob1", "iob2", NULL};
static const sdlstm_tag_scheme scheme_values[] = {SDLSTM_TAG_SCHEME_NONE, SDLSTM_TAG_SCHEME_IOB1,
                                                  SDLSTM_TAG_SCHEME_IOB2};

/* ------------------------------------------------------------------------------------------ */
/* Sentences                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Tokens (pointers into a file's text, cut in place) grouped into sentences. */
typedef struct split {
    char *text;
    char **words;  /* token as written */
    char **tags;   /* the last column; NULL for a user's text */
    char **keys;   /* the word as looked up (lowercased, digits to 0); owned */
    int64_t tokens;
    int64_t words_cap, tags_cap, keys_cap;
    int32_t *starts;  /* sentence s is tokens starts[s] .. starts[s] + lens[s] - 1 */
    int32_t *lens;
    int32_t sentences;
    int64_t starts_cap, lens_cap;
    int32_t current; /* tokens of the sentence being read */
    /* Ids, filled once the vocabularies exist. */
    int32_t *word_ids;
    int32_t *tag_ids;
} split;

static void split_free(split *s) {
    if (s->keys)
        for (int64_t i = 0; i < s->tokens; i++) free(s->keys[i]);
    free(s->text);
    free(s->words);
    free(s->tags);
    free(s->keys);
    free(s->starts);
    free(s->lens);
    free(s->word_ids);
    free(s->tag_ids);
    *s = (split){0};
}

/* Grows an array of *cap elements of size `size` to hold index n. */
static bool reserve(void **array, int64_t *cap, int64_t n, size_t size) {
    if (n < *cap) return true;
    int64_t bigger = *cap ? *cap * 2 : 1024;
    void *p = realloc(*array, (size_t)bigger * size);
    if (!p) return false;
    *array = p;
    *cap = bigger;
    return true;
}

/* The lookup key of a word: a copy, lowercased and with digits turned into 0 as asked. */
static char *word_key(const char *word, const text_options *t) {
    char *k = strdup(word);
    if (!k) return NULL;
    for (char *p = k; *p; p++) {
        if (t->lower) *p = (char)tolower((unsigned char)*p);
        if (t->zeros && isdigit((unsigned char)*p)) *p = '0';
    }
    return k;
}

/* Ends the sentence being read, if it has tokens. False when out of memory. */
static bool end_sentence(split *s) {
    if (s->current == 0) return true;
    if (!reserve((void **)&s->starts, &s->starts_cap, s->sentences, sizeof *s->starts) ||
        !reserve((void **)&s->lens, &s->lens_cap, s->sentences, sizeof *s->lens))
        return false;
    s->starts[s->sentences] = (int32_t)(s->tokens - s->current);
    s->lens[s->sentences] = s->current;
    s->sentences++;
    s->current = 0;
    return true;
}

/* Adds a token (tag NULL: none) to the sentence being read. False when out of memory. */
static bool add_token(split *s, char *word, char *tag, const text_options *t) {
    if (!reserve((void **)&s->words, &s->words_cap, s->tokens, sizeof *s->words) ||
        !reserve((void **)&s->keys, &s->keys_cap, s->tokens, sizeof *s->keys) ||
        (tag && !reserve((void **)&s->tags, &s->tags_cap, s->tokens, sizeof *s->tags)))
        return false;
    s->words[s->tokens] = word;
    if (tag) s->tags[s->tokens] = tag;
    s->keys[s->tokens] = word_key(word, t);
    if (!s->keys[s->tokens]) return false;
    s->tokens++;
    s->current++;
    return true;
}

/* The id arrays, once the tokens are read. */
static bool alloc_ids(split *s) {
    size_t n = (size_t)(s->tokens > 0 ? s->tokens : 1);
    s->word_ids = malloc(n * sizeof *s->word_ids);
    s->tag_ids = calloc(n, sizeof *s->tag_ids);
    return s->word_ids && s->tag_ids;
}

/* Cuts a line into whitespace-separated columns in place; returns their number, the first and the
 * last in *first and *last. */
static int columns_of(char *line, char **first, char **last) {
    char *save = NULL;
    int n = 0;
    *first = *last = NULL;
    for (char *c = strtok_r(line, " \t\r", &save); c; c = strtok_r(NULL, " \t\r", &save)) {
        if (!*first) *first = c;
        *last = c;
        n++;
    }
    return n;
}

/* Parses a CoNLL file of DIR: tokens with at least two columns, blank lines between sentences. */
static bool load_split(const char *dir, const char *name, const text_options *t, split *s) {
    *s = (split){0};
    size_t size = 0;
    char **lines = NULL;
    int32_t n = 0;
    if (!(s->text = read_file(dir, name, &size)) || !split_lines(s->text, size, &lines, &n)) return false;
    bool good = false;
    for (int32_t i = 0; i < n; i++) {
        char *first, *last;
        int columns = columns_of(lines[i], &first, &last);
        if (columns == 0 || strcmp(first, "-DOCSTART-") == 0) {
            if (!end_sentence(s)) goto oom;
            continue;
        }
        if (columns < 2) {
            fprintf(stderr, "ner: %s/%s:%d: expected a token and a tag\n", dir, name, i + 1);
            goto done;
        }
        if (s->tokens >= INT32_MAX) {
            fprintf(stderr, "ner: %s/%s: too many tokens\n", dir, name);
            goto done;
        }
        if (!add_token(s, first, last, t)) goto oom;
    }
    if (!end_sentence(s) || !alloc_ids(s)) goto oom;
    if (s->sentences == 0) fprintf(stderr, "ner: %s/%s has no sentences\n", dir, name);
    else good = true;
    goto done;
oom:
    fputs("ner: out of memory reading the data\n", stderr);
done:
    free(lines);
    return good;
}

/* ------------------------------------------------------------------------------------------ */
/* Dataset: the splits and the vocabularies (from the training split or from a checkpoint)     */
/* ------------------------------------------------------------------------------------------ */

#define UNK 0 /* word id and character id of everything unseen in training */

typedef struct dataset {
    split train, dev, test;
    vocab words;        /* keys of training words with count >= min_count; id 0 is <unk> */
    uint8_t *singleton; /* per word id: seen exactly once in training */
    int32_t char_ids[256];  /* byte -> character id; bytes unseen in training map to UNK */
    int32_t char_vocab;
    vocab tags;         /* tag names */
    char **words_block, **tags_block; /* own the names when they come from a checkpoint */
} dataset;

static void dataset_free(dataset *d) {
    vocab_free(&d->words);
    vocab_free(&d->tags);
    sdlstm_free(d->words_block);
    sdlstm_free(d->tags_block);
    free(d->singleton);
    split_free(&d->train);
    split_free(&d->dev);
    split_free(&d->test);
    *d = (dataset){0};
}

/* Word ids of a split's tokens, and (when it has tags) tag ids; a tag outside the tag set is an error. */
static bool assign_ids(const dataset *d, split *s, const char *name) {
    for (int64_t i = 0; i < s->tokens; i++) {
        int32_t w = vocab_find(&d->words, s->keys[i]);
        s->word_ids[i] = w < 0 ? UNK : w;
        if (!s->tags) continue;
        int32_t t = vocab_find(&d->tags, s->tags[i]);
        if (t < 0) {
            fprintf(stderr, "ner: %s: tag '%s' is not one of the model's tags\n", name, s->tags[i]);
            return false;
        }
        s->tag_ids[i] = t;
    }
    return true;
}

/* The vocabularies from DIR/train.txt. */
static bool build_vocabularies(const options *o, dataset *d) {
    vocab counts;
    int64_t *count = NULL;
    if (!vocab_init(&counts) || !vocab_init(&d->words) || !vocab_init(&d->tags)) goto oom;
    /* Word counts over the training keys, then the vocabulary of those frequent enough. */
    count = calloc((size_t)d->train.tokens + 1, sizeof *count);
    if (!count) goto oom;
    for (int64_t i = 0; i < d->train.tokens; i++) {
        int32_t id = vocab_add(&counts, d->train.keys[i]);
        if (id < 0) goto oom;
        count[id]++;
    }
    if (vocab_add(&d->words, "<unk>") != UNK) goto oom;
    for (int32_t id = 0; id < counts.size; id++)
        if (count[id] >= o->min_count && vocab_add(&d->words, counts.words[id]) < 0) goto oom;
    d->singleton = calloc((size_t)d->words.size, 1);
    if (!d->singleton) goto oom;
    for (int32_t id = 0; id < counts.size; id++) {
        int32_t w = vocab_find(&d->words, counts.words[id]);
        if (w > 0 && count[id] == 1) d->singleton[w] = 1;
    }
    free(count);
    vocab_free(&counts);

    /* Characters: every byte of a training word gets an id; 0 is <unk>. */
    d->char_vocab = 1;
    for (int64_t i = 0; i < d->train.tokens; i++)
        for (const unsigned char *c = (const unsigned char *)d->train.words[i]; *c; c++)
            if (d->char_ids[*c] == 0) d->char_ids[*c] = d->char_vocab++;

    /* Tags: "O" first if there is one, then the others in order of appearance. */
    for (int64_t i = 0; i < d->train.tokens; i++)
        if (strcmp(d->train.tags[i], "O") == 0 && vocab_add(&d->tags, d->train.tags[i]) < 0) return false;
    for (int64_t i = 0; i < d->train.tokens; i++)
        if (vocab_add(&d->tags, d->train.tags[i]) < 0) return false;
    return true;
oom:
    free(count);
    vocab_free(&counts);
    fputs("ner: out of memory building the vocabularies\n", stderr);
    return false;
}

static bool dataset_load(const options *o, dataset *d) {
    *d = (dataset){0};
    return load_split(o->data_dir, "train.txt", &o->text, &d->train) &&
           load_split(o->data_dir, "dev.txt", &o->text, &d->dev) &&
           load_split(o->data_dir, "test.txt", &o->text, &d->test) && build_vocabularies(o, d) &&
           assign_ids(d, &d->train, "train.txt") && assign_ids(d, &d->dev, "dev.txt") &&
           assign_ids(d, &d->test, "test.txt");
}

/* The characters of a checkpoint: the bytes of ids 1, 2, ... as two hex digits each. */
static bool store_chars(sdlstm_model *m, const dataset *d) {
    static const char digits[] = "0123456789abcdef";
    char hex[2 * 256 + 1];
    for (int c = 0; c < 256; c++)
        if (d->char_ids[c] > 0) {
            hex[2 * (d->char_ids[c] - 1)] = digits[c >> 4];
            hex[2 * (d->char_ids[c] - 1) + 1] = digits[c & 15];
        }
    hex[2 * (d->char_vocab - 1)] = '\0';
    return meta_set_text(m, "ner.char_bytes", hex);
}

static bool restore_chars(const sdlstm_model *m, int32_t char_vocab, dataset *d) {
    char *hex = NULL;
    if (!ok(sdlstm_get_metadata(m, "ner.char_bytes", &hex), "sdlstm_get_metadata")) return false;
    size_t n = hex ? strlen(hex) : 0;
    bool good = hex && n % 2 == 0 && (char_vocab == 0 || (int64_t)n / 2 + 1 == char_vocab);
    memset(d->char_ids, 0, sizeof d->char_ids);
    d->char_vocab = (int32_t)(n / 2) + 1;
    for (size_t i = 0; good && i < n; i += 2) {
        unsigned int byte;
        good = isxdigit((unsigned char)hex[i]) && isxdigit((unsigned char)hex[i + 1]) &&
               sscanf(hex + i, "%2x", &byte) == 1 && d->char_ids[byte] == 0;
        if (good) d->char_ids[byte] = (int32_t)(i / 2) + 1;
    }
    if (!good) fputs("ner: the checkpoint's ner.char_bytes does not match its character vocabulary\n", stderr);
    sdlstm_free(hex);
    return good;
}

/* What tagging raw text needs beyond the model, and the training settings. */
static bool store_settings(sdlstm_model *m, const options *o, const dataset *d) {
    return vocab_store(m, "words", &d->words) && store_chars(m, d) && store_schedule(m, "ner", &o->train) &&
           meta_set_number(m, "ner.lower", o->text.lower) && meta_set_number(m, "ner.zeros", o->text.zeros) &&
           meta_set_number(m, "ner.word_dropout", o->word_dropout) &&
           meta_set_number(m, "ner.unk_replace", o->unk_replace) && meta_set_number(m, "ner.min_count", o->min_count);
}

/* A loaded tagger's vocabularies, text settings and architecture into d and o. */
static bool restore_settings(sdlstm_model *m, options *o, dataset *d) {
    *d = (dataset){0};
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    if (!restore_model_options(m, SDLSTM_TASK_TAGGER, &o->train) || !restore_schedule(m, "ner", &o->train) ||
        !ok(sdlstm_get_config(m, &cfg), "sdlstm_get_config"))
        return false;
    o->char_embed = cfg.char_embed_size;
    o->char_hidden = cfg.char_vocab_size > 0 ? cfg.char_hidden_size : 0;
    o->crf = cfg.use_crf;
    double lower = 1, zeros = 1, min_count = o->min_count;
    if (!meta_number(m, "ner.lower", &lower) || !meta_number(m, "ner.zeros", &zeros) ||
        !meta_number(m, "ner.word_dropout", &o->word_dropout) || !meta_number(m, "ner.unk_replace", &o->unk_replace) ||
        !meta_number(m, "ner.min_count", &min_count))
        return false;
    o->min_count = min_count >= 1 && min_count <= INT32_MAX ? (int32_t)min_count : 1;
    o->text.lower = lower != 0;
    o->text.zeros = zeros != 0;
    int32_t ntags = 0;
    sdlstm_tag_scheme scheme = SDLSTM_TAG_SCHEME_NONE;
    if (!ok(sdlstm_get_tag_names(m, &d->tags_block, &ntags, &scheme), "sdlstm_get_tag_names")) return false;
    if (!d->tags_block || ntags != cfg.num_tags) {
        fputs("ner: the checkpoint's tagger has no tag names\n", stderr);
        return false;
    }
    for (int k = 0; scheme_names[k]; k++)
        if (scheme_values[k] == scheme) o->scheme = k;
    if (!vocab_init(&d->tags)) return false;
    for (int32_t i = 0; i < ntags; i++)
        if (vocab_add(&d->tags, d->tags_block[i]) != i) {
            fputs("ner: the checkpoint's tag names are not distinct\n", stderr);
            return false;
        }
    return vocab_restore(m, "words", cfg.vocab_size, &d->words, &d->words_block) &&
           restore_chars(m, cfg.char_vocab_size, d);
}

/* ------------------------------------------------------------------------------------------ */
/* Batching                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* The arrays of one sdlstm_batch, sized for the largest batch a split can produce. */
typedef struct batch_buffers {
    int32_t *inputs, *targets, *lengths, *chars, *word_lengths;
    size_t words_cap, chars_cap;
} batch_buffers;

static void buffers_free(batch_buffers *b) {
    free(b->inputs);
    free(b->targets);
    free(b->lengths);
    free(b->chars);
    free(b->word_lengths);
    *b = (batch_buffers){0};
}

/* Fills a batch with sentences order[0 .. n-1] of split s. In training, a singleton becomes <unk>
 * with probability replace and any word with probability word_dropout (the characters stay).
 * Returns false when out of memory. */
static bool fill_batch(const dataset *d, const split *s, const int32_t *order, int32_t n, bool chars,
                       double replace, double word_dropout, uint64_t *rng, batch_buffers *buf,
                       sdlstm_batch *out) {
    int32_t T = 1, W = 1;
    for (int32_t i = 0; i < n; i++) {
        int32_t sent = order[i];
        if (s->lens[sent] > T) T = s->lens[sent];
        for (int32_t t = 0; t < s->lens[sent]; t++) {
            size_t len = strlen(s->words[s->starts[sent] + t]);
            if (len > (size_t)W) W = len > INT32_MAX ? INT32_MAX : (int32_t)len;
        }
    }
    size_t words = (size_t)n * (size_t)T, nchars = chars ? words * (size_t)W : 0;
    if (words > buf->words_cap) {
        free(buf->inputs);
        free(buf->targets);
        free(buf->lengths);
        free(buf->word_lengths);
        buf->inputs = malloc(words * sizeof(int32_t));
        buf->targets = malloc(words * sizeof(int32_t));
        buf->lengths = malloc(words * sizeof(int32_t)); /* n <= words */
        buf->word_lengths = malloc(words * sizeof(int32_t));
        buf->words_cap = words;
        if (!buf->inputs || !buf->targets || !buf->lengths || !buf->word_lengths) return false;
    }
    if (nchars > buf->chars_cap) {
        free(buf->chars);
        buf->chars = malloc(nchars * sizeof(int32_t));
        buf->chars_cap = nchars;
        if (!buf->chars) return false;
    }
    memset(buf->inputs, 0, words * sizeof(int32_t));
    memset(buf->targets, 0, words * sizeof(int32_t));
    memset(buf->word_lengths, 0, words * sizeof(int32_t));
    if (chars) memset(buf->chars, 0, nchars * sizeof(int32_t));
    for (int32_t b = 0; b < n; b++) {
        int32_t sent = order[b], start = s->starts[sent];
        buf->lengths[b] = s->lens[sent];
        for (int32_t t = 0; t < s->lens[sent]; t++) {
            size_t at = (size_t)b * T + t;
            int32_t w = s->word_ids[start + t];
            if (replace > 0 && d->singleton[w] && rng_uniform(rng) < replace) w = UNK;
            if (word_dropout > 0 && rng_uniform(rng) < word_dropout) w = UNK;
            buf->inputs[at] = w;
            buf->targets[at] = s->tag_ids[start + t];
            if (!chars) continue;
            const unsigned char *c = (const unsigned char *)s->words[start + t];
            int32_t len = 0;
            for (; c[len] && len < W; len++) buf->chars[at * W + len] = d->char_ids[c[len]];
            buf->word_lengths[at] = len;
        }
    }
    *out = (sdlstm_batch){
        .struct_size = sizeof(sdlstm_batch),
        .batch_size = n,
        .seq_len = T,
        .inputs = buf->inputs,
        .targets = buf->targets,
        .lengths = buf->lengths,
        .max_word_len = chars ? W : 0,
        .chars = chars ? buf->chars : NULL,
        .word_lengths = chars ? buf->word_lengths : NULL,
    };
    return true;
}

static int32_t *length_key; /* qsort has no context argument */

static int by_length(const void *a, const void *b) {
    int32_t la = length_key[*(const int32_t *)a], lb = length_key[*(const int32_t *)b];
    if (la != lb) return la < lb ? -1 : 1;
    return *(const int32_t *)a < *(const int32_t *)b ? -1 : 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Model set-up                                                                                */
/* ------------------------------------------------------------------------------------------ */

static sdlstm_model *make_model(const options *o, const dataset *d) {
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    if (!ok(sdlstm_config_init(&cfg, SDLSTM_TASK_TAGGER), "sdlstm_config_init")) return NULL;
    cfg.vocab_size = d->words.size;
    cfg.num_tags = d->tags.size;
    cfg.char_vocab_size = o->char_hidden > 0 ? d->char_vocab : 0;
    cfg.char_embed_size = o->char_embed;
    cfg.char_hidden_size = o->char_hidden;
    cfg.use_crf = o->crf;
    /* The dropout sites: INPUT is the word representation entering the BiLSTM, OUTPUT the BiLSTM
     * output entering the tag projection. */
    sdlstm_model *m = create_model(&cfg, &o->train);
    if (m && !(ok(sdlstm_set_tag_names(m, d->tags.words, d->tags.size, scheme_values[o->scheme]),
                  "sdlstm_set_tag_names") &&
               store_settings(m, o, d))) {
        sdlstm_model_free(m);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------------------------------------------ */
/* Tagging and evaluation                                                                      */
/* ------------------------------------------------------------------------------------------ */

#define EVAL_BATCH 64

/* Tags a whole split (sentences batched by length) into pred (s->tokens entries); with f1 not NULL,
 * scores the split's gold tags with the library's span F1. */
static bool predict(sdlstm_model *m, const dataset *d, const split *s, bool chars, int32_t *pred, double *f1) {
    bool good = false;
    sdlstm_span_f1 *counter = NULL;
    batch_buffers buf = {0};
    int32_t *order = malloc((size_t)(s->sentences > 0 ? s->sentences : 1) * sizeof *order);
    int32_t *tags = NULL;
    size_t tags_cap = 0;
    if (!order) goto oom;
    for (int32_t i = 0; i < s->sentences; i++) order[i] = i;
    length_key = s->lens;
    qsort(order, (size_t)s->sentences, sizeof *order, by_length);
    if (f1 && !ok(sdlstm_span_f1_create(d->tags.words, d->tags.size, &counter), "sdlstm_span_f1_create")) goto done;

    for (int32_t first = 0; first < s->sentences; first += EVAL_BATCH) {
        int32_t n = s->sentences - first < EVAL_BATCH ? s->sentences - first : EVAL_BATCH;
        sdlstm_batch batch;
        if (!fill_batch(d, s, order + first, n, chars, 0, 0, NULL, &buf, &batch)) goto oom;
        size_t cells = (size_t)n * (size_t)batch.seq_len;
        if (cells > tags_cap) {
            free(tags);
            tags = malloc(cells * sizeof *tags);
            tags_cap = cells;
            if (!tags) goto oom;
        }
        if (!ok(sdlstm_tag(m, &batch, tags), "sdlstm_tag")) goto done;
        if (counter && !ok(sdlstm_span_f1_add(counter, batch.targets, tags, n, batch.seq_len, batch.lengths),
                           "sdlstm_span_f1_add"))
            goto done;
        for (int32_t b = 0; b < n; b++) {
            int32_t sent = order[first + b];
            for (int32_t t = 0; t < s->lens[sent]; t++) {
                int32_t tag = tags[(size_t)b * batch.seq_len + t];
                if (tag < 0 || tag >= d->tags.size) {
                    fprintf(stderr, "ner: sdlstm_tag returned the tag id %d\n", tag);
                    goto done;
                }
                pred[s->starts[sent] + t] = tag;
            }
        }
    }
    if (counter) {
        sdlstm_span_scores scores = {.struct_size = sizeof scores};
        if (!ok(sdlstm_span_f1_get_scores(counter, -1, &scores), "sdlstm_span_f1_get_scores")) goto done;
        *f1 = 100 * scores.f1;
    }
    good = true;
    goto done;
oom:
    fputs("ner: out of memory tagging\n", stderr);
done:
    sdlstm_span_f1_free(counter);
    buffers_free(&buf);
    free(order);
    free(tags);
    return good;
}

/* Writes a split's predictions in conlleval's input: token, gold tag, predicted tag. */
static bool write_predictions(const char *path, const dataset *d, const split *s, const int32_t *pred) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "ner: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    for (int32_t sent = 0; sent < s->sentences; sent++) {
        for (int32_t t = 0; t < s->lens[sent]; t++) {
            int32_t i = s->starts[sent] + t;
            fprintf(f, "%s %s %s\n", s->words[i], s->tags[i], d->tags.words[pred[i]]);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "ner: cannot write %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Batches of one epoch: shuffle, sort pools of 50 batches by length (little padding), cut them into
 * batches, shuffle the batches. batch_start[k] indexes order. */
static int32_t plan_epoch(const split *s, int32_t batch, uint64_t *rng, int32_t *order, int32_t *batch_start) {
    for (int32_t i = 0; i < s->sentences; i++) order[i] = i;
    shuffle(order, s->sentences, rng);
    int32_t pool = batch * 50 < s->sentences ? batch * 50 : s->sentences;
    length_key = s->lens;
    for (int32_t first = 0; first < s->sentences; first += pool) {
        int32_t n = s->sentences - first < pool ? s->sentences - first : pool;
        qsort(order + first, (size_t)n, sizeof *order, by_length);
    }
    int32_t batches = 0;
    for (int32_t first = 0; first < s->sentences; first += batch) batch_start[batches++] = first;
    shuffle(batch_start, batches, rng);
    return batches;
}

static bool train_epoch(sdlstm_model *m, const dataset *d, const options *o, int32_t epoch, double lr,
                        uint64_t *rng, int32_t *order, int32_t *batch_start, batch_buffers *buf,
                        train_totals *tot) {
    const split *s = &d->train;
    int32_t batches = plan_epoch(s, o->train.batch, rng, order, batch_start);
    /* The library's loss is the mean over a batch's words, and bucketing by length makes a batch
     * of ten one-word headlines as heavy as one of ten long sentences. Scaling each step's rate by
     * the batch's words over the average batch's gives every word the same weight. */
    double words_per_batch = (double)s->tokens / batches;
    int64_t steps = batches;
    if (o->train.max_steps > 0 && o->train.max_steps < steps) steps = o->train.max_steps;
    bool chars = o->char_hidden > 0;
    epoch_meter em;
    meter_start(&em, tot, epoch, steps, lr, false);
    for (int64_t k = 0; k < steps; k++) {
        int32_t first = batch_start[k];
        int32_t n = s->sentences - first < o->train.batch ? s->sentences - first : o->train.batch;
        sdlstm_batch batch;
        if (!fill_batch(d, s, order + first, n, chars, o->unk_replace, o->word_dropout, rng, buf, &batch)) {
            fputs("ner: out of memory\n", stderr);
            return false;
        }
        int64_t words = 0;
        for (int32_t b = 0; b < n; b++) words += batch.lengths[b];
        if (!ok(sdlstm_set_learning_rate(m, (float)(lr * (double)words / words_per_batch)), "sdlstm_set_learning_rate") ||
            meter_step(&em, m, &batch, k) < 0)
            return false;
    }
    meter_finish(&em);
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* train                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static const char train_synopsis[] =
    "usage: ner [train] --data DIR [options]\n"
    "       ner --load FILE --data DIR [--out FILE]   evaluate a checkpoint on dev.txt and test.txt\n"
    "       ner tag --load FILE [options] INPUT        tag a file (ner tag --help)\n"
    "\n"
    "Trains a BiLSTM-CRF tagger on train.txt, picks the epoch by dev.txt, reports test.txt.\n"
    "\n";

static void print_result(const options *o, const sdlstm_runtime_info *rt, const dataset *d, const train_totals *tot,
                         int32_t best_epoch, double dev_f1, double test_f1, double seconds) {
    json_begin(stdout, "ner");
    json_training(stdout, &o->train, tot);
    json_number(stdout, "dev_f1", dev_f1);
    json_number(stdout, "test_f1", test_f1);
    json_int(stdout, "best_epoch", best_epoch);
    json_int(stdout, "char_embed", o->char_embed);
    json_int(stdout, "char_hidden", o->char_hidden);
    json_int(stdout, "crf", o->crf);
    json_string(stdout, "scheme", scheme_names[o->scheme]);
    json_int(stdout, "lower", o->text.lower);
    json_int(stdout, "zeros", o->text.zeros);
    json_int(stdout, "min_count", o->min_count);
    json_number(stdout, "unk_replace", o->unk_replace);
    json_number(stdout, "word_dropout", o->word_dropout);
    json_int(stdout, "vocab", d->words.size);
    json_int(stdout, "char_vocab", d->char_vocab);
    json_int(stdout, "tags", d->tags.size);
    json_number(stdout, "train_loss",
                tot->last_epoch_tokens > 0 ? tot->last_epoch_loss / (double)tot->last_epoch_tokens : NAN);
    json_number(stdout, "seconds", seconds);
    if (o->train.load_path) json_string(stdout, "checkpoint", o->train.load_path);
    json_end(stdout, rt);
}

static int train_main(int argc, char **argv, int first) {
    double t0 = now_s();
    options o = {
        .train = {.hidden = 200, .layers = 1, .embed = 100, .epochs = 24, .batch = 10, .lr = 2.0, .lr_decay = 0.9,
                  .decay_after = 3, .clip = 1.0, .init = 0.1, .policy = 3, .p_nr = 0.5, .threads = available_cores(),
                  .seed = 1},
        .text = {.lower = 1, .zeros = 1},
        .char_embed = 25,
        .char_hidden = 50,
        .crf = 1,
        .scheme = 2,
        .min_count = 1,
        .unk_replace = 0.5,
        .word_dropout = 0.4,
    };
    train_options *t = &o.train;
    flag flags[] = {
        {.name = "--data", .kind = FLAG_TEXT, .value = &o.data_dir, .arg = "DIR",
         .help = "directory holding train.txt, dev.txt, test.txt (CoNLL format)"},
        {.name = "--out", .kind = FLAG_TEXT, .value = &o.out_path, .arg = "FILE",
         .help = "test predictions of the best-dev epoch, conlleval input (none)"},
        {.name = "--save", .kind = FLAG_TEXT, .value = &t->save_path, .arg = "FILE",
         .help = "checkpoint (HDF5) of the best-dev epoch, vocabularies included (none)"},
        {.name = "--load", .kind = FLAG_TEXT, .value = &t->load_path, .arg = "FILE",
         .help = "evaluate this checkpoint instead of training (the flags marked * come from it)"},
        {.name = "--epoch-json", .kind = FLAG_TEXT, .value = &t->epoch_json, .arg = "FILE",
         .help = "one JSON line per epoch (lr, train loss, dev F1)"},
        {.name = "--hidden", .kind = FLAG_INT, .value = &t->hidden, .arg = "N",
         .help = "word BiLSTM width, both directions together (200)", .min = 2, .max = big, .fixed = true},
        {.name = "--layers", .kind = FLAG_INT, .value = &t->layers, .arg = "N", .help = "word BiLSTM layers (1)",
         .min = 1, .max = big, .fixed = true},
        {.name = "--embed", .kind = FLAG_INT, .value = &t->embed, .arg = "N", .help = "word embedding width (100)",
         .min = 1, .max = big, .fixed = true},
        {.name = "--char-embed", .kind = FLAG_INT, .value = &o.char_embed, .arg = "N",
         .help = "character embedding width (25)", .min = 1, .max = big, .fixed = true},
        {.name = "--char-hidden", .kind = FLAG_INT, .value = &o.char_hidden, .arg = "N",
         .help = "character BiLSTM width, both directions; 0 = no characters (50)", .min = 0, .max = big,
         .fixed = true},
        {.name = "--crf", .kind = FLAG_INT, .value = &o.crf, .arg = "0|1", .help = "CRF on top; 0 = a softmax per word (1)",
         .min = 0, .max = 1, .fixed = true},
        {.name = "--scheme", .kind = FLAG_CHOICE, .value = &o.scheme, .arg = "S",
         .help = "none|iob1|iob2: the data's tags, constrains the CRF (iob2)", .choices = scheme_names, .fixed = true},
        {.name = "--lower", .kind = FLAG_INT, .value = &o.text.lower, .arg = "0|1",
         .help = "lowercase words (characters keep their case) (1)", .min = 0, .max = 1, .fixed = true},
        {.name = "--zeros", .kind = FLAG_INT, .value = &o.text.zeros, .arg = "0|1", .help = "digits in words become 0 (1)",
         .min = 0, .max = 1, .fixed = true},
        {.name = "--min-count", .kind = FLAG_INT, .value = &o.min_count, .arg = "N",
         .help = "training words seen fewer times become <unk> (1)", .min = 1, .max = big, .fixed = true},
        {.name = "--unk-replace", .kind = FLAG_REAL, .value = &o.unk_replace, .arg = "F",
         .help = "probability a training singleton is read as <unk> (0.5)", .range = UNIT},
        {.name = "--word-dropout", .kind = FLAG_REAL, .value = &o.word_dropout, .arg = "F",
         .help = "probability any training word is read as <unk> (0.4)", .range = PROBABILITY},
        {.name = "--epochs", .kind = FLAG_INT, .value = &t->epochs, .arg = "N", .help = "training epochs (24)", .min = 1,
         .max = big},
        {.name = "--max-steps", .kind = FLAG_INT64, .value = &t->max_steps, .arg = "N",
         .help = "cap on training steps per epoch, 0 = no cap (0)", .min = 0},
        {.name = "--batch", .kind = FLAG_INT, .value = &t->batch, .arg = "N", .help = "sentences per batch (10)", .min = 1,
         .max = 1 << 16},
        {.name = "--lr", .kind = FLAG_REAL, .value = &t->lr, .arg = "F", .help = "learning rate of an average batch (2)",
         .range = POSITIVE},
        {.name = "--lr-decay", .kind = FLAG_REAL, .value = &t->lr_decay, .arg = "F",
         .help = "factor applied to lr each epoch after --decay-after (0.9)", .range = POSITIVE},
        {.name = "--decay-after", .kind = FLAG_INT, .value = &t->decay_after, .arg = "N",
         .help = "epochs trained at the full lr (3)", .min = 0, .max = big},
        {.name = "--clip", .kind = FLAG_REAL, .value = &t->clip, .arg = "F",
         .help = "global gradient-norm clip, 0 = off (1)", .range = NON_NEGATIVE},
        {.name = "--init", .kind = FLAG_REAL, .value = &t->init, .arg = "F",
         .help = "parameters start uniform in [-F, F] (0.1)", .range = POSITIVE},
        {.name = "--policy", .kind = FLAG_CHOICE, .value = &t->policy, .arg = "P",
         .help = "none|variational|standard|structured|structured-fixed (structured)", .choices = policy_names},
        {.name = "--p-nr", .kind = FLAG_REAL, .value = &t->p_nr, .arg = "F",
         .help = "drop probability on INPUT, BETWEEN (layers >= 2), OUTPUT (0.5)", .range = PROBABILITY},
        {.name = "--p-rh", .kind = FLAG_REAL, .value = &t->p_rh, .arg = "F",
         .help = "drop probability on RECURRENT, 0 = off (0)", .range = PROBABILITY},
        {.name = "--threads", .kind = FLAG_INT, .value = &t->threads, .arg = "N",
         .help = "threads used by the library (the cores available)", .min = 1, .max = 4096},
        {.name = "--seed", .kind = FLAG_U64, .value = &t->seed, .arg = "N",
         .help = "initialisation, dropout and shuffling seed (1)"},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    parse_flags(argc, argv, first, train_synopsis, flags, nflags, NULL, 0);
    if (o.data_dir == NULL) bad_usage("--data DIR is required", "", "");
    if (t->load_path) {
        static const char *const training_only[] = {"--save", "--epoch-json", "--epochs", "--max-steps", "--batch",
                                                    "--lr", "--lr-decay", "--decay-after", "--clip", "--init",
                                                    "--policy", "--p-nr", "--p-rh", "--seed", "--unk-replace",
                                                    "--word-dropout"};
        for (size_t k = 0; k < sizeof training_only / sizeof training_only[0]; k++)
            if (find_flag(flags, nflags, training_only[k])->given)
                bad_usage("--load evaluates a checkpoint and trains no further: drop ", training_only[k], "");
        for (size_t k = 0; k < nflags; k++)
            if (flags[k].fixed && flags[k].given)
                fprintf(stderr, "ner: warning: %s is ignored: the checkpoint sets it\n", flags[k].name);
    }
    if (t->hidden % 2 != 0) bad_usage("--hidden must be even (half per direction)", "", "");
    if (o.char_hidden % 2 != 0) bad_usage("--char-hidden must be even (half per direction)", "", "");
    normalize_dropout(t);
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1, save_failures = 0;
    dataset d = {0};
    sdlstm_model *m = NULL;
    int32_t *order = NULL, *batch_start = NULL, *dev_pred = NULL, *test_pred = NULL;
    batch_buffers buf = {0};
    FILE *epoch_log = NULL;
    if (!epoch_log_open(t->epoch_json, &epoch_log)) goto done;

    if (t->load_path) {
        if (!ok(sdlstm_load(t->load_path, &m), "sdlstm_load") || !restore_settings(m, &o, &d) ||
            !load_split(o.data_dir, "dev.txt", &o.text, &d.dev) || !load_split(o.data_dir, "test.txt", &o.text, &d.test) ||
            !assign_ids(&d, &d.dev, "dev.txt") || !assign_ids(&d, &d.test, "test.txt"))
            goto done;
        t->epochs = 0;
    } else if (!dataset_load(&o, &d)) {
        goto done;
    }
    fprintf(stderr,
            "ner: words %d, characters %d, tags %d; sentences train %d dev %d test %d; "
            "tokens train %" PRId64 " dev %" PRId64 " test %" PRId64 "\n",
            d.words.size, d.char_vocab, d.tags.size, d.train.sentences, d.dev.sentences, d.test.sentences,
            d.train.tokens, d.dev.tokens, d.test.tokens);

    order = malloc((size_t)(d.train.sentences > 0 ? d.train.sentences : 1) * sizeof *order);
    batch_start = malloc((size_t)(d.train.sentences > 0 ? d.train.sentences : 1) * sizeof *batch_start);
    dev_pred = malloc((size_t)d.dev.tokens * sizeof *dev_pred);
    test_pred = malloc((size_t)d.test.tokens * sizeof *test_pred);
    if (!order || !batch_start || !dev_pred || !test_pred) {
        fputs("ner: out of memory\n", stderr);
        goto done;
    }
    if (!m && !(m = make_model(&o, &d))) goto done;
    int64_t params = 0;
    if (!ok(sdlstm_get_parameter_count(m, &params), "sdlstm_get_parameter_count")) goto done;
    fprintf(stderr,
            "ner: BiLSTM %d x %d, embed %d, characters %d -> %d, %s, %" PRId64 " parameters; "
            "policy %s p_nr %g p_rh %g; %d threads\n",
            t->layers, t->hidden, t->embed, o.char_embed, o.char_hidden, o.crf ? "CRF" : "softmax", params,
            policy_name(t), t->p_nr, t->p_rh, t->threads);

    uint64_t rng = rng_seed(t->seed);
    train_totals tot = {0};
    double best_dev = -1, best_test = NAN;
    int32_t best_epoch = 0;
    bool chars = o.char_hidden > 0;
    if (t->load_path) {
        if (!predict(m, &d, &d.dev, chars, dev_pred, &best_dev) || !predict(m, &d, &d.test, chars, test_pred, &best_test))
            goto done;
        if (o.out_path && !write_predictions(o.out_path, &d, &d.test, test_pred)) goto done;
        double epoch = 0;
        if (!meta_number(m, "ner.epoch", &epoch)) goto done;
        best_epoch = (int32_t)epoch;
        fprintf(stderr, "ner: %s: dev F1 %.2f, test F1 %.2f\n", t->load_path, best_dev, best_test);
    }
    for (int32_t e = 1; e <= t->epochs; e++) {
        double lr = scheduled_lr(t, e);
        if (!ok(sdlstm_set_epoch(m, e), "sdlstm_set_epoch") ||
            !train_epoch(m, &d, &o, e, lr, &rng, order, batch_start, &buf, &tot))
            goto done;
        double dev_f1 = NAN, test_f1 = NAN;
        if (!predict(m, &d, &d.dev, chars, dev_pred, &dev_f1)) goto done;
        bool best = dev_f1 > best_dev;
        /* The test set is tagged only for a new best dev F1: its score is reported, never used. */
        if (best) {
            if (!predict(m, &d, &d.test, chars, test_pred, &test_f1)) goto done;
            best_dev = dev_f1;
            best_test = test_f1;
            best_epoch = e;
            if (o.out_path && !write_predictions(o.out_path, &d, &d.test, test_pred)) goto done;
            if (t->save_path) {
                if (meta_set_number(m, "ner.epoch", e) && meta_set_number(m, "ner.dev_f1", dev_f1))
                    save_checkpoint(m, t->save_path, &save_failures);
                else
                    save_failures++;
            }
        }
        double train_loss = tot.last_epoch_tokens > 0 ? tot.last_epoch_loss / (double)tot.last_epoch_tokens : NAN;
        fprintf(stderr, "epoch %d  train loss %.4f  dev F1 %.2f%s\n", e, train_loss, dev_f1,
                best ? "  (best so far)" : "");
        if (epoch_log) {
            epoch_log_begin(epoch_log, "ner", t, e, lr, &tot);
            json_number(epoch_log, "dev_f1", dev_f1);
            json_end(epoch_log, NULL);
        }
    }
    if (t->epochs > 0)
        fprintf(stderr, "best dev F1 %.2f at epoch %d; its test F1 %.2f\n", best_dev, best_epoch, best_test);
    print_result(&o, &rt, &d, &tot, best_epoch, best_dev, best_test, now_s() - t0);
    status = save_failures > 0;
done:
    if (epoch_log) fclose(epoch_log);
    sdlstm_model_free(m);
    buffers_free(&buf);
    free(order);
    free(batch_start);
    free(dev_pred);
    free(test_pred);
    dataset_free(&d);
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* tag: a checkpoint applied to a user's file                                                  */
/* ------------------------------------------------------------------------------------------ */

static const char *const format_names[] = {"conll", "lines", NULL};
enum { FORMAT_CONLL, FORMAT_LINES };

static const char tag_synopsis[] =
    "usage: ner tag --load FILE [options] INPUT\n"
    "\n"
    "Tags the tokens of INPUT with the checkpoint's tagger; words are looked up as in training (the\n"
    "checkpoint's vocabulary, lowercasing and digit settings), unknown ones as <unk>. Writes CoNLL\n"
    "columns to stdout (--output, else):\n"
    "  --format conll  INPUT has a token per line (its first column; other columns, such as gold\n"
    "                  tags, are kept), blank or -DOCSTART- lines between sentences. Each token line\n"
    "                  comes out with the predicted tag appended (a -DOCSTART- line with O): with\n"
    "                  gold tags in the last column, the output is conlleval's input.\n"
    "  --format lines  INPUT has a sentence per line, tokens separated by whitespace. Each token\n"
    "                  comes out as \"token TAG\", each sentence followed by a blank line.\n"
    "\n";

static int tag_main(int argc, char **argv, int first) {
    const char *load = NULL, *input = NULL, *output = NULL;
    int format = FORMAT_CONLL;
    int32_t threads = available_cores();
    flag flags[] = {
        {.name = "--load", .kind = FLAG_TEXT, .value = &load, .arg = "FILE", .help = "the checkpoint (sdlstm-ner --save)"},
        {.name = "--format", .kind = FLAG_CHOICE, .value = &format, .arg = "F", .help = "conll|lines, see above (conll)",
         .choices = format_names},
        {.name = "--output", .kind = FLAG_TEXT, .value = &output, .arg = "FILE", .help = "write here (stdout)"},
        {.name = "--threads", .kind = FLAG_INT, .value = &threads, .arg = "N",
         .help = "threads used by the library (the cores available)", .min = 1, .max = 4096},
    };
    if (parse_flags(argc, argv, first, tag_synopsis, flags, sizeof flags / sizeof flags[0], &input, 1) != 1)
        bad_usage("the file to tag is required", "", "");
    if (!load) bad_usage("--load FILE is required", "", "");
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1;
    options o = {.train = {.threads = threads}};
    dataset d = {0};
    split s = {0};
    sdlstm_model *m = NULL;
    char **lines = NULL, **raw = NULL;
    int32_t n = 0, *pred = NULL, *line_tokens = NULL;
    size_t size = 0;
    FILE *out = stdout;
    if (!ok(sdlstm_load(load, &m), "sdlstm_load") || !restore_settings(m, &o, &d) ||
        !(s.text = read_file(NULL, input, &size)) || !split_lines(s.text, size, &lines, &n))
        goto done;
    /* The columns are cut in place, so conll's output needs the lines as they were. */
    raw = calloc((size_t)(n > 0 ? n : 1), sizeof *raw);
    line_tokens = calloc((size_t)(n > 0 ? n : 1), sizeof *line_tokens);
    if (!raw || !line_tokens) goto oom;
    for (int32_t i = 0; i < n; i++) {
        if (format == FORMAT_CONLL && !(raw[i] = strdup(lines[i]))) goto oom;
        int64_t before = s.tokens;
        char *save = NULL;
        for (char *w = strtok_r(lines[i], " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
            if (format == FORMAT_CONLL && strcmp(w, "-DOCSTART-") == 0) break;
            if (s.tokens >= INT32_MAX) {
                fprintf(stderr, "ner: %s: too many tokens\n", input);
                goto done;
            }
            if (!add_token(&s, w, NULL, &o.text)) goto oom;
            if (format == FORMAT_CONLL) break; /* the token is the first column */
        }
        line_tokens[i] = (int32_t)(s.tokens - before);
        /* A conll token line continues its sentence; anything else ends one. */
        if ((format == FORMAT_LINES || line_tokens[i] == 0) && !end_sentence(&s)) goto oom;
    }
    if (!end_sentence(&s) || !alloc_ids(&s)) goto oom;
    assign_ids(&d, &s, input);
    pred = malloc((size_t)(s.tokens > 0 ? s.tokens : 1) * sizeof *pred);
    if (!pred) goto oom;
    if (!predict(m, &d, &s, o.char_hidden > 0, pred, NULL)) goto done;

    if (output && !(out = fopen(output, "w"))) {
        fprintf(stderr, "ner: cannot write %s: %s\n", output, strerror(errno));
        goto done;
    }
    int64_t token = 0;
    for (int32_t i = 0; i < n; i++) {
        if (format == FORMAT_CONLL) {
            size_t k = strlen(raw[i]);
            while (k > 0 && (raw[i][k - 1] == ' ' || raw[i][k - 1] == '\t')) k--;
            /* A -DOCSTART- line gets the O that CoNLL-2003 gives it, so every line with columns has one more. */
            const char *tag = line_tokens[i] == 1 ? d.tags.words[pred[token++]] : k > 0 ? "O" : NULL;
            if (tag) fprintf(out, "%.*s %s\n", (int)k, raw[i], tag);
            else fputc('\n', out);
        } else {
            for (int32_t j = 0; j < line_tokens[i]; j++, token++)
                fprintf(out, "%s %s\n", s.words[token], d.tags.words[pred[token]]);
            fputc('\n', out);
        }
    }
    if ((out != stdout && fclose(out) != 0) || (out == stdout && fflush(out) != 0)) {
        out = stdout;
        fprintf(stderr, "ner: cannot write %s: %s\n", output ? output : "stdout", strerror(errno));
        goto done;
    }
    out = stdout;
    fprintf(stderr, "ner: tagged %" PRId64 " tokens in %d sentences of %s\n", s.tokens, s.sentences, input);
    status = 0;
    goto done;
oom:
    fputs("ner: out of memory\n", stderr);
done:
    if (out != stdout) fclose(out);
    if (raw)
        for (int32_t i = 0; i < n; i++) free(raw[i]);
    free(raw);
    free(lines);
    free(line_tokens);
    free(pred);
    split_free(&s);
    dataset_free(&d);
    sdlstm_model_free(m);
    return status;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "tag") == 0) return tag_main(argc, argv, 2);
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return train_main(argc, argv, 2);
    return train_main(argc, argv, 1);
}
