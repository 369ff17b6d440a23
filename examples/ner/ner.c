/*
 * ner — trains a BiLSTM-CRF named-entity tagger with character features (Lample et al. 2016) on
 * CoNLL-2003 with sdlstm.
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
 * tag, predicted tag). Progress goes to stderr; one JSON line with the results goes to stdout.
 *
 * Build (in examples/ner, for ../common/example.h):
 *   cc -std=c11 -O2 ner.c $(pkg-config --cflags --libs sdlstm) -lm -o sdlstm-ner
 */
#define _POSIX_C_SOURCE 200809L

#define EXAMPLE_NAME "ner"

#include <ctype.h>
#include <errno.h>
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
    const char *out_path;
    int32_t hidden;
    int32_t layers;
    int32_t embed;
    int32_t char_embed;
    int32_t char_hidden;
    int32_t crf;
    sdlstm_tag_scheme scheme;
    const char *scheme_name;
    int32_t lower;
    int32_t zeros;
    int32_t min_count;
    double unk_replace;
    double word_dropout;
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
    int32_t threads;
    uint64_t seed;
} options;

static const struct {
    const char *name;
    sdlstm_tag_scheme scheme;
} schemes[] = {
    {"none", SDLSTM_TAG_SCHEME_NONE},
    {"iob1", SDLSTM_TAG_SCHEME_IOB1},
    {"iob2", SDLSTM_TAG_SCHEME_IOB2},
};

static void usage(FILE *out) {
    fputs(
        "usage: ner --data DIR [options]\n"
        "\n"
        "Trains a BiLSTM-CRF tagger on train.txt, picks the epoch by dev.txt, reports test.txt.\n"
        "\n"
        "  --data DIR        directory holding train.txt, dev.txt, test.txt (CoNLL format)\n"
        "  --out FILE        test predictions of the best-dev epoch, conlleval input (none)\n"
        "  --hidden N        word BiLSTM width, both directions together (200)\n"
        "  --layers N        word BiLSTM layers (1)\n"
        "  --embed N         word embedding width (100)\n"
        "  --char-embed N    character embedding width (25)\n"
        "  --char-hidden N   character BiLSTM width, both directions; 0 = no characters (50)\n"
        "  --crf 0|1         CRF on top; 0 = a softmax per word (1)\n"
        "  --scheme S        none|iob1|iob2: the data's tags, constrains the CRF (iob2)\n"
        "  --lower 0|1       lowercase words (characters keep their case) (1)\n"
        "  --zeros 0|1       digits in words become 0 (1)\n"
        "  --min-count N     training words seen fewer times become <unk> (1)\n"
        "  --unk-replace F   probability a training singleton is read as <unk> (0.5)\n"
        "  --word-dropout F  probability any training word is read as <unk> (0.4)\n"
        "  --epochs N        training epochs (24)\n"
        "  --max-steps N     cap on training steps per epoch, 0 = no cap (0)\n"
        "  --batch N         sentences per batch (10)\n"
        "  --lr F            learning rate of an average batch (2)\n"
        "  --lr-decay F      factor applied to lr each epoch after --decay-after (0.9)\n"
        "  --decay-after N   epochs trained at the full lr (3)\n"
        "  --clip F          global gradient-norm clip, 0 = off (1)\n"
        "  --init F          parameters start uniform in [-F, F] (0.1)\n"
        "  --policy P        none|variational|standard|structured|structured-fixed (structured)\n"
        "  --p-nr F          drop probability on INPUT, BETWEEN (layers >= 2), OUTPUT (0.5)\n"
        "  --p-rh F          drop probability on RECURRENT, 0 = off (0)\n"
        "  --threads N       threads used by the library (1)\n"
        "  --seed N          initialisation, dropout and shuffling seed (1)\n"
        "  --help            this text\n",
        out);
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){
        .data_dir = NULL,
        .out_path = NULL,
        .hidden = 200,
        .layers = 1,
        .embed = 100,
        .char_embed = 25,
        .char_hidden = 50,
        .crf = 1,
        .scheme = SDLSTM_TAG_SCHEME_IOB2,
        .scheme_name = "iob2",
        .lower = 1,
        .zeros = 1,
        .min_count = 1,
        .unk_replace = 0.5,
        .word_dropout = 0.4,
        .epochs = 24,
        .max_steps = 0,
        .batch = 10,
        .lr = 2.0,
        .lr_decay = 0.9,
        .decay_after = 3,
        .clip = 1.0,
        .init = 0.1,
        .policy = SDLSTM_POLICY_STRUCTURED,
        .policy_name = "structured",
        .p_nr = 0.5,
        .p_rh = 0.0,
        .threads = 1,
        .seed = 1,
    };
    const long long big = INT32_MAX;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(flag, "--", 2) != 0) bad_usage("unexpected argument '", flag, "'");
        if (i + 1 >= argc) bad_usage(flag, " needs a value", "");
        const char *v = argv[++i];

        if (strcmp(flag, "--data") == 0) o->data_dir = v;
        else if (strcmp(flag, "--out") == 0) o->out_path = v;
        else if (strcmp(flag, "--hidden") == 0) o->hidden = parse_int(flag, v, 2, big);
        else if (strcmp(flag, "--layers") == 0) o->layers = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--embed") == 0) o->embed = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--char-embed") == 0) o->char_embed = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--char-hidden") == 0) o->char_hidden = parse_int(flag, v, 0, big);
        else if (strcmp(flag, "--crf") == 0) o->crf = parse_int(flag, v, 0, 1);
        else if (strcmp(flag, "--lower") == 0) o->lower = parse_int(flag, v, 0, 1);
        else if (strcmp(flag, "--zeros") == 0) o->zeros = parse_int(flag, v, 0, 1);
        else if (strcmp(flag, "--min-count") == 0) o->min_count = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--unk-replace") == 0) o->unk_replace = parse_real(flag, v, UNIT);
        else if (strcmp(flag, "--word-dropout") == 0) o->word_dropout = parse_real(flag, v, PROBABILITY);
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
        else if (strcmp(flag, "--threads") == 0) o->threads = parse_int(flag, v, 1, 4096);
        else if (strcmp(flag, "--seed") == 0) o->seed = parse_u64(flag, v);
        else if (strcmp(flag, "--policy") == 0) {
            int k = find_policy(v);
            if (k < 0) bad_usage("unknown policy '", v, "'");
            o->policy = policies[k].policy;
            o->policy_name = policies[k].name;
        } else if (strcmp(flag, "--scheme") == 0) {
            size_t n = sizeof schemes / sizeof schemes[0], k = 0;
            while (k < n && strcmp(v, schemes[k].name) != 0) k++;
            if (k == n) bad_usage("unknown tag scheme '", v, "'");
            o->scheme = schemes[k].scheme;
            o->scheme_name = schemes[k].name;
        } else {
            bad_usage("unknown flag '", flag, "'");
        }
    }
    if (o->data_dir == NULL) bad_usage("--data DIR is required", "", "");
    if (o->hidden % 2 != 0) bad_usage("--hidden must be even (half per direction)", "", "");
    if (o->char_hidden % 2 != 0) bad_usage("--char-hidden must be even (half per direction)", "", "");
    /* Without a policy nothing is dropped; reporting the default p would mislabel the run. */
    if (o->policy == SDLSTM_POLICY_NONE) o->p_nr = o->p_rh = 0;
}

/* ------------------------------------------------------------------------------------------ */
/* CoNLL files                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* One split: its tokens (pointers into the file's text, cut in place) and sentences. */
typedef struct split {
    char *text;
    char **words;  /* token as written */
    char **tags;   /* the last column */
    char **keys;   /* the word as looked up (lowercased, digits to 0); owned */
    int64_t tokens;
    int32_t *starts;  /* sentence s is tokens starts[s] .. starts[s] + lens[s] - 1 */
    int32_t *lens;
    int32_t sentences;
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

/* Grows an array of n_cap elements of size `size` to hold index n. */
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
static char *word_key(const char *word, const options *o) {
    char *k = strdup(word);
    if (!k) return NULL;
    for (char *p = k; *p; p++) {
        if (o->lower) *p = (char)tolower((unsigned char)*p);
        if (o->zeros && isdigit((unsigned char)*p)) *p = '0';
    }
    return k;
}

/* Parses DIR/name: tokens with at least two columns, blank lines between sentences. */
static bool load_split(const char *dir, const char *name, const options *o, split *s) {
    *s = (split){0};
    s->text = read_file(dir, name, NULL);
    if (!s->text) return false;
    int64_t tok_cap = 0, sent_cap = 0, sent_cap2 = 0, key_cap = 0, tag_cap = 0;
    int32_t current = 0; /* tokens in the sentence being read */
    int64_t line_no = 0;
    char *p = s->text;
    bool more = *p != '\0';
    while (more) {
        char *end = strchr(p, '\n');
        more = end != NULL && end[1] != '\0';
        if (end) *end = '\0';
        line_no++;
        size_t n = strlen(p);
        if (n > 0 && p[n - 1] == '\r') p[--n] = '\0';
        /* Split the line into columns in place. */
        char *first = NULL, *last = NULL, *save = NULL;
        int columns = 0;
        for (char *c = strtok_r(p, " \t", &save); c; c = strtok_r(NULL, " \t", &save)) {
            if (!first) first = c;
            last = c;
            columns++;
        }
        bool docstart = first && strcmp(first, "-DOCSTART-") == 0;
        if (columns == 0 || docstart) {
            if (current > 0) {
                if (!reserve((void **)&s->starts, &sent_cap, s->sentences, sizeof *s->starts) ||
                    !reserve((void **)&s->lens, &sent_cap2, s->sentences, sizeof *s->lens))
                    goto oom;
                s->starts[s->sentences] = (int32_t)(s->tokens - current);
                s->lens[s->sentences] = current;
                s->sentences++;
                current = 0;
            }
        } else {
            if (columns < 2) {
                fprintf(stderr, "ner: %s/%s:%" PRId64 ": expected a token and a tag\n", dir, name, line_no);
                return false;
            }
            if (s->tokens >= INT32_MAX) {
                fprintf(stderr, "ner: %s/%s: too many tokens\n", dir, name);
                return false;
            }
            if (!reserve((void **)&s->words, &tok_cap, s->tokens, sizeof *s->words) ||
                !reserve((void **)&s->tags, &tag_cap, s->tokens, sizeof *s->tags) ||
                !reserve((void **)&s->keys, &key_cap, s->tokens, sizeof *s->keys))
                goto oom;
            s->words[s->tokens] = first;
            s->tags[s->tokens] = last;
            s->keys[s->tokens] = word_key(first, o);
            if (!s->keys[s->tokens]) goto oom;
            s->tokens++;
            current++;
        }
        if (end) p = end + 1;
    }
    if (current > 0) {
        if (!reserve((void **)&s->starts, &sent_cap, s->sentences, sizeof *s->starts) ||
            !reserve((void **)&s->lens, &sent_cap2, s->sentences, sizeof *s->lens))
            goto oom;
        s->starts[s->sentences] = (int32_t)(s->tokens - current);
        s->lens[s->sentences] = current;
        s->sentences++;
    }
    if (s->sentences == 0) {
        fprintf(stderr, "ner: %s/%s has no sentences\n", dir, name);
        return false;
    }
    s->word_ids = malloc((size_t)s->tokens * sizeof *s->word_ids);
    s->tag_ids = malloc((size_t)s->tokens * sizeof *s->tag_ids);
    if (!s->word_ids || !s->tag_ids) goto oom;
    return true;
oom:
    fputs("ner: out of memory reading the data\n", stderr);
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Dataset: three splits and the vocabularies built from the training split                    */
/* ------------------------------------------------------------------------------------------ */

#define UNK 0 /* word id and character id of everything unseen in training */

typedef struct dataset {
    split train, dev, test;
    vocab words;        /* keys of training words with count >= min_count; id 0 is <unk> */
    uint8_t *singleton; /* per word id: seen exactly once in training */
    int32_t char_ids[256];  /* byte -> character id; bytes unseen in training map to UNK */
    int32_t char_vocab;
    vocab tags;         /* tag names (point into train's text) */
    const char **tag_names;
} dataset;

static void dataset_free(dataset *d) {
    vocab_free(&d->words);
    vocab_free(&d->tags);
    free(d->singleton);
    split_free(&d->train);
    split_free(&d->dev);
    split_free(&d->test);
    *d = (dataset){0};
}

/* Word and tag ids of a split; a tag never seen in training is an error. */
static bool assign_ids(dataset *d, split *s, const char *name) {
    for (int64_t i = 0; i < s->tokens; i++) {
        int32_t w = vocab_find(&d->words, s->keys[i]);
        s->word_ids[i] = w < 0 ? UNK : w;
        int32_t t = vocab_find(&d->tags, s->tags[i]);
        if (t < 0) {
            fprintf(stderr, "ner: %s: tag '%s' does not occur in train.txt\n", name, s->tags[i]);
            return false;
        }
        s->tag_ids[i] = t;
    }
    return true;
}

static bool dataset_load(const options *o, dataset *d) {
    *d = (dataset){0};
    if (!load_split(o->data_dir, "train.txt", o, &d->train) || !load_split(o->data_dir, "dev.txt", o, &d->dev) ||
        !load_split(o->data_dir, "test.txt", o, &d->test))
        return false;
    vocab counts;
    if (!vocab_init(&counts) || !vocab_init(&d->words) || !vocab_init(&d->tags)) goto oom;

    /* Word counts over the training keys, then the vocabulary of those frequent enough. */
    int64_t *count = calloc((size_t)d->train.tokens + 1, sizeof *count);
    if (!count) goto oom;
    for (int64_t i = 0; i < d->train.tokens; i++) {
        int32_t id = vocab_add(&counts, d->train.keys[i]);
        if (id < 0) { free(count); goto oom; }
        count[id]++;
    }
    if (vocab_add(&d->words, "<unk>") != UNK) { free(count); goto oom; }
    for (int32_t id = 0; id < counts.size; id++)
        if (count[id] >= o->min_count && vocab_add(&d->words, counts.words[id]) < 0) { free(count); goto oom; }
    d->singleton = calloc((size_t)d->words.size, 1);
    if (!d->singleton) { free(count); goto oom; }
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
        if (strcmp(d->train.tags[i], "O") == 0 && vocab_add(&d->tags, d->train.tags[i]) < 0) goto oom;
    for (int64_t i = 0; i < d->train.tokens; i++)
        if (vocab_add(&d->tags, d->train.tags[i]) < 0) goto oom;
    d->tag_names = d->tags.words;

    return assign_ids(d, &d->train, "train.txt") && assign_ids(d, &d->dev, "dev.txt") &&
           assign_ids(d, &d->test, "test.txt");
oom:
    fputs("ner: out of memory building the vocabularies\n", stderr);
    return false;
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
    cfg.embed_size = o->embed;
    cfg.hidden_size = o->hidden;
    cfg.num_layers = o->layers;
    cfg.num_tags = d->tags.size;
    cfg.char_vocab_size = o->char_hidden > 0 ? d->char_vocab : 0;
    cfg.char_embed_size = o->char_embed;
    cfg.char_hidden_size = o->char_hidden;
    cfg.use_crf = o->crf;
    cfg.init_scale = (float)o->init;
    cfg.seed = o->seed;

    sdlstm_model *m = NULL;
    if (!ok(sdlstm_model_create(&cfg, &m), "sdlstm_model_create")) return NULL;

    /* The dropout sites: INPUT is the word representation entering the BiLSTM, OUTPUT the BiLSTM
     * output entering the tag projection. */
    bool good = ok(sdlstm_set_tag_names(m, d->tag_names, d->tags.size, o->scheme), "sdlstm_set_tag_names") &&
                ok(sdlstm_set_optimizer(m, SDLSTM_OPTIMIZER_SGD), "sdlstm_set_optimizer") &&
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

/* ------------------------------------------------------------------------------------------ */
/* Evaluation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

#define EVAL_BATCH 64

/* Tags a whole split (sentences batched by length), scores it with the library's span F1 and keeps
 * the predicted tag ids per token in pred (s->tokens entries). */
static bool evaluate(sdlstm_model *m, const dataset *d, const split *s, bool chars, int32_t *pred,
                     double *f1) {
    bool good = false;
    sdlstm_span_f1 *counter = NULL;
    batch_buffers buf = {0};
    int32_t *order = malloc((size_t)s->sentences * sizeof *order);
    int32_t *tags = NULL;
    size_t tags_cap = 0;
    if (!order) goto oom;
    for (int32_t i = 0; i < s->sentences; i++) order[i] = i;
    length_key = s->lens;
    qsort(order, (size_t)s->sentences, sizeof *order, by_length);
    if (!ok(sdlstm_span_f1_create(d->tag_names, d->tags.size, &counter), "sdlstm_span_f1_create")) goto done;

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
        if (!ok(sdlstm_span_f1_add(counter, batch.targets, tags, n, batch.seq_len, batch.lengths),
                "sdlstm_span_f1_add"))
            goto done;
        for (int32_t b = 0; b < n; b++) {
            int32_t sent = order[first + b];
            memcpy(pred + s->starts[sent], tags + (size_t)b * batch.seq_len, (size_t)s->lens[sent] * sizeof *pred);
        }
    }
    sdlstm_span_scores scores = {.struct_size = sizeof scores};
    if (!ok(sdlstm_span_f1_get_scores(counter, -1, &scores), "sdlstm_span_f1_get_scores")) goto done;
    *f1 = 100 * scores.f1;
    good = true;
    goto done;
oom:
    fputs("ner: out of memory evaluating\n", stderr);
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
            fprintf(f, "%s %s %s\n", s->words[i], s->tags[i], d->tag_names[pred[i]]);
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
    int32_t batches = plan_epoch(s, o->batch, rng, order, batch_start);
    /* The library's loss is the mean over a batch's words, and bucketing by length makes a batch
     * of ten one-word headlines as heavy as one of ten long sentences. Scaling each step's rate by
     * the batch's words over the average batch's gives every word the same weight. */
    double words_per_batch = (double)s->tokens / batches;
    int64_t steps = batches;
    if (o->max_steps > 0 && o->max_steps < steps) steps = o->max_steps;
    int64_t report_every = steps >= 10 ? steps / 10 : 1;
    bool chars = o->char_hidden > 0;

    double epoch_loss = 0, window_loss = 0, window_norm = 0;
    int64_t epoch_tokens = 0, window_tokens = 0, window_steps = 0;
    double t_start = now_s();
    for (int64_t k = 0; k < steps; k++) {
        int32_t first = batch_start[k];
        int32_t n = s->sentences - first < o->batch ? s->sentences - first : o->batch;
        sdlstm_batch batch;
        if (!fill_batch(d, s, order + first, n, chars, o->unk_replace, o->word_dropout, rng, buf, &batch)) {
            fputs("ner: out of memory\n", stderr);
            return false;
        }
        int64_t words = 0;
        for (int32_t b = 0; b < n; b++) words += batch.lengths[b];
        if (!ok(sdlstm_set_learning_rate(m, (float)(lr * (double)words / words_per_batch)), "sdlstm_set_learning_rate"))
            return false;
        sdlstm_stats st;
        int stepped = train_step(m, &batch, &st, epoch, k, tot);
        if (stepped < 0) return false;
        if (stepped) {
            epoch_loss += st.loss * (double)st.tokens;
            epoch_tokens += st.tokens;
            window_loss += st.loss * (double)st.tokens;
            window_tokens += st.tokens;
            window_norm += st.grad_norm;
            window_steps++;
        }
        if ((k + 1) % report_every == 0 || k + 1 == steps) {
            double elapsed = now_s() - t_start;
            double wps = elapsed > 0 ? (double)epoch_tokens / elapsed : 0;
            char eta[32];
            format_duration(eta, sizeof eta, elapsed / (double)(k + 1) * (double)(steps - k - 1));
            fprintf(stderr,
                    "epoch %d  step %" PRId64 "/%" PRId64 "  lr %.4g  loss %.4f  grad norm %.3f  %.0f words/s  ETA %s\n",
                    epoch, k + 1, steps, lr, window_tokens > 0 ? window_loss / (double)window_tokens : NAN,
                    window_steps > 0 ? window_norm / (double)window_steps : NAN, wps, eta);
            window_loss = window_norm = 0;
            window_tokens = window_steps = 0;
        }
    }
    tot->seconds += now_s() - t_start;
    tot->tokens += epoch_tokens;
    tot->last_epoch_loss = epoch_loss;
    tot->last_epoch_tokens = epoch_tokens;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Output                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void print_result(const options *o, const sdlstm_runtime_info *rt, const dataset *d, const train_totals *tot,
                         int32_t best_epoch, double dev_f1, double test_f1, double seconds) {
    printf("{\"task\":\"ner\",\"policy\":\"%s\"", o->policy_name);
    json_number("p_nr", o->p_nr);
    json_number("p_rh", o->p_rh);
    printf(",\"epochs\":%d", o->epochs);
    json_number("dev_f1", dev_f1);
    json_number("test_f1", test_f1);
    json_number("words_per_s", tot->seconds > 0 ? (double)tot->tokens / tot->seconds : NAN);
    json_number("seconds", seconds);
    printf(",\"best_epoch\":%d,\"hidden\":%d,\"layers\":%d,\"embed\":%d,\"char_embed\":%d,\"char_hidden\":%d",
           best_epoch, o->hidden, o->layers, o->embed, o->char_embed, o->char_hidden);
    printf(",\"crf\":%d,\"scheme\":\"%s\",\"lower\":%d,\"zeros\":%d,\"min_count\":%d", o->crf, o->scheme_name,
           o->lower, o->zeros, o->min_count);
    json_number("unk_replace", o->unk_replace);
    json_number("word_dropout", o->word_dropout);
    printf(",\"vocab\":%d,\"char_vocab\":%d,\"tags\":%d", d->words.size, d->char_vocab, d->tags.size);
    printf(",\"batch\":%d,\"max_steps\":%" PRId64, o->batch, o->max_steps);
    json_number("lr", o->lr);
    json_number("lr_decay", o->lr_decay);
    printf(",\"decay_after\":%d", o->decay_after);
    json_number("clip", o->clip);
    json_number("init", o->init);
    printf(",\"threads\":%d,\"seed\":%" PRIu64, o->threads, o->seed);
    printf(",\"steps\":%" PRId64 ",\"numeric_skips\":%" PRId64, tot->steps, tot->numeric_skips);
    json_number("train_loss",
                tot->last_epoch_tokens > 0 ? tot->last_epoch_loss / (double)tot->last_epoch_tokens : NAN);
    json_number("skipped_macs_fraction", tot->steps > 0 ? tot->skipped_sum / (double)tot->steps : 0);
    json_number("train_seconds", tot->seconds);
    json_runtime(rt);
    printf(",\"version\":\"%s\"}\n", sdlstm_version());
    fflush(stdout);
}

/* ------------------------------------------------------------------------------------------ */

int main(int argc, char **argv) {
    double t0 = now_s();
    options o;
    parse_args(argc, argv, &o);
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1;
    dataset d = {0};
    sdlstm_model *m = NULL;
    int32_t *order = NULL, *batch_start = NULL, *dev_pred = NULL, *test_pred = NULL;
    batch_buffers buf = {0};

    if (!dataset_load(&o, &d)) goto done;
    fprintf(stderr,
            "ner: words %d, characters %d, tags %d; sentences train %d dev %d test %d; "
            "tokens train %" PRId64 " dev %" PRId64 " test %" PRId64 "\n",
            d.words.size, d.char_vocab, d.tags.size, d.train.sentences, d.dev.sentences,
            d.test.sentences, d.train.tokens, d.dev.tokens, d.test.tokens);

    order = malloc((size_t)d.train.sentences * sizeof *order);
    batch_start = malloc((size_t)d.train.sentences * sizeof *batch_start);
    dev_pred = malloc((size_t)d.dev.tokens * sizeof *dev_pred);
    test_pred = malloc((size_t)d.test.tokens * sizeof *test_pred);
    if (!order || !batch_start || !dev_pred || !test_pred) {
        fputs("ner: out of memory\n", stderr);
        goto done;
    }

    m = make_model(&o, &d);
    if (!m) goto done;
    int64_t params = 0;
    if (!ok(sdlstm_get_parameter_count(m, &params), "sdlstm_get_parameter_count")) goto done;
    fprintf(stderr,
            "ner: BiLSTM %d x %d, embed %d, characters %d -> %d, %s, %" PRId64 " parameters; "
            "policy %s p_nr %g p_rh %g\n",
            o.layers, o.hidden, o.embed, o.char_embed, o.char_hidden, o.crf ? "CRF" : "softmax", params,
            o.policy_name, o.p_nr, o.p_rh);

    uint64_t rng = rng_seed(o.seed);
    train_totals tot = {0};
    double best_dev = -1, best_test = NAN;
    int32_t best_epoch = 0;
    bool chars = o.char_hidden > 0;
    for (int32_t e = 1; e <= o.epochs; e++) {
        int32_t decays = e > o.decay_after ? e - o.decay_after : 0;
        double lr = o.lr * pow(o.lr_decay, decays);
        if (!train_epoch(m, &d, &o, e, lr, &rng, order, batch_start, &buf, &tot)) goto done;
        double dev_f1 = NAN, test_f1 = NAN;
        if (!evaluate(m, &d, &d.dev, chars, dev_pred, &dev_f1)) goto done;
        bool best = dev_f1 > best_dev;
        /* The test set is tagged only for a new best dev F1: its score is reported, never used. */
        if (best) {
            if (!evaluate(m, &d, &d.test, chars, test_pred, &test_f1)) goto done;
            best_dev = dev_f1;
            best_test = test_f1;
            best_epoch = e;
            if (o.out_path && !write_predictions(o.out_path, &d, &d.test, test_pred)) goto done;
        }
        fprintf(stderr, "epoch %d  train loss %.4f  dev F1 %.2f%s\n", e,
                tot.last_epoch_tokens > 0 ? tot.last_epoch_loss / (double)tot.last_epoch_tokens : NAN, dev_f1,
                best ? "  (best so far)" : "");
    }
    fprintf(stderr, "best dev F1 %.2f at epoch %d; its test F1 %.2f\n", best_dev, best_epoch, best_test);

    print_result(&o, &rt, &d, &tot, best_epoch, best_dev, best_test, now_s() - t0);
    status = 0;

done:
    sdlstm_model_free(m);
    buffers_free(&buf);
    free(order);
    free(batch_start);
    free(dev_pred);
    free(test_pred);
    dataset_free(&d);
    return status;
}
