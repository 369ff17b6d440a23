/*
 * lm_task.c — the PTB language model's data, training epoch and evaluation; see lm_task.h.
 */
#define _POSIX_C_SOURCE 200809L

#include "lm_task.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Corpus                                                                                      */
/* ------------------------------------------------------------------------------------------ */

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

/* With grow, unseen words join the vocabulary (the training file); otherwise they become <unk>. */
static bool tokenize(char *text, vocab *v, bool grow, int32_t eos_id, int32_t unk_id, corpus *out) {
    int64_t cap = 1 << 16;
    *out = (corpus){.ids = malloc((size_t)cap * sizeof(int32_t))};
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
            if (id < 0) {
                id = unk_id;
                out->oov++;
            }
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

bool tokenize_fixed(char *text, const dataset *d, corpus *out) {
    return tokenize(text, (vocab *)&d->vocab, false, d->eos, d->unk, out);
}

void dataset_free(dataset *d) {
    vocab_free(&d->vocab);
    sdlstm_free(d->vocab_block);
    free(d->train_text);
    free(d->train.ids);
    free(d->valid.ids);
    free(d->test.ids);
    *d = (dataset){0};
}

static bool load_split(const char *dir, const char *name, const dataset *d, corpus *out) {
    char *text = read_file(dir, name, NULL);
    if (!text) return false;
    bool good = tokenize_fixed(text, d, out);
    free(text);
    return good;
}

bool dataset_vocab_from_model(const sdlstm_model *m, dataset *d) {
    *d = (dataset){0};
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    if (!ok(sdlstm_get_config(m, &cfg), "sdlstm_get_config") ||
        !vocab_restore(m, "vocab", cfg.vocab_size, &d->vocab, &d->vocab_block))
        return false;
    d->eos = vocab_find(&d->vocab, "<eos>");
    d->unk = vocab_find(&d->vocab, "<unk>");
    if (d->eos < 0 || d->unk < 0) {
        fputs("lm: the checkpoint's vocabulary lacks <eos> or <unk>\n", stderr);
        return false;
    }
    return true;
}

bool dataset_load_splits(const char *dir, dataset *d) {
    return load_split(dir, "ptb.train.txt", d, &d->train) && load_split(dir, "ptb.valid.txt", d, &d->valid) &&
           load_split(dir, "ptb.test.txt", d, &d->test);
}

bool dataset_load(const char *dir, dataset *d) {
    *d = (dataset){0};
    if (!vocab_init(&d->vocab)) {
        fputs("lm: out of memory\n", stderr);
        return false;
    }
    d->train_text = read_file(dir, "ptb.train.txt", NULL);
    if (!d->train_text) return false;
    /* <eos> has to exist before the first line ends; its id is then 0. */
    d->eos = vocab_add(&d->vocab, "<eos>");
    if (d->eos < 0) {
        fputs("lm: out of memory\n", stderr);
        return false;
    }
    if (!tokenize(d->train_text, &d->vocab, true, d->eos, -1, &d->train)) return false;
    /* PTB's training text already contains <unk>; any other corpus gets one so that unseen
     * valid/test words have somewhere to go. */
    d->unk = vocab_add(&d->vocab, "<unk>");
    if (d->unk < 0) {
        fputs("lm: out of memory\n", stderr);
        return false;
    }
    return load_split(dir, "ptb.valid.txt", d, &d->valid) && load_split(dir, "ptb.test.txt", d, &d->test);
}

/* ------------------------------------------------------------------------------------------ */
/* Batching                                                                                    */
/* ------------------------------------------------------------------------------------------ */

bool batcher_init(batcher *b, const corpus *c, int32_t batch, int32_t bptt, const char *name) {
    *b = (batcher){.ids = c->ids, .batch = batch, .bptt = bptt, .len = c->size / batch};
    /* The last token of each stream is only ever a target. */
    if (b->len < 2) {
        fprintf(stderr, "lm: %s has %" PRId64 " tokens, too few for %d streams\n", name, c->size, batch);
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

void batcher_free(batcher *b) {
    free(b->inputs);
    free(b->targets);
    *b = (batcher){0};
}

sdlstm_batch batcher_fill(batcher *b, int64_t step) {
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
/* The model                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* A checkpoint of this program needs beyond the model its vocabulary (id -> word) and the settings
 * that are not part of the library's model (the schedule, the batching, the labels). */
sdlstm_model *lm_create(const lm_options *o, const vocab *v) {
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    if (!ok(sdlstm_config_init(&cfg, SDLSTM_TASK_LANGUAGE_MODEL), "sdlstm_config_init")) return NULL;
    cfg.vocab_size = v->size;
    sdlstm_model *m = create_model(&cfg, &o->train);
    if (m && !(vocab_store(m, "vocab", v) && store_schedule(m, "lm", &o->train) && meta_set_number(m, "lm.bptt", o->bptt) &&
               meta_set_text(m, "lm.corpus", "ptb"))) {
        sdlstm_model_free(m);
        return NULL;
    }
    return m;
}

bool lm_restore_options(sdlstm_model *m, lm_options *o) {
    double bptt = o->bptt;
    if (!restore_model_options(m, SDLSTM_TASK_LANGUAGE_MODEL, &o->train) || !restore_schedule(m, "lm", &o->train) ||
        !meta_number(m, "lm.bptt", &bptt))
        return false;
    if (bptt < 1 || bptt > INT32_MAX || (double)o->train.batch * bptt > INT32_MAX) {
        fputs("lm: the checkpoint's lm.bptt is out of range\n", stderr);
        return false;
    }
    o->bptt = (int32_t)bptt;
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Training and evaluation                                                                     */
/* ------------------------------------------------------------------------------------------ */

bool lm_train_epoch(sdlstm_model *m, batcher *b, const lm_options *o, int32_t epoch, double lr, train_totals *tot) {
    if (!ok(sdlstm_set_learning_rate(m, (float)lr), "sdlstm_set_learning_rate")) return false;
    /* Each epoch restarts the streams at their beginnings, so the carried state from the end of
     * the previous epoch would belong to unrelated text. */
    if (!ok(sdlstm_reset_state(m), "sdlstm_reset_state")) return false;
    int64_t steps = b->steps;
    if (o->train.max_steps > 0 && o->train.max_steps < steps) steps = o->train.max_steps;
    epoch_meter em;
    meter_start(&em, tot, epoch, steps, lr, true);
    for (int64_t s = 0; s < steps; s++) {
        sdlstm_batch batch = batcher_fill(b, s);
        if (meter_step(&em, m, &batch, s) < 0) return false;
    }
    meter_finish(&em);
    return true;
}

bool lm_evaluate(sdlstm_model *m, batcher *b, double *ppl) {
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

lm_options lm_defaults(void) {
    return (lm_options){
        .train = {.hidden = 200, .layers = 2, .embed = 0, .epochs = 1, .batch = 20, .lr = 20.0, .lr_decay = 0.5,
                  .decay_after = 4, .clip = 0.25, .init = 0.1, .policy = 3, .p_nr = 0.5, .threads = available_cores(),
                  .seed = 1},
        .bptt = 35,
    };
}
