/*
 * lm — trains a word-level LSTM language model on the Penn Treebank with sdlstm.
 *
 * Batching follows Zaremba et al. (2014): the token stream is cut into `batch` parallel streams
 * and each step reads the next `bptt` tokens of every stream, so the hidden state the library
 * carries from one step to the next belongs to the same text.
 *
 * Progress and per-epoch validation go to stderr; one JSON line with the results goes to stdout,
 * so runs can be collected with `lm ... > results.jsonl`.
 *
 * Checkpoints: --save FILE writes the model after every epoch and at the end; --load FILE resumes
 * from one (the epoch counter and the learning-rate schedule continue, --epochs more epochs), and
 * --load FILE --epochs 0 only evaluates. A checkpoint carries the vocabulary (string table "vocab")
 * and this program's settings (metadata "lm.*"), so it is all another tool needs to decode the model.
 *
 * Build (in examples/lm, for ../common/example.h):
 *   cc -std=c11 -O2 lm.c $(pkg-config --cflags --libs sdlstm) -lm -o sdlstm-lm
 */
#define _POSIX_C_SOURCE 200809L

#define EXAMPLE_NAME "lm"

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
    int32_t hidden;
    int32_t layers;
    int32_t embed; /* 0 until parsed: then it follows --hidden */
    int32_t epochs;
    int64_t max_steps;
    int32_t batch;
    int32_t bptt;
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
    const char *save_path;
    const char *load_path;
    const char *fixed_flag; /* the last flag given that a loaded checkpoint overrides */
} options;

static void usage(FILE *out) {
    fputs(
        "usage: lm --data DIR [options]\n"
        "\n"
        "Trains an LSTM language model on ptb.{train,valid,test}.txt in DIR.\n"
        "\n"
        "  --data DIR        directory holding ptb.train.txt, ptb.valid.txt, ptb.test.txt\n"
        "  --hidden N        LSTM width (200)\n"
        "  --layers N        stacked LSTM layers (2)\n"
        "  --embed N         embedding width (= hidden)\n"
        "  --epochs N        training epochs (1); with --load, more epochs, 0 = evaluate only\n"
        "  --max-steps N     cap on training steps per epoch, 0 = no cap (0)\n"
        "  --batch N         parallel streams (20)\n"
        "  --bptt N          truncated-BPTT window (35)\n"
        "  --lr F            learning rate for the mean token loss (20)\n"
        "  --lr-decay F      factor applied to lr each epoch after --decay-after (0.5)\n"
        "  --decay-after N   epochs trained at the full lr (4)\n"
        "  --clip F          global gradient-norm clip, 0 = off (0.25)\n"
        "  --init F          parameters start uniform in [-F, F] (0.1)\n"
        "  --policy P        none|variational|standard|structured|structured-fixed (structured)\n"
        "  --p-nr F          drop probability on INPUT, BETWEEN (layers >= 2), OUTPUT (0.5)\n"
        "  --p-rh F          drop probability on RECURRENT, 0 = off (0)\n"
        "  --threads N       threads used by the library (1)\n"
        "  --seed N          initialisation and dropout seed (1)\n"
        "  --save FILE       save a checkpoint (HDF5) after every epoch and at the end\n"
        "  --load FILE       resume from a checkpoint: model, vocabulary, dropout and the settings\n"
        "                    above come from it; the epoch counter and learning rate continue\n"
        "  --help            this text\n",
        out);
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){
        .data_dir = NULL,
        .hidden = 200,
        .layers = 2,
        .embed = 0,
        .epochs = 1,
        .max_steps = 0,
        .batch = 20,
        .bptt = 35,
        .lr = 20.0,
        .lr_decay = 0.5,
        .decay_after = 4,
        .clip = 0.25,
        .init = 0.1,
        .policy = SDLSTM_POLICY_STRUCTURED,
        .policy_name = "structured",
        .p_nr = 0.5,
        .p_rh = 0.0,
        .threads = 1,
        .seed = 1,
        .save_path = NULL,
        .load_path = NULL,
        .fixed_flag = NULL,
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

        /* Flags that a checkpoint given with --load overrides. */
        static const char *const fixed[] = {"--hidden", "--layers", "--embed", "--batch", "--bptt", "--lr",
                                            "--lr-decay", "--decay-after", "--clip", "--init", "--policy",
                                            "--p-nr", "--p-rh", "--seed"};
        for (size_t k = 0; k < sizeof fixed / sizeof fixed[0]; k++)
            if (strcmp(flag, fixed[k]) == 0) o->fixed_flag = fixed[k];

        if (strcmp(flag, "--data") == 0) o->data_dir = v;
        else if (strcmp(flag, "--save") == 0) o->save_path = v;
        else if (strcmp(flag, "--load") == 0) o->load_path = v;
        else if (strcmp(flag, "--hidden") == 0) o->hidden = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--layers") == 0) o->layers = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--embed") == 0) o->embed = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--epochs") == 0) o->epochs = parse_int(flag, v, 0, big);
        else if (strcmp(flag, "--max-steps") == 0) o->max_steps = parse_int64(flag, v, 0);
        else if (strcmp(flag, "--batch") == 0) o->batch = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--bptt") == 0) o->bptt = parse_int(flag, v, 1, big);
        else if (strcmp(flag, "--lr") == 0) o->lr = parse_real(flag, v, POSITIVE);
        else if (strcmp(flag, "--lr-decay") == 0)
            o->lr_decay = parse_real(flag, v, POSITIVE);
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
        } else {
            bad_usage("unknown flag '", flag, "'");
        }
    }
    if (o->data_dir == NULL) bad_usage("--data DIR is required", "", "");
    if (o->embed == 0) o->embed = o->hidden;
    /* Without a policy nothing is dropped; reporting the default p would mislabel the run. */
    if (o->policy == SDLSTM_POLICY_NONE) o->p_nr = o->p_rh = 0;
    /* A batch is B * T ids in one int32-indexed buffer. */
    if ((int64_t)o->batch * o->bptt > INT32_MAX) bad_usage("--batch * --bptt is too large", "", "");
}

/* ------------------------------------------------------------------------------------------ */
/* Corpus                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef struct corpus {
    int32_t *ids;
    int64_t size;
} corpus;

static bool corpus_push(corpus *c, int64_t *cap, int32_t id) {
    if (c->size == *cap) {
        int32_t *ids = realloc(c->ids, (size_t)*cap * 2 * sizeof *ids);
        if (!ids) return false;
        c->ids = ids;
        *cap *= 2;
    }
    c->ids[c->size++] = id;
    return true;
}

/* Turns text into ids, cutting the text in place so that each word is a C string.
 * With grow, unseen words join the vocabulary (the training file); otherwise they become unk_id.
 * Every line ends in <eos>, the last one too even without a trailing newline. */
static bool tokenize(char *text, vocab *v, bool grow, int32_t eos_id, int32_t unk_id, corpus *out) {
    int64_t cap = 1 << 16;
    *out = (corpus){.ids = malloc((size_t)cap * sizeof(int32_t)), .size = 0};
    if (!out->ids) goto oom;
    char *p = text;
    while (*p) {
        char *line_end = strchr(p, '\n');
        char *next = line_end ? line_end + 1 : p + strlen(p);
        if (line_end) *line_end = '\0';
        char *save = NULL;
        for (char *w = strtok_r(p, " \t\r\v\f", &save); w; w = strtok_r(NULL, " \t\r\v\f", &save)) {
            int32_t id = grow ? vocab_add(v, w) : vocab_find(v, w);
            if (grow && id < 0) goto oom;
            if (id < 0) id = unk_id;
            if (!corpus_push(out, &cap, id)) goto oom;
        }
        if (!corpus_push(out, &cap, eos_id)) goto oom;
        p = next;
    }
    return true;
oom:
    fputs("lm: out of memory tokenizing the corpus\n", stderr);
    free(out->ids);
    *out = (corpus){0};
    return false;
}

typedef struct dataset {
    vocab vocab;
    char *train_text;   /* owns the vocabulary's words when they come from the training text */
    char **vocab_block; /* owns them when they come from a checkpoint (sdlstm_get_strings) */
    corpus train, valid, test;
} dataset;

static void dataset_free(dataset *d) {
    vocab_free(&d->vocab);
    sdlstm_free(d->vocab_block);
    free(d->train_text);
    free(d->train.ids);
    free(d->valid.ids);
    free(d->test.ids);
    *d = (dataset){0};
}

static bool load_split(const char *dir, const char *name, dataset *d, int32_t eos, int32_t unk,
                       corpus *out) {
    char *text = read_file(dir, name, NULL);
    if (!text) return false;
    bool ok = tokenize(text, &d->vocab, false, eos, unk, out);
    free(text);
    return ok;
}

/* Reads the three splits with a given vocabulary (a checkpoint's, n words, whose block d then owns):
 * words outside it become <unk>. */
static bool dataset_load_fixed(const char *dir, dataset *d, char **words, int64_t n) {
    *d = (dataset){0};
    d->vocab_block = words;
    if (!vocab_init(&d->vocab)) {
        fputs("lm: out of memory\n", stderr);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t id = vocab_add(&d->vocab, words[i]);
        if (id < 0) {
            fputs("lm: out of memory\n", stderr);
            return false;
        }
        if (id != i) {
            fprintf(stderr, "lm: the checkpoint's vocabulary lists \"%s\" twice\n", words[i]);
            return false;
        }
    }
    int32_t eos = vocab_find(&d->vocab, "<eos>"), unk = vocab_find(&d->vocab, "<unk>");
    if (eos < 0 || unk < 0) {
        fputs("lm: the checkpoint's vocabulary lacks <eos> or <unk>\n", stderr);
        return false;
    }
    return load_split(dir, "ptb.train.txt", d, eos, unk, &d->train) &&
           load_split(dir, "ptb.valid.txt", d, eos, unk, &d->valid) &&
           load_split(dir, "ptb.test.txt", d, eos, unk, &d->test);
}

static bool dataset_load(const char *dir, dataset *d) {
    *d = (dataset){0};
    if (!vocab_init(&d->vocab)) {
        fputs("lm: out of memory\n", stderr);
        return false;
    }
    d->train_text = read_file(dir, "ptb.train.txt", NULL);
    if (!d->train_text) return false;
    /* <eos> has to exist before the first line ends; its id is then 0. */
    int32_t eos = vocab_add(&d->vocab, "<eos>");
    if (eos < 0) {
        fputs("lm: out of memory\n", stderr);
        return false;
    }
    if (!tokenize(d->train_text, &d->vocab, true, eos, -1, &d->train)) return false;
    /* PTB's training text already contains <unk>; any other corpus gets one so that unseen
     * valid/test words have somewhere to go. */
    int32_t unk = vocab_add(&d->vocab, "<unk>");
    if (unk < 0) {
        fputs("lm: out of memory\n", stderr);
        return false;
    }
    return load_split(dir, "ptb.valid.txt", d, eos, unk, &d->valid) &&
           load_split(dir, "ptb.test.txt", d, eos, unk, &d->test);
}

/* ------------------------------------------------------------------------------------------ */
/* Batching                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* A corpus viewed as `batch` parallel streams of `len` tokens each; the tail that does not fill
 * a whole column is dropped, as in Zaremba et al. */
typedef struct batcher {
    const int32_t *ids;
    int32_t batch;
    int32_t bptt;
    int64_t len;   /* tokens per stream */
    int64_t steps; /* windows per pass; the last one may be shorter than bptt */
    int32_t *inputs;  /* batch * bptt, allocated once */
    int32_t *targets; /* batch * bptt */
} batcher;

static bool batcher_init(batcher *b, const corpus *c, int32_t batch, int32_t bptt, const char *name) {
    *b = (batcher){.ids = c->ids, .batch = batch, .bptt = bptt, .len = c->size / batch};
    /* The last token of each stream is only ever a target. */
    if (b->len < 2) {
        fprintf(stderr, "lm: %s has %" PRId64 " tokens, too few for %d streams\n", name, c->size,
                batch);
        return false;
    }
    b->steps = (b->len - 1 + bptt - 1) / bptt;
    size_t n = (size_t)batch * (size_t)bptt;
    b->inputs = malloc(n * sizeof *b->inputs);
    b->targets = malloc(n * sizeof *b->targets);
    if (!b->inputs || !b->targets) {
        fputs("lm: out of memory\n", stderr);
        return false;
    }
    return true;
}

static void batcher_free(batcher *b) {
    free(b->inputs);
    free(b->targets);
    *b = (batcher){0};
}

/* Fills the buffers with window `step` of every stream; stream r starts at token r * len. */
static sdlstm_batch batcher_fill(batcher *b, int64_t step) {
    int64_t t0 = step * b->bptt;
    int64_t left = b->len - 1 - t0;
    int32_t T = left < b->bptt ? (int32_t)left : b->bptt;
    for (int32_t r = 0; r < b->batch; r++) {
        const int32_t *src = b->ids + (int64_t)r * b->len + t0;
        memcpy(b->inputs + (size_t)r * T, src, (size_t)T * sizeof *src);
        memcpy(b->targets + (size_t)r * T, src + 1, (size_t)T * sizeof *src);
    }
    return (sdlstm_batch){
        .struct_size = sizeof(sdlstm_batch),
        .batch_size = b->batch,
        .seq_len = T,
        .inputs = b->inputs,
        .targets = b->targets,
    };
}

/* ------------------------------------------------------------------------------------------ */
/* Model set-up                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* Stores what a checkpoint of this program needs beyond the model: the vocabulary (id -> word) and
 * the settings that are not part of the library's model (the schedule, the batching, the labels). */
static bool store_settings(sdlstm_model *m, const options *o, const vocab *v) {
    if (!ok(sdlstm_set_strings(m, "vocab", v->words, v->size), "sdlstm_set_strings(vocab)")) return false;
    char buf[64];
    const struct {
        const char *key;
        double value;
    } numbers[] = {{"lm.lr", o->lr},         {"lm.lr_decay", o->lr_decay}, {"lm.decay_after", o->decay_after},
                   {"lm.batch", o->batch},   {"lm.bptt", o->bptt},         {"lm.p_nr", o->p_nr},
                   {"lm.p_rh", o->p_rh}};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        snprintf(buf, sizeof buf, "%.17g", numbers[i].value);
        if (!ok(sdlstm_set_metadata(m, numbers[i].key, buf), "sdlstm_set_metadata")) return false;
    }
    return ok(sdlstm_set_metadata(m, "lm.policy", o->policy_name), "sdlstm_set_metadata") &&
           ok(sdlstm_set_metadata(m, "lm.corpus", "ptb"), "sdlstm_set_metadata");
}

/* The metadata value of key as a number into *v; an absent key leaves *v. False if malformed. */
static bool meta_number(sdlstm_model *m, const char *key, double *v) {
    char *text = NULL;
    if (!ok(sdlstm_get_metadata(m, key, &text), "sdlstm_get_metadata")) return false;
    if (!text) return true;
    char *end = NULL;
    double x = strtod(text, &end);
    bool good = end != text && *end == '\0' && isfinite(x);
    if (good) *v = x;
    else fprintf(stderr, "lm: the checkpoint's %s = \"%s\" is not a number\n", key, text);
    sdlstm_free(text);
    return good;
}

/* With --load: the architecture, clipping, dropout labels, schedule and batching come from the
 * checkpoint (the library restores the model itself, dropout and random stream included). */
static bool restore_settings(sdlstm_model *m, options *o) {
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    sdlstm_progress p = {.struct_size = sizeof p};
    if (!ok(sdlstm_get_config(m, &cfg), "sdlstm_get_config") ||
        !ok(sdlstm_get_progress(m, &p), "sdlstm_get_progress"))
        return false;
    if (cfg.task != SDLSTM_TASK_LANGUAGE_MODEL) {
        fputs("lm: the checkpoint does not hold a language model\n", stderr);
        return false;
    }
    o->hidden = cfg.hidden_size;
    o->layers = cfg.num_layers;
    o->embed = cfg.embed_size;
    o->init = cfg.init_scale;
    o->seed = cfg.seed;
    o->clip = p.clip_norm;
    double decay_after = o->decay_after, batch = o->batch, bptt = o->bptt;
    if (!meta_number(m, "lm.lr", &o->lr) || !meta_number(m, "lm.lr_decay", &o->lr_decay) ||
        !meta_number(m, "lm.decay_after", &decay_after) || !meta_number(m, "lm.batch", &batch) ||
        !meta_number(m, "lm.bptt", &bptt) || !meta_number(m, "lm.p_nr", &o->p_nr) ||
        !meta_number(m, "lm.p_rh", &o->p_rh))
        return false;
    if (decay_after < 0 || decay_after > INT32_MAX || batch < 1 || batch > INT32_MAX || bptt < 1 ||
        bptt > INT32_MAX || batch * bptt > INT32_MAX || !(o->lr > 0) || !(o->lr_decay > 0)) {
        fputs("lm: the checkpoint's lm.* settings are out of range\n", stderr);
        return false;
    }
    o->decay_after = (int32_t)decay_after;
    o->batch = (int32_t)batch;
    o->bptt = (int32_t)bptt;
    char *policy = NULL;
    if (!ok(sdlstm_get_metadata(m, "lm.policy", &policy), "sdlstm_get_metadata")) return false;
    if (policy) {
        int k = find_policy(policy);
        if (k >= 0) {
            o->policy = policies[k].policy;
            o->policy_name = policies[k].name;
        }
        sdlstm_free(policy);
    }
    if (o->fixed_flag)
        fprintf(stderr, "lm: warning: %s (and the like) is ignored: the checkpoint sets it\n", o->fixed_flag);
    return ok(sdlstm_set_num_threads(m, o->threads), "sdlstm_set_num_threads");
}

/* Saves a checkpoint; a failure is reported and counted, and training goes on. */
static void save_checkpoint(sdlstm_model *m, const options *o, int *failures) {
    if (!o->save_path) return;
    if (ok(sdlstm_save(m, o->save_path, SDLSTM_SAVE_DEFAULT), "sdlstm_save"))
        fprintf(stderr, "lm: saved %s\n", o->save_path);
    else
        ++*failures;
}

static sdlstm_model *make_model(const options *o, int32_t vocab_size) {
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    if (!ok(sdlstm_config_init(&cfg, SDLSTM_TASK_LANGUAGE_MODEL), "sdlstm_config_init")) return NULL;
    cfg.vocab_size = vocab_size;
    cfg.embed_size = o->embed;
    cfg.hidden_size = o->hidden;
    cfg.num_layers = o->layers;
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

/* ------------------------------------------------------------------------------------------ */
/* Evaluation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static double ppl_of(double loss_sum, int64_t tokens) {
    return tokens > 0 ? exp(loss_sum / (double)tokens) : NAN;
}

/* Perplexity of a whole split, the state carried across windows from a zero start.
 * Returns false (after reporting) when the library fails. */
static bool evaluate(sdlstm_model *m, batcher *b, double *ppl) {
    if (!ok(sdlstm_reset_state(m), "sdlstm_reset_state")) return false;
    double loss_sum = 0;
    int64_t tokens = 0;
    for (int64_t s = 0; s < b->steps; s++) {
        sdlstm_batch batch = batcher_fill(b, s);
        sdlstm_stats st = {.struct_size = sizeof st};
        if (!ok(sdlstm_evaluate(m, &batch, &st), "sdlstm_evaluate")) return false;
        loss_sum += st.loss * (double)st.tokens;
        tokens += st.tokens;
    }
    *ppl = ppl_of(loss_sum, tokens);
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* One pass over the training streams. Returns false if the library failed. */
static bool train_epoch(sdlstm_model *m, batcher *b, const options *o, int32_t epoch, double lr,
                        train_totals *tot) {
    if (!ok(sdlstm_set_learning_rate(m, (float)lr), "sdlstm_set_learning_rate")) return false;
    /* Each epoch restarts the streams at their beginnings, so the carried state from the end of
     * the previous epoch would belong to unrelated text. */
    if (!ok(sdlstm_reset_state(m), "sdlstm_reset_state")) return false;

    int64_t steps = b->steps;
    if (o->max_steps > 0 && o->max_steps < steps) steps = o->max_steps;
    int64_t report_every = steps >= 10 ? steps / 10 : 1;

    double epoch_loss = 0, window_loss = 0;
    int64_t epoch_tokens = 0, window_tokens = 0;
    double t_start = now_s();
    for (int64_t s = 0; s < steps; s++) {
        sdlstm_batch batch = batcher_fill(b, s);
        sdlstm_stats st;
        int stepped = train_step(m, &batch, &st, epoch, s, tot);
        if (stepped < 0) return false;
        if (stepped) {
            epoch_loss += st.loss * (double)st.tokens;
            epoch_tokens += st.tokens;
            window_loss += st.loss * (double)st.tokens;
            window_tokens += st.tokens;
        }

        if ((s + 1) % report_every == 0 || s + 1 == steps) {
            double elapsed = now_s() - t_start;
            double wps = elapsed > 0 ? (double)epoch_tokens / elapsed : 0;
            char eta[32];
            format_duration(eta, sizeof eta, elapsed / (double)(s + 1) * (double)(steps - s - 1));
            double wl = window_tokens > 0 ? window_loss / (double)window_tokens : NAN;
            fprintf(stderr,
                    "epoch %d  step %" PRId64 "/%" PRId64 "  lr %.4g  loss %.4f  ppl %.2f  "
                    "%.0f words/s  ETA %s\n",
                    epoch, s + 1, steps, lr, wl, exp(wl), wps, eta);
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
/* Output                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static void print_result(const options *o, const sdlstm_runtime_info *rt, int32_t vocab_size, const train_totals *tot,
                         int32_t epoch, double valid_ppl, double test_ppl, double seconds) {
    printf("{\"task\":\"lm\",\"policy\":\"%s\"", o->policy_name);
    json_number("p_nr", o->p_nr);
    json_number("p_rh", o->p_rh);
    printf(",\"hidden\":%d,\"layers\":%d,\"embed\":%d,\"vocab\":%d", o->hidden, o->layers, o->embed,
           vocab_size);
    printf(",\"batch\":%d,\"bptt\":%d,\"epochs\":%d,\"epoch\":%d,\"max_steps\":%" PRId64, o->batch,
           o->bptt, o->epochs, epoch, o->max_steps);
    json_number("lr", o->lr);
    json_number("lr_decay", o->lr_decay);
    printf(",\"decay_after\":%d", o->decay_after);
    json_number("clip", o->clip);
    json_number("init", o->init);
    printf(",\"threads\":%d,\"seed\":%" PRIu64, o->threads, o->seed);
    printf(",\"steps\":%" PRId64 ",\"numeric_skips\":%" PRId64, tot->steps, tot->numeric_skips);
    json_number("train_ppl", ppl_of(tot->last_epoch_loss, tot->last_epoch_tokens));
    json_number("valid_ppl", valid_ppl);
    json_number("test_ppl", test_ppl);
    json_number("words_per_s", tot->seconds > 0 ? (double)tot->tokens / tot->seconds : NAN);
    json_number("skipped_macs_fraction", tot->steps > 0 ? tot->skipped_sum / (double)tot->steps : 0);
    json_number("train_seconds", tot->seconds);
    json_number("seconds", seconds);
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
    batcher train = {0}, valid = {0}, test = {0};
    sdlstm_model *m = NULL;

    int save_failures = 0;
    int64_t start_epoch = 0;
    if (o.load_path) {
        /* The model comes first: its vocabulary reads the text. */
        if (!ok(sdlstm_load(o.load_path, &m), "sdlstm_load") || !restore_settings(m, &o)) goto done;
        char **words = NULL;
        int64_t n = 0;
        sdlstm_config cfg = {.struct_size = sizeof cfg};
        sdlstm_progress p = {.struct_size = sizeof p};
        if (!ok(sdlstm_get_strings(m, "vocab", &words, &n), "sdlstm_get_strings") ||
            !ok(sdlstm_get_config(m, &cfg), "sdlstm_get_config") ||
            !ok(sdlstm_get_progress(m, &p), "sdlstm_get_progress"))
            goto done;
        if (!words || n != cfg.vocab_size) {
            sdlstm_free(words);
            fprintf(stderr, "lm: %s has no vocabulary of %d words (string table \"vocab\")\n", o.load_path,
                    cfg.vocab_size);
            goto done;
        }
        if (!dataset_load_fixed(o.data_dir, &d, words, n)) goto done;
        start_epoch = p.epoch;
        fprintf(stderr, "lm: loaded %s: epoch %" PRId64 ", step %" PRId64 ", lr %g\n", o.load_path, p.epoch,
                p.step, p.learning_rate);
    } else if (!dataset_load(o.data_dir, &d)) {
        goto done;
    }
    fprintf(stderr,
            "lm: vocab %d; tokens train %" PRId64 " valid %" PRId64 " test %" PRId64 "\n", d.vocab.size, d.train.size, d.valid.size, d.test.size);

    if (!batcher_init(&train, &d.train, o.batch, o.bptt, "ptb.train.txt") ||
        !batcher_init(&valid, &d.valid, o.batch, o.bptt, "ptb.valid.txt") ||
        !batcher_init(&test, &d.test, o.batch, o.bptt, "ptb.test.txt"))
        goto done;

    if (!m) {
        m = make_model(&o, d.vocab.size);
        if (!m || !store_settings(m, &o, &d.vocab)) goto done;
    }
    int64_t params = 0;
    if (!ok(sdlstm_get_parameter_count(m, &params), "sdlstm_get_parameter_count")) goto done;
    fprintf(stderr,
            "lm: %d x %d LSTM, embed %d, %" PRId64 " parameters; policy %s p_nr %g p_rh %g; "
            "%" PRId64 " steps per epoch\n",
            o.layers, o.hidden, o.embed, params, o.policy_name, o.p_nr, o.p_rh,
            o.max_steps > 0 && o.max_steps < train.steps ? o.max_steps : train.steps);

    train_totals tot = {0};
    double valid_ppl = NAN;
    /* The library keeps the epoch counter, so a resumed run continues the schedule where it was. */
    int32_t last_epoch = (int32_t)start_epoch;
    for (int32_t e = last_epoch + 1; e <= start_epoch + o.epochs; e++) {
        int32_t decays = e > o.decay_after ? e - o.decay_after : 0;
        double lr = o.lr * pow(o.lr_decay, decays);
        if (!ok(sdlstm_set_epoch(m, e), "sdlstm_set_epoch")) goto done;
        if (!train_epoch(m, &train, &o, e, lr, &tot)) goto done;
        if (!evaluate(m, &valid, &valid_ppl)) goto done;
        fprintf(stderr, "epoch %d  train ppl %.2f  valid ppl %.2f\n", e,
                ppl_of(tot.last_epoch_loss, tot.last_epoch_tokens), valid_ppl);
        save_checkpoint(m, &o, &save_failures);
        last_epoch = e;
    }
    if (o.epochs == 0 && !evaluate(m, &valid, &valid_ppl)) goto done;
    double test_ppl = NAN;
    if (!evaluate(m, &test, &test_ppl)) goto done;
    fprintf(stderr, "test ppl %.2f\n", test_ppl);
    save_checkpoint(m, &o, &save_failures);

    print_result(&o, &rt, d.vocab.size, &tot, last_epoch, valid_ppl, test_ppl, now_s() - t0);
    status = save_failures > 0;

done:
    sdlstm_model_free(m);
    batcher_free(&train);
    batcher_free(&valid);
    batcher_free(&test);
    dataset_free(&d);
    return status;
}
