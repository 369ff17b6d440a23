/*
 * example.h — what the example programs share (defined in example.c): the flag table and its parser,
 * reporting failed library calls and the runtime, the setter chain that makes a model, training
 * steps with their progress meter and totals, the JSON result and per-epoch lines, checkpoint string
 * tables and metadata, a string -> id hash map, file reading, and a small random generator.
 *
 * A program links example.c and defines `const char *const example_name`, its name, which
 * prefixes every message. Programs define _POSIX_C_SOURCE 200809L (strtok_r, strdup) themselves.
 */
#ifndef SDLSTM_EXAMPLE_H
#define SDLSTM_EXAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sdlstm.h"

extern const char *const example_name; /* each program's own */

/* ------------------------------------------------------------------------------------------ */
/* Flags                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* A finite number that must be > 0, >= 0, a probability in [0, 1), or one in [0, 1]. */
typedef enum real_range { POSITIVE, NON_NEGATIVE, PROBABILITY, UNIT } real_range;

typedef enum flag_kind {
    FLAG_INT,    /* int32_t in [min, max] */
    FLAG_INT64,  /* int64_t >= min */
    FLAG_U64,    /* uint64_t */
    FLAG_REAL,   /* double in range */
    FLAG_TEXT,   /* const char * */
    FLAG_CHOICE, /* int: the index of the value in choices (a NULL-terminated list) */
    FLAG_SWITCH, /* bool, takes no value */
} flag_kind;

/* One flag of a command: parse_flags writes its value through `value` and sets `given`. */
typedef struct flag {
    const char *name; /* "--hidden" */
    flag_kind kind;
    void *value;
    const char *arg;  /* the value's name in the help ("N", "F", "FILE") */
    const char *help; /* one line, the default in parentheses */
    long long min, max;
    real_range range;
    const char *const *choices;
    bool fixed; /* a checkpoint given with --load sets it: marked * in the help, warned about when given too */
    bool given;
} flag;

/* The names of the dropout policies, index = what FLAG_CHOICE gives, and their values. */
extern const char *const policy_names[];
extern const sdlstm_policy policy_values[];

/* Parses argv[first .. argc-1] against flags[0 .. n-1]: --help prints synopsis and the flags and
 * exits 0; anything wrong prints the reason and the help to stderr and exits 2. Arguments that are
 * not flags go to positional (at most max_positional, else an error); returns their number. */
int parse_flags(int argc, char **argv, int first, const char *synopsis, flag *flags, size_t n,
                const char **positional, int max_positional);

/* The entry of flags called name (which must exist). */
flag *find_flag(flag *flags, size_t n, const char *name);

/* After parse_flags: the message (three parts joined, keeping format strings literal) and the help
 * of the command parsed, then exit 2. */
_Noreturn void bad_usage(const char *a, const char *b, const char *c);

/* Cores this process may run on (sched_getaffinity, else the online CPUs): the examples' default
 * --threads. */
int32_t available_cores(void);

/* ------------------------------------------------------------------------------------------ */
/* The library and the model                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Reports a failed library call; returns whether the call succeeded. */
bool ok(sdlstm_status s, const char *what);

/* Prints what the library computes with as the program's first line on stderr (a slow OpenBLAS core
 * shows here first) and keeps it in info for json_end; false after reporting a failure, such as a
 * bad SDLSTM_ISA. */
bool report_runtime(sdlstm_runtime_info *info);

/* What every trainer's command line sets; each program's flag table points into it. */
typedef struct train_options {
    int32_t hidden, layers, embed;
    int32_t epochs;
    int64_t max_steps;
    int32_t batch;
    double lr, lr_decay;
    int32_t decay_after;
    double clip, init;
    int policy; /* index into policy_names */
    double p_nr, p_rh;
    int32_t threads;
    uint64_t seed;
    const char *save_path, *load_path;
    const char *epoch_json; /* per-epoch JSON lines go here */
} train_options;

static inline const char *policy_name(const train_options *o) { return policy_names[o->policy]; }

/* Without a policy nothing is dropped; reporting the default p would mislabel the run. */
void normalize_dropout(train_options *o);

/* Creates the model of cfg (its task's fields set by the caller; embed, hidden, layers, init and seed
 * come from o) and applies SGD, o's learning rate, clip, threads and dropout. NULL after reporting. */
sdlstm_model *create_model(sdlstm_config *cfg, const train_options *o);

/* The task, architecture, clip and seed of a loaded model into o; false (reported) if it is not of
 * task. Then applies o's threads. */
bool restore_model_options(sdlstm_model *m, sdlstm_task task, train_options *o);

/* Saves to path if it is not NULL; a failure is reported and counted, and training goes on. */
void save_checkpoint(sdlstm_model *m, const char *path, int *failures);

/* The metadata of key as a number (stored with meta_set_number); an absent key leaves *v. False,
 * reported, if the call fails or the value is not a finite number. */
bool meta_number(const sdlstm_model *m, const char *key, double *v);
bool meta_set_number(sdlstm_model *m, const char *key, double v);
bool meta_set_text(sdlstm_model *m, const char *key, const char *value);

/* The schedule, batching and dropout settings a trainer stores as metadata "<prefix>.lr" and so on
 * (prefix: the task, "lm", "ner", "nmt"), and reads back into o from a loaded model. */
bool store_schedule(sdlstm_model *m, const char *prefix, const train_options *o);
bool restore_schedule(const sdlstm_model *m, const char *prefix, train_options *o);

/* The learning rate of epoch e (1-based): lr, times lr_decay for each epoch after decay_after. */
double scheduled_lr(const train_options *o, int32_t epoch);

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* What a run's training steps add up to, over all epochs and for the last one. Tokens are the
 * library's count (sdlstm_stats.tokens), the ones its loss is a mean over. */
typedef struct train_totals {
    int64_t steps;          /* successful steps, all epochs */
    int64_t numeric_skips;  /* steps the library refused with SDLSTM_E_NUMERIC */
    int64_t tokens;         /* tokens of successful steps */
    double seconds;         /* time spent in training steps, evaluation excluded */
    double skipped_sum;     /* sum over steps of skipped_macs_fraction */
    double last_epoch_loss; /* token-weighted loss sum of the last epoch */
    int64_t last_epoch_tokens;
    double last_epoch_seconds;
} train_totals;

/* One epoch's progress: a line on stderr every tenth of its steps (loss, perplexity if show_ppl,
 * mean gradient norm, words/s, ETA), and its sums into the run's totals. */
typedef struct epoch_meter {
    int32_t epoch;
    int64_t steps, every;
    double lr;
    bool show_ppl;
    double t_start;
    double loss, window_loss, window_norm;
    int64_t tokens, window_tokens, window_steps;
    train_totals *tot;
} epoch_meter;

void meter_start(epoch_meter *em, train_totals *tot, int32_t epoch, int64_t steps, double lr, bool show_ppl);

/* Step k (0-based) of the epoch: one sdlstm_step, counted. Returns 1 after an update, 0 when the
 * library refused the batch with SDLSTM_E_NUMERIC (a non-finite loss or gradient: it changed
 * nothing, so one bad batch is survivable; warned about and counted), -1 with the error printed on
 * any other failure. */
int meter_step(epoch_meter *em, sdlstm_model *m, const sdlstm_batch *batch, int64_t k);

/* Ends the epoch: its time and tokens into the totals. */
void meter_finish(epoch_meter *em);

/* exp of the mean loss, NaN without tokens. */
double ppl_of(double loss_sum, int64_t tokens);

/* ------------------------------------------------------------------------------------------ */
/* JSON output                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* A JSON object on one line: json_begin, fields, json_end (which adds the runtime and version when rt
 * is not NULL, closes the line and flushes). JSON has no NaN or infinity: those are null. */
void json_begin(FILE *f, const char *task);
void json_number(FILE *f, const char *key, double v);
void json_int(FILE *f, const char *key, int64_t v);
void json_string(FILE *f, const char *key, const char *s);
void json_end(FILE *f, const sdlstm_runtime_info *rt);

/* The fields of o and tot every trainer's result line has. */
void json_training(FILE *f, const train_options *o, const train_totals *tot);

/* --epoch-json: opens path for one line per epoch (NULL path: none, *f = NULL); false if it cannot. */
bool epoch_log_open(const char *path, FILE **f);

/* Begins an epoch's line: task, policy, p, epoch, lr, the epoch's train loss and words/s, the
 * training seconds so far. The caller adds its metrics and calls json_end(f, NULL). */
void epoch_log_begin(FILE *f, const char *task, const train_options *o, int32_t epoch, double lr,
                     const train_totals *tot);

/* ------------------------------------------------------------------------------------------ */
/* Vocabulary                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Open-addressing hash from string to id. The strings are the caller's (typically cut in place
 * from a file's text, or a checkpoint's string table) and must outlive the map. */
typedef struct vocab {
    const char **words; /* id -> string */
    int32_t size;
    int32_t words_cap;
    int32_t *slots;   /* hash slot -> id, -1 = empty */
    size_t slots_cap; /* a power of two, kept at least twice size so probes stay short */
} vocab;

bool vocab_init(vocab *v);
void vocab_free(vocab *v);
/* The word's id, or -1. */
int32_t vocab_find(const vocab *v, const char *word);
/* Returns the word's id, adding it if new; -1 when out of memory. */
int32_t vocab_add(vocab *v, const char *word);

/* Stores v (id -> word) as the string table name. */
bool vocab_store(sdlstm_model *m, const char *name, const vocab *v);

/* Reads the string table name of a loaded model into v (whose words then live in *block: free it with
 * sdlstm_free after vocab_free). The table must exist, have `expected` words (-1: any number) and
 * no word twice. False after reporting. */
bool vocab_restore(const sdlstm_model *m, const char *name, int64_t expected, vocab *v, char ***block);

/* ------------------------------------------------------------------------------------------ */
/* Files, time and randomness                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Reads the file at path (dir/name when dir is not NULL) whole into a NUL-terminated buffer (its
 * length in *size if size is not NULL); NULL after reporting why. */
char *read_file(const char *dir, const char *name, size_t *size);

/* Cuts text (size bytes, as read_file gives it) into lines in place: *lines receives a malloc'd array
 * of *n pointers, without line breaks (a final "\r" dropped too). A last line without a line break
 * counts; the break after the last line adds none. False, reported, when out of memory or when there
 * are more than INT32_MAX lines. */
bool split_lines(char *text, size_t size, char ***lines, int32_t *n);

double now_s(void);
void format_duration(char *out, size_t n, double seconds);

/* xorshift64* for shuffling: the programs' own stream, independent of the library's dropout masks.
 * The state must not be 0; rng_seed makes one from any seed. */
uint64_t rng_next(uint64_t *s);
uint64_t rng_seed(uint64_t seed);
double rng_uniform(uint64_t *s);
void shuffle(int32_t *a, int32_t n, uint64_t *rng);

#endif /* SDLSTM_EXAMPLE_H */
