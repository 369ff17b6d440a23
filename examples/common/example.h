/*
 * example.h — what the example programs share: flag parsing, reporting failed library calls and
 * the runtime, dropout set-up, training totals, timing, a string -> id hash map, file reading, a
 * small random generator and JSON numbers and strings.
 *
 * Header-only, so that each example still builds from its one .c file with one cc command. Before
 * including it, a program defines _POSIX_C_SOURCE (200809L: clock_gettime, strtok_r, strdup) and
 * EXAMPLE_NAME, its name as a string literal, which prefixes every message; and it defines
 * `static void usage(FILE *out)`, which bad_usage prints. The functions are `static inline` only so
 * that a program using a subset gets no unused-function warnings.
 */
#ifndef SDLSTM_EXAMPLE_H
#define SDLSTM_EXAMPLE_H

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#error "define _POSIX_C_SOURCE as 200809L before the first #include"
#endif
#ifndef EXAMPLE_NAME
#error "define EXAMPLE_NAME (the program's name, a string literal) before including example.h"
#endif

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sdlstm.h"

/* ------------------------------------------------------------------------------------------ */
/* Flags                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void usage(FILE *out); /* each program's own */

static const struct {
    const char *name;
    sdlstm_policy policy;
} policies[] = {
    {"none", SDLSTM_POLICY_NONE},
    {"variational", SDLSTM_POLICY_VARIATIONAL},
    {"standard", SDLSTM_POLICY_STANDARD},
    {"structured", SDLSTM_POLICY_STRUCTURED},
    {"structured-fixed", SDLSTM_POLICY_STRUCTURED_FIXED},
};

/* The index of the policy called name in policies[], or -1. */
static inline int find_policy(const char *name) {
    for (size_t k = 0; k < sizeof policies / sizeof policies[0]; k++)
        if (strcmp(name, policies[k].name) == 0) return (int)k;
    return -1;
}

/* The message is the three parts joined, which keeps every format string a literal. */
_Noreturn static inline void bad_usage(const char *a, const char *b, const char *c) {
    fprintf(stderr, EXAMPLE_NAME ": %s%s%s\n\n", a, b, c);
    usage(stderr);
    exit(2);
}

static inline int32_t parse_int(const char *flag, const char *text, long long min, long long max) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || v < min || v > max) {
        char range[64];
        snprintf(range, sizeof range, "an integer in [%lld, %lld]", min, max);
        bad_usage(flag, " needs ", range);
    }
    return (int32_t)v;
}

static inline int64_t parse_int64(const char *flag, const char *text, long long min) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || v < min) {
        char range[64];
        snprintf(range, sizeof range, "an integer >= %lld", min);
        bad_usage(flag, " needs ", range);
    }
    return (int64_t)v;
}

static inline uint64_t parse_u64(const char *flag, const char *text) {
    char *end = NULL;
    errno = 0;
    /* strtoull silently negates "-1" into a huge value; refuse a sign outright. */
    if (strchr(text, '-') != NULL) bad_usage(flag, " needs ", "a non-negative integer");
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE)
        bad_usage(flag, " needs ", "a non-negative integer");
    return (uint64_t)v;
}

/* A finite number that must be > 0, >= 0, a probability in [0, 1), or one in [0, 1]. */
typedef enum real_range { POSITIVE, NON_NEGATIVE, PROBABILITY, UNIT } real_range;

static inline double parse_real(const char *flag, const char *text, real_range range) {
    static const char *const need[] = {"a number > 0", "a number >= 0", "a probability in [0, 1)",
                                       "a probability in [0, 1]"};
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    /* The library takes floats, so anything beyond FLT_MAX would arrive as infinity. */
    bool valid = end != text && *end == '\0' && errno != ERANGE && isfinite(v) && fabs(v) <= FLT_MAX;
    if (valid) {
        switch (range) {
        case POSITIVE: valid = v > 0; break;
        case NON_NEGATIVE: valid = v >= 0; break;
        case PROBABILITY: valid = v >= 0 && v < 1; break;
        case UNIT: valid = v >= 0 && v <= 1; break;
        }
    }
    if (!valid) bad_usage(flag, " needs ", need[range]);
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* The library                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Reports a failed library call; returns whether the call succeeded. */
static inline bool ok(sdlstm_status s, const char *what) {
    if (s == SDLSTM_OK) return true;
    fprintf(stderr, EXAMPLE_NAME ": %s failed: %s: %s\n", what, sdlstm_status_name(s), sdlstm_last_error());
    return false;
}

/* Prints what the library computes with as the program's first line on stderr (a slow OpenBLAS core
 * shows here first) and keeps it in info for json_runtime; false after reporting a failure, such
 * as a bad SDLSTM_ISA. */
static inline bool report_runtime(sdlstm_runtime_info *info) {
    *info = (sdlstm_runtime_info){.struct_size = sizeof *info};
    if (!ok(sdlstm_get_runtime_info(info), "sdlstm_get_runtime_info")) return false;
    fprintf(stderr, EXAMPLE_NAME ": sdlstm %s: kernels %s (cpu %s, %s), %s %s (core %s, %d threads)\n", sdlstm_version(),
            info->kernel_isa, info->cpu_isa, info->cpu_model, info->blas_name, info->blas_version, info->blas_core,
            info->blas_threads);
    return true;
}

/* Non-recurrent dropout sits wherever a layer's input is not its own past: the INPUT, BETWEEN
 * (only a stack has it) and OUTPUT sites share p_nr; the RECURRENT site is a separate knob. */
static inline bool set_dropout_sites(sdlstm_model *m, sdlstm_policy policy, double p_nr, double p_rh,
                                     int32_t layers) {
    if (policy == SDLSTM_POLICY_NONE) return true;
    if (p_nr > 0) {
        float p = (float)p_nr;
        if (!ok(sdlstm_set_dropout(m, SDLSTM_SITE_INPUT, policy, p), "sdlstm_set_dropout(INPUT)") ||
            (layers >= 2 &&
             !ok(sdlstm_set_dropout(m, SDLSTM_SITE_BETWEEN, policy, p), "sdlstm_set_dropout(BETWEEN)")) ||
            !ok(sdlstm_set_dropout(m, SDLSTM_SITE_OUTPUT, policy, p), "sdlstm_set_dropout(OUTPUT)"))
            return false;
    }
    return p_rh <= 0 ||
           ok(sdlstm_set_dropout(m, SDLSTM_SITE_RECURRENT, policy, (float)p_rh), "sdlstm_set_dropout(RECURRENT)");
}

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
} train_totals;

/* One sdlstm_step, counted in tot. Returns 1 after an update, 0 when the library refused the
 * batch with SDLSTM_E_NUMERIC (a non-finite loss or gradient: it changed nothing, so one bad batch
 * is survivable; warned about and counted), -1 with the error printed on any other failure. */
static inline int train_step(sdlstm_model *m, const sdlstm_batch *batch, sdlstm_stats *st, int epoch, int64_t step,
                             train_totals *tot) {
    *st = (sdlstm_stats){.struct_size = sizeof *st};
    sdlstm_status rc = sdlstm_step(m, batch, st);
    if (rc == SDLSTM_E_NUMERIC) {
        tot->numeric_skips++;
        fprintf(stderr, EXAMPLE_NAME ": warning: epoch %d step %" PRId64 ": %s: %s (update skipped)\n", epoch, step + 1,
                sdlstm_status_name(rc), sdlstm_last_error());
        return 0;
    }
    if (!ok(rc, "sdlstm_step")) return -1;
    tot->skipped_sum += st->skipped_macs_fraction;
    tot->steps++;
    return 1;
}

/* ------------------------------------------------------------------------------------------ */
/* Time and output                                                                             */
/* ------------------------------------------------------------------------------------------ */

static inline double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline void format_duration(char *out, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, n, "%lds", t);
}

/* JSON has no NaN or infinity; a diverged run reports null instead of invalid JSON. */
static inline void json_number(const char *key, double v) {
    if (isfinite(v)) printf(",\"%s\":%.6g", key, v);
    else printf(",\"%s\":null", key);
}

/* Any string, a CPU's model name included, escaped as JSON requires. */
static inline void json_string(const char *key, const char *s) {
    printf(",\"%s\":\"", key);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

/* The runtime facts of the JSON result line, from report_runtime. */
static inline void json_runtime(const sdlstm_runtime_info *info) {
    char blas[256];
    snprintf(blas, sizeof blas, "%s %s", info->blas_name, info->blas_version);
    json_string("kernel_isa", info->kernel_isa);
    json_string("cpu", info->cpu_model);
    json_string("blas", blas);
    json_string("blas_core", info->blas_core);
}

/* ------------------------------------------------------------------------------------------ */
/* Vocabulary                                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* Open-addressing hash from string to id. The strings are the caller's (typically cut in place
 * from a file's text) and must outlive the map. */
typedef struct vocab {
    const char **words; /* id -> string */
    int32_t size;
    int32_t words_cap;
    int32_t *slots;   /* hash slot -> id, -1 = empty */
    size_t slots_cap; /* a power of two, kept at least twice size so probes stay short */
} vocab;

static inline uint64_t hash_word(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The word's id, or -1. */
static inline int32_t vocab_find(const vocab *v, const char *word) {
    size_t mask = v->slots_cap - 1;
    for (size_t i = hash_word(word) & mask;; i = (i + 1) & mask) {
        int32_t id = v->slots[i];
        if (id < 0 || strcmp(v->words[id], word) == 0) return id;
    }
}

static inline bool vocab_init(vocab *v) {
    *v = (vocab){0};
    v->slots_cap = 1u << 14;
    v->words_cap = 1 << 12;
    v->slots = malloc(v->slots_cap * sizeof *v->slots);
    v->words = malloc((size_t)v->words_cap * sizeof *v->words);
    if (!v->slots || !v->words) return false;
    memset(v->slots, 0xff, v->slots_cap * sizeof *v->slots);
    return true;
}

static inline void vocab_free(vocab *v) {
    free(v->slots);
    free(v->words);
    *v = (vocab){0};
}

static inline bool vocab_grow_slots(vocab *v) {
    size_t cap = v->slots_cap * 2;
    int32_t *slots = malloc(cap * sizeof *slots);
    if (!slots) return false;
    memset(slots, 0xff, cap * sizeof *slots);
    for (int32_t id = 0; id < v->size; id++) {
        size_t i = hash_word(v->words[id]) & (cap - 1);
        while (slots[i] >= 0) i = (i + 1) & (cap - 1);
        slots[i] = id;
    }
    free(v->slots);
    v->slots = slots;
    v->slots_cap = cap;
    return true;
}

/* Returns the word's id, adding it if new; -1 when out of memory. */
static inline int32_t vocab_add(vocab *v, const char *word) {
    int32_t id = vocab_find(v, word);
    if (id >= 0) return id;
    if ((size_t)v->size * 2 >= v->slots_cap && !vocab_grow_slots(v)) return -1;
    if (v->size == v->words_cap) {
        if (v->words_cap > INT32_MAX / 2) return -1;
        const char **words = realloc(v->words, (size_t)v->words_cap * 2 * sizeof *words);
        if (!words) return -1;
        v->words = words;
        v->words_cap *= 2;
    }
    size_t mask = v->slots_cap - 1, i = hash_word(word) & mask;
    while (v->slots[i] >= 0) i = (i + 1) & mask;
    v->slots[i] = v->size;
    v->words[v->size] = word;
    return v->size++;
}

/* ------------------------------------------------------------------------------------------ */
/* Files and randomness                                                                        */
/* ------------------------------------------------------------------------------------------ */

/* Reads dir/name whole into a NUL-terminated buffer (its length in *size if size is not NULL);
 * NULL after reporting why. */
static inline char *read_file(const char *dir, const char *name, size_t *size) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) {
        fprintf(stderr, EXAMPLE_NAME ": path too long: %s/%s\n", dir, name);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, EXAMPLE_NAME ": cannot open %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (ferror(f)) {
            fprintf(stderr, EXAMPLE_NAME ": cannot read %s: %s\n", path, strerror(errno));
            free(buf);
            fclose(f);
            return NULL;
        }
        if (feof(f)) break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) free(buf);
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, EXAMPLE_NAME ": out of memory reading %s\n", path);
        return NULL;
    }
    buf[len] = '\0';
    if (size) *size = len;
    return buf;
}

/* xorshift64* for shuffling: the programs' own stream, independent of the library's dropout masks.
 * The state must not be 0. */
static inline uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* A non-zero state from a user's seed (0 included). */
static inline uint64_t rng_seed(uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    return s ? s : 1;
}

static inline double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

static inline void shuffle(int32_t *a, int32_t n, uint64_t *rng) {
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)(rng_next(rng) % (uint64_t)(i + 1));
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

#endif /* SDLSTM_EXAMPLE_H */
