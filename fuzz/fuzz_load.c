/* Fuzzes sdlstm_load: byte-mutated and crafted checkpoints of the three tasks, each loaded in a
 * forked child so that a crash or a hang is seen and counted, not suffered.
 *
 *   sdlstm-fuzz-load seeds DIR
 *       writes DIR/seed-{lm,tagger,seq2seq}.h5: small models with every optional part (carried
 *       state, tag names, string tables, metadata).
 *   sdlstm-fuzz-load run [--cases N] [--seed S] [--timeout-ms T] SCRATCH FILE...
 *       loads each FILE as it is (a name starting "crafted-" must be refused), then N mutations of
 *       them, round robin, from a fixed seed: the same command runs the same cases. A case fails
 *       if the child dies of a signal, runs past T ms (2000), returns anything but SDLSTM_OK,
 *       SDLSTM_E_FORMAT or SDLSTM_E_IO, refuses without a message that starts with the file's path
 *       and names what is wrong, or raises its peak RSS by more than 64 MiB + 4 x the file's size.
 *       Prints one JSON line of counts; exits 1 if any case failed, keeping it as SCRATCH/failed-N.h5.
 *       SDLSTM_FUZZ_VERBOSE=1 prints every case's status and message on stderr.
 *
 * Mutations: raw ones (bit flips, random bytes, interesting values, copied or zeroed blocks,
 * truncation, appended bytes) hit the seal, which must refuse them all before HDF5 parses anything;
 * resealed ones recompute the seal after mutating, so they reach HDF5's parser and the loader's
 * checks, the defences a crafted file meets. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sdlstm.h>

#define SEAL 512

static uint64_t rng_state;
static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

/* CRC-32, zlib's polynomial: the seal's checksum (fuzz drivers may recompute it; the library's is
 * in Swift). */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    crc = ~crc;
    while (n--) crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
    for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Rewrites the seal (length, body CRC, header CRC) of a buffer that has one. */
static void reseal(uint8_t *b, size_t n) {
    if (n <= SEAL) return;
    put_le(b + 24, n, 8);
    put_le(b + 32, crc32_update(0, b + SEAL, n - SEAL), 4);
    put_le(b + 36, crc32_update(0, b, 36), 4);
}

typedef struct {
    uint8_t *data;
    size_t size;
    char name[256];
} file_t;

static int read_file(const char *path, file_t *f) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    f->data = malloc(n > 0 ? (size_t)n : 1);
    f->size = fread(f->data, 1, (size_t)n, fp) == (size_t)n ? (size_t)n : 0;
    fclose(fp);
    const char *base = strrchr(path, '/');
    snprintf(f->name, sizeof f->name, "%s", base ? base + 1 : path);
    return f->size > 0 || n == 0;
}

static int write_file(const char *path, const uint8_t *b, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return 0;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, b + done, n - done);
        if (w <= 0) { close(fd); return 0; }
        done += (size_t)w;
    }
    return close(fd) == 0;
}

/* One to eight edits of the bytes in [lo, n), or a truncation, or appended bytes. */
static size_t mutate(uint8_t *b, size_t n, size_t cap, size_t lo) {
    static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x10, 0x40};
    if (n <= lo) return n;
    int edits = 1 + (int)below(8);
    for (int e = 0; e < edits; e++) {
        size_t at = lo + below(n - lo);
        switch (below(10)) {
        case 0: case 1: case 2: b[at] ^= (uint8_t)(1u << below(8)); break;
        case 3: case 4: b[at] = (uint8_t)next(); break;
        case 5: b[at] = interesting[below(sizeof interesting)]; break;
        case 6: { /* a little-endian 32- or 64-bit field set to an extreme */
            int w = below(2) ? 4 : 8;
            if (at + w <= n) put_le(b + at, below(2) ? ~0ull : (1ull << (8 * w - 1 - below(8))), w);
            break;
        }
        case 7: { /* a block copied from elsewhere in the file */
            size_t len = 1 + below(64), from = lo + below(n - lo);
            if (at + len <= n && from + len <= n) memmove(b + at, b + from, len);
            break;
        }
        case 8: { /* a zeroed block */
            size_t len = 1 + below(256);
            if (at + len <= n) memset(b + at, 0, len);
            break;
        }
        case 9:
            if (below(2)) return lo + below(n - lo) + (lo > 0); /* truncated */
            else {
                size_t extra = 1 + below(64);
                if (n + extra > cap) break;
                for (size_t i = 0; i < extra; i++) b[n + i] = (uint8_t)next();
                n += extra;
            }
            break;
        }
    }
    return n;
}

/* What the child reports through shared memory. */
typedef struct {
    int done;
    int status;
    long rss_raise_kb;
    char message[512];
} report_t;

static long proc_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, k) == 0 && line[k] == ':') { v = strtol(line + k + 1, NULL, 10); break; }
    fclose(f);
    return v;
}

static void child(const char *path, report_t *r) {
    /* Reset the peak to the present (Linux >= 4.0), so the raise measured is this load's. */
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd >= 0) { if (write(fd, "5", 1) != 1) { /* the peak then includes the parent's */ } close(fd); }
    long before = proc_kb("VmRSS");
    sdlstm_model *m = NULL;
    sdlstm_status s = sdlstm_load(path, &m);
    r->status = (int)s;
    snprintf(r->message, sizeof r->message, "%s", s == SDLSTM_OK ? "" : sdlstm_last_error());
    if (m) {
        sdlstm_config c = {.struct_size = sizeof c};
        sdlstm_get_config(m, &c);
        sdlstm_model_free(m);
    }
    r->rss_raise_kb = proc_kb("VmHWM") - before;
    r->done = 1;
    _exit(0);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

typedef struct {
    long cases, loaded, refused_format, refused_io, crashes, hangs, rss_breaches, bad_status, bad_message, crafted_loaded;
    double max_ms;
    long max_rss_raise_kb;
} counts_t;

/* Runs one case; returns 0 if it failed. */
static int run_case(const char *path, size_t size, int must_refuse, int timeout_ms, report_t *r, counts_t *c,
                    const char *what) {
    memset(r, 0, sizeof *r);
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) != 0) { perror("pipe"); exit(2); }
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); exit(2); }
    if (pid == 0) {
        close(pipefd[0]);
        child(path, r);
    }
    close(pipefd[1]);
    /* The pipe's write end closes when the child exits, however it exits. */
    struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
    int left = timeout_ms, ready;
    do {
        ready = poll(&p, 1, left);
        left = timeout_ms - (int)(now_ms() - t0);
    } while (ready < 0 && errno == EINTR && left > 0);
    int hung = ready == 0 || left <= 0;
    if (hung) kill(pid, SIGKILL);
    int st = 0;
    waitpid(pid, &st, 0);
    close(pipefd[0]);
    double ms = now_ms() - t0;
    c->cases++;
    if (ms > c->max_ms && !hung) c->max_ms = ms;
    long limit_kb = 64 * 1024 + (long)(4 * size / 1024);
    const char *fail = NULL;
    if (hung) { c->hangs++; fail = "hang"; }
    else if (WIFSIGNALED(st) || !r->done) { c->crashes++; fail = "crash"; }
    else if (r->status == SDLSTM_OK) {
        c->loaded++;
        if (must_refuse) { c->crafted_loaded++; fail = "a crafted file loaded"; }
    } else if (r->status == SDLSTM_E_FORMAT || r->status == SDLSTM_E_IO) {
        if (r->status == SDLSTM_E_FORMAT) c->refused_format++; else c->refused_io++;
        size_t k = strlen(path);
        /* The message starts with the path and names what is wrong (an object or the header). */
        if (strncmp(r->message, path, k) != 0 || strncmp(r->message + k, ": ", 2) != 0 || strlen(r->message) < k + 12) {
            c->bad_message++;
            fail = "a refusal whose message does not name the file and the object";
        }
        if (r->rss_raise_kb > limit_kb) { c->rss_breaches++; fail = "peak RSS"; }
    } else { c->bad_status++; fail = "status"; }
    if (r->rss_raise_kb > c->max_rss_raise_kb) c->max_rss_raise_kb = r->rss_raise_kb;
    if (getenv("SDLSTM_FUZZ_VERBOSE")) fprintf(stderr, "%s: status %d, %.0f ms: %s\n", what, r->status, ms, r->message);
    if (fail) {
        fprintf(stderr, "FAIL (%s) %s: status %d, %.0f ms, rss +%ld kB (limit %ld), signal %d: %s\n", fail, what, r->status, ms,
                r->rss_raise_kb, limit_kb, WIFSIGNALED(st) ? WTERMSIG(st) : 0, r->message);
        return 0;
    }
    return 1;
}

static int cmd_run(int argc, char **argv) {
    long cases = 1000;
    uint64_t seed = 1;
    int timeout_ms = 2000, i = 2;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc) { fprintf(stderr, "%s needs a value\n", argv[i]); return 2; }
        if (strcmp(argv[i], "--cases") == 0) cases = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--seed") == 0) seed = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "--timeout-ms") == 0) timeout_ms = atoi(argv[i + 1]);
        else { fprintf(stderr, "unknown flag %s\n", argv[i]); return 2; }
    }
    if (argc - i < 2) { fprintf(stderr, "usage: %s run [--cases N] [--seed S] [--timeout-ms T] SCRATCH FILE...\n", argv[0]); return 2; }
    const char *scratch = argv[i++];
    int nfiles = argc - i;
    file_t *files = calloc((size_t)nfiles, sizeof *files);
    size_t maxsize = 0;
    for (int k = 0; k < nfiles; k++) {
        if (!read_file(argv[i + k], &files[k])) { fprintf(stderr, "cannot read %s\n", argv[i + k]); return 2; }
        if (files[k].size > maxsize) maxsize = files[k].size;
    }
    report_t *r = mmap(NULL, sizeof *r, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r == MAP_FAILED) { perror("mmap"); return 2; }
    char path[4096];
    snprintf(path, sizeof path, "%s/case.h5", scratch);
    counts_t c = {0};
    long failed = 0, resealed = 0;
    double t0 = now_ms();
    for (int k = 0; k < nfiles; k++) {
        if (!write_file(path, files[k].data, files[k].size)) { perror(path); return 2; }
        char what[512];
        snprintf(what, sizeof what, "%s as is", files[k].name);
        failed += !run_case(path, files[k].size, strncmp(files[k].name, "crafted-", 8) == 0, timeout_ms, r, &c, what);
    }
    rng_state = seed;
    uint8_t *buf = malloc(maxsize + 4096);
    for (long n = 0; n < cases; n++) {
        file_t *f = &files[n % nfiles];
        memcpy(buf, f->data, f->size);
        int seal = f->size > SEAL && memcmp(f->data + 1, "sdlstm-ckpt", 11) == 0 && below(10) < 7;
        size_t size = mutate(buf, f->size, maxsize + 4096, seal ? SEAL : 0);
        if (seal) { reseal(buf, size); resealed++; }
        if (!write_file(path, buf, size)) { perror(path); return 2; }
        char what[512];
        snprintf(what, sizeof what, "case %ld (%s, %s, seed %llu)", n, f->name, seal ? "resealed" : "raw", (unsigned long long)seed);
        if (!run_case(path, size, 0, timeout_ms, r, &c, what)) {
            failed++;
            char keep[4200];
            snprintf(keep, sizeof keep, "%s/failed-%ld.h5", scratch, n);
            write_file(keep, buf, size);
        }
    }
    unlink(path);
    printf("{\"cases\": %ld, \"mutated\": %ld, \"resealed\": %ld, \"files\": %d, \"seed\": %llu, \"loaded\": %ld, \"refused_format\": %ld, "
           "\"refused_io\": %ld, \"crashes\": %ld, \"hangs\": %ld, \"rss_breaches\": %ld, \"bad_status\": %ld, \"bad_message\": %ld, "
           "\"crafted_loaded\": %ld, \"max_ms\": %.0f, \"max_rss_raise_kb\": %ld, \"seconds\": %.1f}\n",
           c.cases, cases, resealed, nfiles, (unsigned long long)seed, c.loaded, c.refused_format, c.refused_io, c.crashes, c.hangs,
           c.rss_breaches, c.bad_status, c.bad_message, c.crafted_loaded, c.max_ms, c.max_rss_raise_kb, (now_ms() - t0) / 1e3);
    return failed ? 1 : 0;
}

static int check(sdlstm_status s, const char *what) {
    if (s != SDLSTM_OK) fprintf(stderr, "seeds: %s: %s\n", what, sdlstm_last_error());
    return s == SDLSTM_OK;
}

static int save_seed(sdlstm_config *cfg, const char *dir, const char *name, int lm) {
    sdlstm_model *m;
    if (!check(sdlstm_model_create(cfg, &m), name)) return 0;
    const char *words[] = {"<eos>", "<unk>", "the", "ein", "Straße", "über", "cat", "dog"};
    int ok = check(sdlstm_set_strings(m, "vocab", words, 8), "strings") && check(sdlstm_set_metadata(m, "corpus", "fuzz"), "metadata") &&
             check(sdlstm_set_metadata(m, "empty", ""), "metadata") && check(sdlstm_set_dropout(m, SDLSTM_SITE_INPUT, SDLSTM_POLICY_STRUCTURED, 0.3f), "dropout");
    if (ok && cfg->task == SDLSTM_TASK_TAGGER) {
        const char *tags[] = {"O", "B-PER", "I-PER", "B-LOC", "I-LOC"};
        ok = check(sdlstm_set_tag_names(m, tags, 5, SDLSTM_TAG_SCHEME_IOB2), "tag names");
    }
    if (ok && lm) { /* a step, so that the model carries a state to save */
        int32_t in[12], tg[12];
        for (int i = 0; i < 12; i++) { in[i] = i % cfg->vocab_size; tg[i] = (i * 7 + 1) % cfg->vocab_size; }
        sdlstm_batch b = {.struct_size = sizeof b, .batch_size = 3, .seq_len = 4, .inputs = in, .targets = tg};
        sdlstm_stats st = {.struct_size = sizeof st};
        ok = check(sdlstm_step(m, &b, &st), "step");
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%s.h5", dir, name);
    ok = ok && check(sdlstm_save(m, path, lm ? SDLSTM_SAVE_CARRIED_STATE : 0), path);
    sdlstm_model_free(m);
    return ok;
}

static int cmd_seeds(const char *dir) {
    sdlstm_config lm = {.struct_size = sizeof lm}, tagger = {.struct_size = sizeof tagger}, nmt = {.struct_size = sizeof nmt};
    sdlstm_config_init(&lm, SDLSTM_TASK_LANGUAGE_MODEL);
    lm.vocab_size = 40, lm.embed_size = 8, lm.hidden_size = 12, lm.num_layers = 2;
    sdlstm_config_init(&tagger, SDLSTM_TASK_TAGGER);
    tagger.vocab_size = 30, tagger.embed_size = 6, tagger.hidden_size = 8, tagger.num_layers = 1, tagger.num_tags = 5;
    tagger.char_vocab_size = 20, tagger.char_embed_size = 4, tagger.char_hidden_size = 4;
    sdlstm_config_init(&nmt, SDLSTM_TASK_SEQ2SEQ);
    nmt.vocab_size = 30, nmt.target_vocab_size = 25, nmt.embed_size = 6, nmt.hidden_size = 8, nmt.num_layers = 2;
    return save_seed(&lm, dir, "lm", 1) && save_seed(&tagger, dir, "tagger", 0) && save_seed(&nmt, dir, "seq2seq", 0) ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "seeds") == 0) return cmd_seeds(argv[2]);
    if (argc >= 2 && strcmp(argv[1], "run") == 0) return cmd_run(argc, argv);
    fprintf(stderr, "usage: %s seeds DIR | run [--cases N] [--seed S] [--timeout-ms T] SCRATCH FILE...\n", argv[0]);
    return 2;
}
