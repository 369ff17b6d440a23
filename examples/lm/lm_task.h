/*
 * lm_task.h — the word-level language model of the PTB example, as parts any program training or
 * applying it can use (lm.c is the command line; a data-parallel variant needs only its own loop
 * around these): the vocabulary and tokenisation, the corpus in parallel streams, one training
 * epoch, evaluation, and what a checkpoint stores beyond the model.
 *
 * Batching follows Zaremba et al. (2014): the token stream is cut into `batch` parallel streams
 * and each step reads the next `bptt` tokens of every stream, so the hidden state the library
 * carries from one step to the next belongs to the same text.
 */
#ifndef SDLSTM_EXAMPLE_LM_TASK_H
#define SDLSTM_EXAMPLE_LM_TASK_H

#include "../common/example.h"

/* The training settings, with the LM's own window length. */
typedef struct lm_options {
    train_options train;
    int32_t bptt;
} lm_options;

/* The defaults of a PTB run (PyTorch's word-LM example: 2 x 200, lr 20, clip 0.25, p 0.5). */
lm_options lm_defaults(void);

/* The flags of a training run that lm and lm-mpi read alike, into lo (train_options *o = &lo->train)
 * and data_dir; each program adds those it words its own way (batch, lr, clip, threads, seed, save,
 * load, epochs). */
#define LM_SHARED_FLAGS(lo, o, data_dir) \
    {.name = "--data", .kind = FLAG_TEXT, .value = &(data_dir), .arg = "DIR", .help = "directory holding ptb.train.txt, ptb.valid.txt, ptb.test.txt"}, \
    {.name = "--hidden", .kind = FLAG_INT, .value = &(o)->hidden, .arg = "N", .help = "LSTM width (200)", .min = 1, .max = big, .fixed = true}, \
    {.name = "--layers", .kind = FLAG_INT, .value = &(o)->layers, .arg = "N", .help = "stacked LSTM layers (2)", .min = 1, .max = big, .fixed = true}, \
    {.name = "--embed", .kind = FLAG_INT, .value = &(o)->embed, .arg = "N", .help = "embedding width (= hidden)", .min = 1, .max = big, .fixed = true}, \
    {.name = "--max-steps", .kind = FLAG_INT64, .value = &(o)->max_steps, .arg = "N", .help = "cap on training steps per epoch, 0 = no cap (0)", .min = 0}, \
    {.name = "--bptt", .kind = FLAG_INT, .value = &(lo)->bptt, .arg = "N", .help = "truncated-BPTT window (35)", .min = 1, .max = big, .fixed = true}, \
    {.name = "--lr-decay", .kind = FLAG_REAL, .value = &(o)->lr_decay, .arg = "F", .help = "factor applied to lr each epoch after --decay-after (0.5)", .range = POSITIVE, .fixed = true}, \
    {.name = "--decay-after", .kind = FLAG_INT, .value = &(o)->decay_after, .arg = "N", .help = "epochs trained at the full lr (4)", .min = 0, .max = big, .fixed = true}, \
    {.name = "--init", .kind = FLAG_REAL, .value = &(o)->init, .arg = "F", .help = "parameters start uniform in [-F, F] (0.1)", .range = POSITIVE, .fixed = true}, \
    {.name = "--policy", .kind = FLAG_CHOICE, .value = &(o)->policy, .arg = "P", .help = "none|variational|standard|structured|structured-fixed (structured)", .choices = policy_names, .fixed = true}, \
    {.name = "--p-nr", .kind = FLAG_REAL, .value = &(o)->p_nr, .arg = "F", .help = "drop probability on INPUT, BETWEEN (layers >= 2), OUTPUT (0.5)", .range = PROBABILITY, .fixed = true}, \
    {.name = "--p-rh", .kind = FLAG_REAL, .value = &(o)->p_rh, .arg = "F", .help = "drop probability on RECURRENT, 0 = off (0)", .range = PROBABILITY, .fixed = true}

typedef struct corpus {
    int32_t *ids;
    int64_t size;
    int64_t oov; /* words read as <unk> because the vocabulary lacks them */
} corpus;

/* The vocabulary and the three splits of a PTB-style directory. */
typedef struct dataset {
    vocab vocab;
    int32_t eos, unk;
    char *train_text;   /* owns the vocabulary's words when they come from the training text */
    char **vocab_block; /* owns them when they come from a checkpoint */
    corpus train, valid, test;
} dataset;

void dataset_free(dataset *d);

/* Reads DIR/ptb.{train,valid,test}.txt; the vocabulary is the training text's words, <eos> (id 0)
 * and <unk>. */
bool dataset_load(const char *dir, dataset *d);

/* The vocabulary of a loaded model (string table "vocab", with <eos> and <unk>) into d, no text. */
bool dataset_vocab_from_model(const sdlstm_model *m, dataset *d);

/* With d's vocabulary set: reads DIR's three splits, words outside the vocabulary as <unk>. */
bool dataset_load_splits(const char *dir, dataset *d);

/* Turns text into ids with d's vocabulary, cutting the text in place: words outside it become <unk>
 * (counted in out->oov), and every line ends in <eos>, the last one too without a trailing newline. */
bool tokenize_fixed(char *text, const dataset *d, corpus *out);

/* A corpus viewed as `batch` parallel streams of `len` tokens each; the tail that does not fill
 * a whole column is dropped, as in Zaremba et al. */
typedef struct batcher {
    const int32_t *ids;
    int32_t batch;
    int32_t bptt;
    int64_t len;      /* tokens per stream */
    int64_t steps;    /* windows per pass; the last one may be shorter than bptt */
    int32_t *inputs;  /* batch * bptt, allocated once */
    int32_t *targets; /* batch * bptt */
} batcher;

bool batcher_init(batcher *b, const corpus *c, int32_t batch, int32_t bptt, const char *name);
void batcher_free(batcher *b);
/* Fills the buffers with window `step` of every stream; stream r starts at token r * len. */
sdlstm_batch batcher_fill(batcher *b, int64_t step);

/* The model of o for a vocabulary of vocab_size words, its vocabulary and settings stored. */
sdlstm_model *lm_create(const lm_options *o, const vocab *v);

/* With --load: the architecture, clipping, schedule and batching into o from the checkpoint. */
bool lm_restore_options(sdlstm_model *m, lm_options *o);

/* One pass over the training streams at learning rate lr (at most max_steps windows when > 0).
 * Returns false if the library failed. */
bool lm_train_epoch(sdlstm_model *m, batcher *b, const lm_options *o, int32_t epoch, double lr, train_totals *tot);

/* Perplexity of a whole split, the state carried across windows from a zero start. */
bool lm_evaluate(sdlstm_model *m, batcher *b, double *ppl);

#endif
