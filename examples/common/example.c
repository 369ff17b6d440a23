/*
 * example.c — the helpers the example programs share; see example.h.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */

#include "example.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Flags                                                                                       */
/* ------------------------------------------------------------------------------------------ */

const char *const policy_names[] = {"none", "variational", "standard", "structured", "structured-fixed", NULL};
const sdlstm_policy policy_values[] = {SDLSTM_POLICY_NONE, SDLSTM_POLICY_VARIATIONAL, SDLSTM_POLICY_STANDARD,
                                       SDLSTM_POLICY_STRUCTURED, SDLSTM_POLICY_STRUCTURED_FIXED};

/* The command being parsed, for bad_usage's help. */
static const char *help_synopsis;
static const flag *help_flags;
static size_t help_count;

static void print_help(FILE *out) {
    if (help_synopsis) fputs(help_synopsis, out);
    for (size_t i = 0; i < help_count; i++) {
        const flag *f = &help_flags[i];
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", f->name, f->arg ? " " : "", f->arg ? f->arg : "");
        fprintf(out, "  %-22s %s%s\n", left, f->fixed ? "* " : "", f->help);
    }
    fprintf(out, "  %-22s %s\n", "--help", "this text");
}

_Noreturn void bad_usage(const char *a, const char *b, const char *c) {
    fprintf(stderr, "%s: %s%s%s\n\n", example_name, a, b, c);
    print_help(stderr);
    exit(2);
}

static int32_t parse_int(const char *flag, const char *text, long long min, long long max) {
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

static int64_t parse_int64(const char *flag, const char *text, long long min) {
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

static uint64_t parse_u64(const char *flag, const char *text) {
    char *end = NULL;
    errno = 0;
    /* strtoull silently negates "-1" into a huge value; refuse a sign outright. */
    if (strchr(text, '-') != NULL) bad_usage(flag, " needs ", "a non-negative integer");
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE) bad_usage(flag, " needs ", "a non-negative integer");
    return (uint64_t)v;
}

static double parse_real(const char *flag, const char *text, real_range range) {
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

static void parse_value(flag *f, const char *v) {
    switch (f->kind) {
    case FLAG_INT: *(int32_t *)f->value = parse_int(f->name, v, f->min, f->max); break;
    case FLAG_INT64: *(int64_t *)f->value = parse_int64(f->name, v, f->min); break;
    case FLAG_U64: *(uint64_t *)f->value = parse_u64(f->name, v); break;
    case FLAG_REAL: *(double *)f->value = parse_real(f->name, v, f->range); break;
    case FLAG_TEXT: *(const char **)f->value = v; break;
    case FLAG_CHOICE: {
        int k = 0;
        while (f->choices[k] && strcmp(f->choices[k], v) != 0) k++;
        if (!f->choices[k]) bad_usage(f->name, ": unknown value ", v);
        *(int *)f->value = k;
        break;
    }
    case FLAG_SWITCH: break;
    }
}

int parse_flags(int argc, char **argv, int first, const char *synopsis, flag *flags, size_t n,
                const char **positional, int max_positional) {
    help_synopsis = synopsis;
    help_flags = flags;
    help_count = n;
    int count = 0;
    for (int i = first; i < argc; i++) {
        const char *name = argv[i];
        if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            print_help(stdout);
            exit(0);
        }
        if (strncmp(name, "--", 2) != 0) {
            if (count >= max_positional) bad_usage("unexpected argument '", name, "'");
            positional[count++] = name;
            continue;
        }
        flag *f = NULL;
        for (size_t k = 0; k < n && !f; k++)
            if (strcmp(flags[k].name, name) == 0) f = &flags[k];
        if (!f) bad_usage("unknown flag '", name, "'");
        f->given = true;
        if (f->kind == FLAG_SWITCH) {
            *(bool *)f->value = true;
            continue;
        }
        if (i + 1 >= argc) bad_usage(name, " needs a value", "");
        parse_value(f, argv[++i]);
    }
    return count;
}

flag *find_flag(flag *flags, size_t n, const char *name) {
    for (size_t k = 0; k < n; k++)
        if (strcmp(flags[k].name, name) == 0) return &flags[k];
    fprintf(stderr, "%s: internal error: no flag %s\n", example_name, name);
    abort();
}

int32_t available_cores(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n >= 1) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n >= 1 && n <= 4096 ? (int32_t)n : 1;
}

/* ------------------------------------------------------------------------------------------ */
/* The library and the model                                                                   */
/* ------------------------------------------------------------------------------------------ */

bool ok(sdlstm_status s, const char *what) {
    if (s == SDLSTM_OK) return true;
    fprintf(stderr, "%s: %s failed: %s: %s\n", example_name, what, sdlstm_status_name(s), sdlstm_last_error());
    return false;
}

bool report_runtime(sdlstm_runtime_info *info) {
    *info = (sdlstm_runtime_info){.struct_size = sizeof *info};
    if (!ok(sdlstm_get_runtime_info(info), "sdlstm_get_runtime_info")) return false;
    fprintf(stderr, "%s: sdlstm %s: kernels %s (cpu %s, %s), %s %s (core %s, %d threads)\n", example_name,
            sdlstm_version(), info->kernel_isa, info->cpu_isa, info->cpu_model, info->blas_name, info->blas_version,
            info->blas_core, info->blas_threads);
    return true;
}

void normalize_dropout(train_options *o) {
    if (policy_values[o->policy] == SDLSTM_POLICY_NONE) o->p_nr = o->p_rh = 0;
}

/* Non-recurrent dropout sits wherever a layer's input is not its own past: the INPUT, BETWEEN
 * (only a stack has it) and OUTPUT sites share p_nr; the RECURRENT site is a separate knob. */
static bool set_dropout_sites(sdlstm_model *m, const train_options *o) {
    sdlstm_policy policy = policy_values[o->policy];
    if (policy == SDLSTM_POLICY_NONE) return true;
    if (o->p_nr > 0) {
        float p = (float)o->p_nr;
        if (!ok(sdlstm_set_dropout(m, SDLSTM_SITE_INPUT, policy, p), "sdlstm_set_dropout(INPUT)") ||
            (o->layers >= 2 &&
             !ok(sdlstm_set_dropout(m, SDLSTM_SITE_BETWEEN, policy, p), "sdlstm_set_dropout(BETWEEN)")) ||
            !ok(sdlstm_set_dropout(m, SDLSTM_SITE_OUTPUT, policy, p), "sdlstm_set_dropout(OUTPUT)"))
            return false;
    }
    return o->p_rh <= 0 ||
           ok(sdlstm_set_dropout(m, SDLSTM_SITE_RECURRENT, policy, (float)o->p_rh), "sdlstm_set_dropout(RECURRENT)");
}

sdlstm_model *create_model(sdlstm_config *cfg, const train_options *o) {
    cfg->embed_size = o->embed;
    cfg->hidden_size = o->hidden;
    cfg->num_layers = o->layers;
    cfg->init_scale = (float)o->init;
    cfg->seed = o->seed;
    sdlstm_model *m = NULL;
    if (!ok(sdlstm_model_create(cfg, &m), "sdlstm_model_create")) return NULL;
    bool good = ok(sdlstm_set_optimizer(m, SDLSTM_OPTIMIZER_SGD), "sdlstm_set_optimizer") &&
                ok(sdlstm_set_learning_rate(m, (float)o->lr), "sdlstm_set_learning_rate") &&
                ok(sdlstm_set_clip_norm(m, (float)o->clip), "sdlstm_set_clip_norm") &&
                ok(sdlstm_set_num_threads(m, o->threads), "sdlstm_set_num_threads") && set_dropout_sites(m, o);
    if (!good) {
        sdlstm_model_free(m);
        return NULL;
    }
    return m;
}

bool restore_model_options(sdlstm_model *m, sdlstm_task task, train_options *o) {
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    sdlstm_progress p = {.struct_size = sizeof p};
    if (!ok(sdlstm_get_config(m, &cfg), "sdlstm_get_config") || !ok(sdlstm_get_progress(m, &p), "sdlstm_get_progress"))
        return false;
    if (cfg.task != task) {
        fprintf(stderr, "%s: the checkpoint holds a model of another task (%d, not %d)\n", example_name, cfg.task,
                task);
        return false;
    }
    o->hidden = cfg.hidden_size;
    o->layers = cfg.num_layers;
    o->embed = cfg.embed_size;
    o->init = cfg.init_scale;
    o->seed = cfg.seed;
    o->clip = p.clip_norm;
    return ok(sdlstm_set_num_threads(m, o->threads), "sdlstm_set_num_threads");
}

void save_checkpoint(sdlstm_model *m, const char *path, int *failures) {
    if (!path) return;
    if (ok(sdlstm_save(m, path, SDLSTM_SAVE_DEFAULT), "sdlstm_save")) fprintf(stderr, "%s: saved %s\n", example_name, path);
    else ++*failures;
}

bool meta_number(const sdlstm_model *m, const char *key, double *v) {
    char *text = NULL;
    if (!ok(sdlstm_get_metadata(m, key, &text), "sdlstm_get_metadata")) return false;
    if (!text) return true;
    char *end = NULL;
    double x = strtod(text, &end);
    bool good = end != text && *end == '\0' && isfinite(x);
    if (good) *v = x;
    else fprintf(stderr, "%s: the checkpoint's %s = \"%s\" is not a number\n", example_name, key, text);
    sdlstm_free(text);
    return good;
}

bool meta_set_number(sdlstm_model *m, const char *key, double v) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    return meta_set_text(m, key, buf);
}

bool meta_set_text(sdlstm_model *m, const char *key, const char *value) {
    return ok(sdlstm_set_metadata(m, key, value), "sdlstm_set_metadata");
}

/* "<prefix>.<what>": a task's own metadata keys. */
static const char *key_of(char *buf, size_t n, const char *prefix, const char *what) {
    snprintf(buf, n, "%s.%s", prefix, what);
    return buf;
}

bool store_schedule(sdlstm_model *m, const char *prefix, const train_options *o) {
    const struct {
        const char *what;
        double value;
    } numbers[] = {{"lr", o->lr},       {"lr_decay", o->lr_decay}, {"decay_after", o->decay_after},
                   {"batch", o->batch}, {"p_nr", o->p_nr},         {"p_rh", o->p_rh}};
    char key[64];
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (!meta_set_number(m, key_of(key, sizeof key, prefix, numbers[i].what), numbers[i].value)) return false;
    return meta_set_text(m, key_of(key, sizeof key, prefix, "policy"), policy_name(o));
}

bool restore_schedule(const sdlstm_model *m, const char *prefix, train_options *o) {
    char key[64]; /* each key is built just before its call reads it */
    double decay_after = o->decay_after, batch = o->batch;
    if (!meta_number(m, key_of(key, sizeof key, prefix, "lr"), &o->lr) ||
        !meta_number(m, key_of(key, sizeof key, prefix, "lr_decay"), &o->lr_decay) ||
        !meta_number(m, key_of(key, sizeof key, prefix, "decay_after"), &decay_after) ||
        !meta_number(m, key_of(key, sizeof key, prefix, "batch"), &batch) ||
        !meta_number(m, key_of(key, sizeof key, prefix, "p_nr"), &o->p_nr) ||
        !meta_number(m, key_of(key, sizeof key, prefix, "p_rh"), &o->p_rh))
        return false;
    if (decay_after < 0 || decay_after > INT32_MAX || batch < 1 || batch > INT32_MAX || !(o->lr > 0) ||
        !(o->lr_decay > 0)) {
        fprintf(stderr, "%s: the checkpoint's %s.* settings are out of range\n", example_name, prefix);
        return false;
    }
    o->decay_after = (int32_t)decay_after;
    o->batch = (int32_t)batch;
    char *policy = NULL;
    if (!ok(sdlstm_get_metadata(m, key_of(key, sizeof key, prefix, "policy"), &policy), "sdlstm_get_metadata")) return false;
    if (policy) {
        for (int k = 0; policy_names[k]; k++)
            if (strcmp(policy, policy_names[k]) == 0) o->policy = k;
        sdlstm_free(policy);
    }
    return true;
}

double scheduled_lr(const train_options *o, int32_t epoch) {
    int32_t decays = epoch > o->decay_after ? epoch - o->decay_after : 0;
    return o->lr * pow(o->lr_decay, decays);
}

/* ------------------------------------------------------------------------------------------ */
/* Training                                                                                    */
/* ------------------------------------------------------------------------------------------ */

double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void format_duration(char *out, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else if (t >= 60) snprintf(out, n, "%ldm%02lds", t / 60, t % 60);
    else snprintf(out, n, "%lds", t);
}

double ppl_of(double loss_sum, int64_t tokens) { return tokens > 0 ? exp(loss_sum / (double)tokens) : NAN; }

void meter_start(epoch_meter *em, train_totals *tot, int32_t epoch, int64_t steps, double lr, bool show_ppl) {
    *em = (epoch_meter){
        .epoch = epoch,
        .steps = steps,
        .every = steps >= 10 ? steps / 10 : 1,
        .lr = lr,
        .show_ppl = show_ppl,
        .t_start = now_s(),
        .tot = tot,
    };
}

int meter_step(epoch_meter *em, sdlstm_model *m, const sdlstm_batch *batch, int64_t k) {
    sdlstm_stats st = {.struct_size = sizeof st};
    sdlstm_status rc = sdlstm_step(m, batch, &st);
    int stepped = 1;
    if (rc == SDLSTM_E_NUMERIC) {
        em->tot->numeric_skips++;
        fprintf(stderr, "%s: warning: epoch %d step %" PRId64 ": %s: %s (update skipped)\n", example_name, em->epoch,
                k + 1, sdlstm_status_name(rc), sdlstm_last_error());
        stepped = 0;
    } else if (!ok(rc, "sdlstm_step")) {
        return -1;
    } else {
        em->tot->skipped_sum += st.skipped_macs_fraction;
        em->tot->steps++;
        double sum = st.loss * (double)st.tokens;
        em->loss += sum;
        em->tokens += st.tokens;
        em->window_loss += sum;
        em->window_tokens += st.tokens;
        em->window_norm += st.grad_norm;
        em->window_steps++;
    }
    if ((k + 1) % em->every == 0 || k + 1 == em->steps) {
        double elapsed = now_s() - em->t_start;
        char eta[32], ppl[48] = "";
        format_duration(eta, sizeof eta, elapsed / (double)(k + 1) * (double)(em->steps - k - 1));
        double wl = em->window_tokens > 0 ? em->window_loss / (double)em->window_tokens : NAN;
        if (em->show_ppl) snprintf(ppl, sizeof ppl, "  ppl %.2f", exp(wl));
        fprintf(stderr,
                "epoch %d  step %" PRId64 "/%" PRId64 "  lr %.4g  loss %.4f%s  grad norm %.3f  %.0f words/s  ETA %s\n",
                em->epoch, k + 1, em->steps, em->lr, wl, ppl,
                em->window_steps > 0 ? em->window_norm / (double)em->window_steps : NAN,
                elapsed > 0 ? (double)em->tokens / elapsed : 0, eta);
        em->window_loss = em->window_norm = 0;
        em->window_tokens = em->window_steps = 0;
    }
    return stepped;
}

void meter_finish(epoch_meter *em) {
    double s = now_s() - em->t_start;
    em->tot->seconds += s;
    em->tot->tokens += em->tokens;
    em->tot->last_epoch_loss = em->loss;
    em->tot->last_epoch_tokens = em->tokens;
    em->tot->last_epoch_seconds = s;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON output                                                                                 */
/* ------------------------------------------------------------------------------------------ */

void json_begin(FILE *f, const char *task) { fprintf(f, "{\"task\":\"%s\"", task); }

void json_number(FILE *f, const char *key, double v) {
    if (isfinite(v)) fprintf(f, ",\"%s\":%.6g", key, v);
    else fprintf(f, ",\"%s\":null", key);
}

void json_int(FILE *f, const char *key, int64_t v) { fprintf(f, ",\"%s\":%" PRId64, key, v); }

void json_string(FILE *f, const char *key, const char *s) {
    fprintf(f, ",\"%s\":\"", key);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

void json_end(FILE *f, const sdlstm_runtime_info *rt) {
    if (rt) {
        char blas[256];
        snprintf(blas, sizeof blas, "%s %s", rt->blas_name, rt->blas_version);
        json_string(f, "kernel_isa", rt->kernel_isa);
        json_string(f, "cpu", rt->cpu_model);
        json_string(f, "blas", blas);
        json_string(f, "blas_core", rt->blas_core);
        json_string(f, "version", sdlstm_version());
    }
    fputs("}\n", f);
    fflush(f);
}

void json_training(FILE *f, const train_options *o, const train_totals *tot) {
    json_string(f, "policy", policy_name(o));
    json_number(f, "p_nr", o->p_nr);
    json_number(f, "p_rh", o->p_rh);
    json_int(f, "hidden", o->hidden);
    json_int(f, "layers", o->layers);
    json_int(f, "embed", o->embed);
    json_int(f, "batch", o->batch);
    json_int(f, "epochs", o->epochs);
    json_int(f, "max_steps", o->max_steps);
    json_number(f, "lr", o->lr);
    json_number(f, "lr_decay", o->lr_decay);
    json_int(f, "decay_after", o->decay_after);
    json_number(f, "clip", o->clip);
    json_number(f, "init", o->init);
    json_int(f, "threads", o->threads);
    fprintf(f, ",\"seed\":%" PRIu64, o->seed);
    json_int(f, "steps", tot->steps);
    json_int(f, "numeric_skips", tot->numeric_skips);
    json_number(f, "words_per_s", tot->seconds > 0 ? (double)tot->tokens / tot->seconds : NAN);
    json_number(f, "skipped_macs_fraction", tot->steps > 0 ? tot->skipped_sum / (double)tot->steps : 0);
    json_number(f, "train_seconds", tot->seconds);
}

bool epoch_log_open(const char *path, FILE **f) {
    *f = NULL;
    if (!path) return true;
    *f = fopen(path, "w");
    if (!*f) fprintf(stderr, "%s: cannot write %s: %s\n", example_name, path, strerror(errno));
    return *f != NULL;
}

void epoch_log_begin(FILE *f, const char *task, const train_options *o, int32_t epoch, double lr,
                     const train_totals *tot) {
    json_begin(f, task);
    json_string(f, "policy", policy_name(o));
    json_number(f, "p_nr", o->p_nr);
    json_number(f, "p_rh", o->p_rh);
    json_int(f, "epoch", epoch);
    json_number(f, "lr", lr);
    json_number(f, "train_loss",
                tot->last_epoch_tokens > 0 ? tot->last_epoch_loss / (double)tot->last_epoch_tokens : NAN);
    json_number(f, "words_per_s",
                tot->last_epoch_seconds > 0 ? (double)tot->last_epoch_tokens / tot->last_epoch_seconds : NAN);
    json_number(f, "train_seconds", tot->seconds);
}

/* ------------------------------------------------------------------------------------------ */
/* Vocabulary                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static uint64_t hash_word(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int32_t vocab_find(const vocab *v, const char *word) {
    size_t mask = v->slots_cap - 1;
    for (size_t i = hash_word(word) & mask;; i = (i + 1) & mask) {
        int32_t id = v->slots[i];
        if (id < 0 || strcmp(v->words[id], word) == 0) return id;
    }
}

bool vocab_init(vocab *v) {
    *v = (vocab){0};
    v->slots_cap = 1u << 14;
    v->words_cap = 1 << 12;
    v->slots = malloc(v->slots_cap * sizeof *v->slots);
    v->words = malloc((size_t)v->words_cap * sizeof *v->words);
    if (!v->slots || !v->words) return false;
    memset(v->slots, 0xff, v->slots_cap * sizeof *v->slots);
    return true;
}

void vocab_free(vocab *v) {
    free(v->slots);
    free(v->words);
    *v = (vocab){0};
}

static bool vocab_grow_slots(vocab *v) {
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

int32_t vocab_add(vocab *v, const char *word) {
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

bool vocab_store(sdlstm_model *m, const char *name, const vocab *v) {
    char what[160];
    snprintf(what, sizeof what, "sdlstm_set_strings(%s)", name);
    return ok(sdlstm_set_strings(m, name, v->words, v->size), what);
}

bool vocab_restore(const sdlstm_model *m, const char *name, int64_t expected, vocab *v, char ***block) {
    *v = (vocab){0};
    *block = NULL;
    int64_t n = 0;
    if (!ok(sdlstm_get_strings(m, name, block, &n), "sdlstm_get_strings")) return false;
    if (!*block || (expected >= 0 && n != expected) || n > INT32_MAX) {
        fprintf(stderr, "%s: the checkpoint has no string table \"%s\" of %" PRId64 " words (%" PRId64 " found)\n",
                example_name, name, expected, n);
        return false;
    }
    if (!vocab_init(v)) {
        fprintf(stderr, "%s: out of memory\n", example_name);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        int32_t id = vocab_add(v, (*block)[i]);
        if (id < 0) {
            fprintf(stderr, "%s: out of memory\n", example_name);
            return false;
        }
        if (id != i) {
            fprintf(stderr, "%s: the checkpoint's string table \"%s\" lists \"%s\" twice\n", example_name, name,
                    (*block)[i]);
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Files and randomness                                                                        */
/* ------------------------------------------------------------------------------------------ */

char *read_file(const char *dir, const char *name, size_t *size) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s%s%s", dir ? dir : "", dir ? "/" : "", name) >= (int)sizeof path) {
        fprintf(stderr, "%s: path too long: %s/%s\n", example_name, dir ? dir : "", name);
        return NULL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open %s: %s\n", example_name, path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (ferror(f)) {
            fprintf(stderr, "%s: cannot read %s: %s\n", example_name, path, strerror(errno));
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
        fprintf(stderr, "%s: out of memory reading %s\n", example_name, path);
        return NULL;
    }
    buf[len] = '\0';
    if (size) *size = len;
    return buf;
}

bool split_lines(char *text, size_t size, char ***lines, int32_t *n) {
    int64_t count = 0;
    for (size_t i = 0; i < size; i++) count += text[i] == '\n';
    if (size > 0 && text[size - 1] != '\n') count++;
    *lines = NULL;
    *n = 0;
    if (count > INT32_MAX) {
        fprintf(stderr, "%s: more than %d lines\n", example_name, INT32_MAX);
        return false;
    }
    *lines = malloc((size_t)(count > 0 ? count : 1) * sizeof **lines);
    if (!*lines) {
        fprintf(stderr, "%s: out of memory\n", example_name);
        return false;
    }
    char *p = text;
    for (int64_t i = 0; i < count; i++) {
        char *end = strchr(p, '\n');
        if (end) *end = '\0';
        size_t k = strlen(p);
        if (k > 0 && p[k - 1] == '\r') p[k - 1] = '\0';
        (*lines)[i] = p;
        p = end ? end + 1 : p + k;
    }
    *n = (int32_t)count;
    return true;
}

uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

uint64_t rng_seed(uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    return s ? s : 1;
}

double rng_uniform(uint64_t *s) { return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0); }

void shuffle(int32_t *a, int32_t n, uint64_t *rng) {
    for (int32_t i = n - 1; i > 0; i--) {
        int32_t j = (int32_t)(rng_next(rng) % (uint64_t)(i + 1));
        int32_t t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
