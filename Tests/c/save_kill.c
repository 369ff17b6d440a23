/*
 * kill -9 during saves: a child saves one model over and over and is SIGKILLed after a seeded
 * random delay; after every kill the path must load (and evaluate), holding either the previous
 * save or the one under way, and at most one stale temporary file may remain beside it (the killed
 * save's own: each save removes those of dead processes before it starts).
 *
 * Usage: save_kill [kills (500)] [seed (1)]. Exits 0 when every kill passed and enough of them landed
 * inside a save (a temporary was left) for the run to have tested something.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sdlstm.h"

#define VOCAB 300
#define BATCH 4
#define SEQ 8

static uint64_t rng_state;

/* splitmix64: a seeded stream of delays that reproduces on any libc. */
static uint64_t next_random(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int fail(const char *what, int round) {
    fprintf(stderr, "save_kill: kill %d: %s: %s\n", round, what, sdlstm_last_error());
    return 1;
}

/* The temporary files in dir (every entry but the checkpoint itself); -1 if something else is there. */
static int temporaries(const char *dir, const char *name) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    char prefix[256];
    snprintf(prefix, sizeof prefix, ".%s.sdlstm-tmp-", name);
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, name)) continue;
        if (strncmp(e->d_name, prefix, strlen(prefix))) {
            fprintf(stderr, "save_kill: unexpected file %s/%s\n", dir, e->d_name);
            n = -1;
            break;
        }
        n++;
    }
    closedir(d);
    return n;
}

static long generation(sdlstm_model *m) {
    char *value = NULL;
    if (sdlstm_get_metadata(m, "generation", &value) != SDLSTM_OK || !value) return -1;
    long g = strtol(value, NULL, 10);
    sdlstm_free(value);
    return g;
}

int main(int argc, char **argv) {
    int kills = argc > 1 ? atoi(argv[1]) : 500;
    rng_state = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    const char *tmp = getenv("TMPDIR");
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/sdlstm-save-kill-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    snprintf(path, sizeof path, "%s/model.h5", dir);

    sdlstm_config cfg = {.struct_size = sizeof cfg};
    sdlstm_model *model = NULL;
    if (sdlstm_config_init(&cfg, SDLSTM_TASK_LANGUAGE_MODEL) != SDLSTM_OK) return fail("config_init", -1);
    cfg.vocab_size = VOCAB;
    cfg.embed_size = 32;
    cfg.hidden_size = 64;
    cfg.num_layers = 2;
    if (sdlstm_model_create(&cfg, &model) != SDLSTM_OK) return fail("model_create", -1);
    /* A string table too, so that every part of the format is written when a kill lands. */
    char words[VOCAB][16];
    const char *vocab[VOCAB];
    for (int i = 0; i < VOCAB; i++) {
        snprintf(words[i], sizeof words[i], "word%d", i);
        vocab[i] = words[i];
    }
    if (sdlstm_set_strings(model, "vocab", vocab, VOCAB) != SDLSTM_OK) return fail("set_strings", -1);

    /* The delays span a few saves (fork included), measured here, so most kills land inside one. */
    if (sdlstm_set_metadata(model, "generation", "-1") != SDLSTM_OK) return fail("set_metadata", -1);
    double t0 = now();
    for (int i = 0; i < 5; i++)
        if (sdlstm_save(model, path, 0) != SDLSTM_OK) return fail("save", -1);
    double save_s = (now() - t0) / 5;

    int32_t inputs[BATCH * SEQ], targets[BATCH * SEQ];
    for (int i = 0; i < BATCH * SEQ; i++) inputs[i] = i % VOCAB, targets[i] = (i * 7 + 1) % VOCAB;
    sdlstm_batch batch = {.struct_size = sizeof batch, .batch_size = BATCH, .seq_len = SEQ, .inputs = inputs, .targets = targets};

    int inside = 0, failures = 0;
    long previous = -1;
    double start = now();
    int round = 0;
    for (; round < kills && failures == 0; round++) {
        char g[32];
        snprintf(g, sizeof g, "%d", round);
        if (sdlstm_set_metadata(model, "generation", g) != SDLSTM_OK) return fail("set_metadata", round);
        fflush(NULL);
        pid_t child = fork();
        if (child < 0) { perror("fork"); return 1; }
        if (child == 0) {
            for (;;) sdlstm_save(model, path, 0);
        }
        struct timespec delay = {0, (long)(next_random() % (uint64_t)(3 * save_s * 1e9 + 1))};
        nanosleep(&delay, NULL);
        kill(child, SIGKILL);
        int status;
        waitpid(child, &status, 0);

        int left = temporaries(dir, "model.h5");
        if (left < 0 || left > 1) {
            fprintf(stderr, "save_kill: kill %d: %d temporaries left\n", round, left);
            failures++;
        }
        inside += left == 1;
        sdlstm_model *loaded = NULL;
        if (sdlstm_load(path, &loaded) != SDLSTM_OK) {
            failures += fail("the checkpoint does not load", round);
            continue;
        }
        long got = generation(loaded);
        if (got != round && got != previous) {
            fprintf(stderr, "save_kill: kill %d: loaded generation %ld, expected %d or %ld\n", round, got, round, previous);
            failures++;
        }
        previous = got;
        sdlstm_stats stats = {.struct_size = sizeof stats};
        if (sdlstm_evaluate(loaded, &batch, &stats) != SDLSTM_OK) failures += fail("the loaded model does not evaluate", round);
        sdlstm_model_free(loaded);
    }
    /* The next save removes what the last kill left. */
    if (failures == 0 && (sdlstm_save(model, path, 0) != SDLSTM_OK || temporaries(dir, "model.h5") != 0)) {
        fprintf(stderr, "save_kill: a save after the kills left temporaries\n");
        failures++;
    }
    printf("save_kill: %d kill -9 during saves (delays up to %.1f ms, %.1f s): %d landed inside a save, %d failures\n",
           round, 3 * save_s * 1e3, now() - start, inside, failures);
    if (failures == 0 && inside < kills / 4) {
        fprintf(stderr, "save_kill: only %d of %d kills landed inside a save: the run tested too little\n", inside, kills);
        failures++;
    }
    sdlstm_model_free(model);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "save_kill: could not remove %s\n", dir);
    return failures ? 1 : 0;
}
