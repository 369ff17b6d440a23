/* Fuzzes the C ABI with random call sequences: three small models (LM, tagger, seq2seq) take calls
 * drawn at random, with arguments that are right most of the time and wrong in one place otherwise
 * (NULL, an id or size out of range, NaN, a wrong struct size, another task's model).
 *
 *   sdlstm-fuzz-abi [CALLS (20000)] [SEED (1)] [SCRATCH DIR (/tmp)]
 *
 * Every call must return a known status; every failure must leave a message; every failed call
 * that takes a model must leave it as it was (its checkpoint, carried state included, byte for
 * byte). Built with ASan + UBSan by `make sanitize`, which also runs it; a crash or a report fails
 * there. Prints one line of counts; exits 1 on the first broken rule, naming the call. */
#define _GNU_SOURCE
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sdlstm.h>

static uint64_t state;
static uint64_t next(void) { /* splitmix64 */
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static int below(int n) { return (int)(next() % (uint64_t)n); }
static int chance(int percent) { return below(100) < percent; }

/* A right value most of the time, otherwise one that some check must refuse. */
static int32_t some_int(int32_t good) {
    static const int32_t odd[] = {-1, 0, 1, 2, 7, 100000, INT32_MAX, INT32_MIN};
    return chance(85) ? good : odd[below(8)];
}
/* A count of elements in one of this program's buffers: right, smaller, or one the library must
 * refuse (a larger one would only overrun the buffer, which no library can tell). */
static int32_t some_size(int32_t good) {
    static const int32_t odd[] = {-1, 0, 1, INT32_MIN};
    return chance(85) ? good : odd[below(4)];
}
/* A batch dimension: as some_size, or one whose product with the others no buffer could hold. */
static int32_t some_dim(int32_t good) { return chance(3) ? INT32_MAX : some_size(good); }
static float some_float(float good) {
    static const float odd[] = {-1.0f, 0.0f, 1.0f, 1e30f, NAN, INFINITY, -INFINITY, 0.999999f};
    return chance(85) ? good : odd[below(8)];
}

enum { VOCAB = 13, TAGS = 5, CHARS = 7, B = 3, T = 4, W = 3, TT = 5 };
static const char *scratch = "/tmp";
static char path_a[512], path_b[512];
static long calls, failures;

static unsigned char *file_bytes(const char *path, long *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)*n + 1);
    if (b && fread(b, 1, (size_t)*n, f) != (size_t)*n) { free(b); b = NULL; }
    fclose(f);
    return b;
}

static void die(const char *call, const char *why) {
    fprintf(stderr, "fuzz_abi: call %ld (%s): %s; last error: \"%s\"\n", calls, call, why, sdlstm_last_error());
    exit(1);
}

/* The status rules for one call; `before` is the model's checkpoint before it (NULL: not checked). */
static void check(sdlstm_status s, const char *call, sdlstm_model *m, const unsigned char *before, long before_n) {
    calls++;
    if (s < SDLSTM_OK || s > SDLSTM_E_STATE) die(call, "unknown status");
    if (s == SDLSTM_OK) return;
    failures++;
    if (sdlstm_last_error()[0] == '\0') die(call, "a failure without a message");
    if (!m || !before) return;
    if (sdlstm_save(m, path_b, SDLSTM_SAVE_CARRIED_STATE) != SDLSTM_OK) die(call, "the model no longer saves");
    long n = 0;
    unsigned char *after = file_bytes(path_b, &n);
    if (!after || n != before_n || memcmp(after, before, (size_t)n) != 0) die(call, "a failed call changed the model");
    free(after);
}

static unsigned char *snapshot(sdlstm_model *m, long *n) {
    if (sdlstm_save(m, path_a, SDLSTM_SAVE_CARRIED_STATE) != SDLSTM_OK) die("sdlstm_save", "a model does not save");
    return file_bytes(path_a, n);
}

static sdlstm_model *create(sdlstm_task task) {
    sdlstm_config c = {.struct_size = sizeof c};
    if (sdlstm_config_init(&c, task) != SDLSTM_OK) die("sdlstm_config_init", "refused");
    c.vocab_size = VOCAB, c.embed_size = 6, c.hidden_size = 8, c.num_layers = 1, c.init_scale = 0.1f;
    if (task == SDLSTM_TASK_TAGGER) c.num_tags = TAGS, c.char_vocab_size = CHARS, c.char_embed_size = 3, c.char_hidden_size = 4;
    if (task == SDLSTM_TASK_SEQ2SEQ) c.target_vocab_size = VOCAB, c.bidirectional = 1;
    sdlstm_model *m = NULL;
    if (sdlstm_model_create(&c, &m) != SDLSTM_OK) die("sdlstm_model_create", "refused a good config");
    return m;
}

int main(int argc, char **argv) {
    long total = argc > 1 ? atol(argv[1]) : 20000;
    state = argc > 2 ? strtoull(argv[2], NULL, 10) : 1;
    if (argc > 3) scratch = argv[3];
    snprintf(path_a, sizeof path_a, "%s/fuzz-abi-%d-a.h5", scratch, (int)getpid());
    snprintf(path_b, sizeof path_b, "%s/fuzz-abi-%d-b.h5", scratch, (int)getpid());
    sdlstm_model *models[3] = {create(SDLSTM_TASK_LANGUAGE_MODEL), create(SDLSTM_TASK_TAGGER), create(SDLSTM_TASK_SEQ2SEQ)};
    int32_t ids[B * TT], tags[B * T], lengths[B], tlengths[B], chars[B * T * W], wlengths[B * T], out[B * 32];
    float logp[4 * VOCAB];
    double scores[B];

    while (calls < total) {
        sdlstm_model *m = chance(3) ? NULL : models[below(3)];
        int task = m == models[0] ? 0 : m == models[1] ? 1 : m == models[2] ? 2 : -1;
        for (int i = 0; i < B * TT; i++) ids[i] = chance(98) ? below(VOCAB) : some_int(0);
        for (int i = 0; i < B * T; i++) tags[i] = chance(98) ? below(TAGS) : some_int(0), wlengths[i] = 1 + below(W);
        for (int i = 0; i < B * T * W; i++) chars[i] = chance(99) ? below(CHARS) : some_int(0);
        for (int i = 0; i < B; i++) lengths[i] = 1 + below(T), tlengths[i] = 2 + below(TT - 1);
        if (chance(5)) lengths[below(B)] = some_int(0);
        sdlstm_batch b = {.struct_size = chance(97) ? sizeof b : (size_t)some_int(8), .batch_size = some_dim(B),
                          .seq_len = some_dim(T), .inputs = chance(98) ? ids : NULL, .targets = chance(97) ? (task == 1 ? tags : ids) : NULL,
                          .lengths = task == 0 ? NULL : lengths, .target_len = TT, .target_lengths = tlengths,
                          .max_word_len = W, .chars = chars, .word_lengths = wlengths};
        long before_n = 0;
        unsigned char *before = m && chance(30) ? snapshot(m, &before_n) : NULL;
        sdlstm_stats st = {.struct_size = chance(97) ? sizeof st : 4};
        sdlstm_status s;
        const char *name;
        switch (below(16)) {
        case 0: name = "sdlstm_step"; s = sdlstm_step(m, &b, chance(90) ? &st : NULL); break;
        case 1: name = "sdlstm_evaluate"; s = sdlstm_evaluate(m, &b, &st); break;
        case 2: name = "sdlstm_set_dropout";
            s = sdlstm_set_dropout(m, (sdlstm_site)some_int(below(4)), (sdlstm_policy)some_int(below(5)), some_float(0.5f)); break;
        case 3: name = "sdlstm_set_learning_rate"; s = sdlstm_set_learning_rate(m, some_float(0.5f)); break;
        case 4: name = "sdlstm_set_clip_norm"; s = sdlstm_set_clip_norm(m, some_float(1.0f)); break;
        case 5: name = "sdlstm_set_num_threads"; s = sdlstm_set_num_threads(m, some_int(1 + below(3))); break;
        case 6: name = "sdlstm_reset_state"; s = sdlstm_reset_state(m); break;
        case 7: name = "sdlstm_set_epoch"; s = sdlstm_set_epoch(m, chance(85) ? below(10) : INT64_MAX); break;
        case 8: { name = "sdlstm_set_strings";
            const char *words[] = {"a", "b\xff", "c"};
            s = sdlstm_set_strings(m, chance(85) ? "vocab" : "bad name!", words, chance(80) ? 1 : (int64_t[]){0, -1, 2, 3}[below(4)]); break; }
        case 9: { name = "sdlstm_get_strings"; char **got = NULL; int64_t n = 0;
            s = sdlstm_get_strings(m, "vocab", chance(95) ? &got : NULL, &n); sdlstm_free(got); break; }
        case 10: name = "sdlstm_set_metadata"; s = sdlstm_set_metadata(m, chance(85) ? "key" : "", chance(80) ? "value" : NULL); break;
        case 11: { name = "sdlstm_load";
            sdlstm_model *loaded = NULL;
            s = m ? sdlstm_save(m, path_a, SDLSTM_SAVE_DEFAULT) : SDLSTM_OK;
            if (s == SDLSTM_OK) s = sdlstm_load(chance(90) ? path_a : "/nonexistent/x.h5", &loaded);
            sdlstm_model_free(loaded); break; }
        case 12: { name = "sdlstm_lm_next";
            sdlstm_lm_state *ls = NULL;
            s = sdlstm_lm_state_create(m, some_size(2), &ls);
            if (s == SDLSTM_OK) { s = sdlstm_lm_next(m, ls, ids, chance(95) ? logp : NULL); sdlstm_lm_state_free(ls); }
            break; }
        case 13: { name = "sdlstm_lm_generate";
            sdlstm_generate_options o = {.struct_size = sizeof o};
            sdlstm_generate_options_init(&o);
            o.temperature = some_float(1.0f), o.top_k = some_int(3), o.stop_id = some_int(-1);
            int64_t count = 0;
            if (chance(50)) { double lp = 0; s = sdlstm_lm_score(m, ids, some_size(6), &lp, NULL); }
            else s = sdlstm_lm_generate(m, ids, some_size(2), &o, out, some_size(8), &count);
            break; }
        case 14: name = "sdlstm_tag"; s = sdlstm_tag(m, &b, chance(95) ? tags : NULL); break;
        default: { name = "sdlstm_translate";
            sdlstm_decode_options o = {.struct_size = sizeof o};
            sdlstm_decode_options_init(&o);
            o.bos_id = some_int(0), o.eos_id = some_int(1), o.beam_size = some_size(2), o.max_len = some_size(6);
            o.length_penalty = some_float(0.5f);
            if (o.max_len > 32) o.max_len = 32; /* out holds B x 32 */
            s = sdlstm_translate(m, &b, &o, out, chance(95) ? lengths : NULL, scores); break; }
        }
        /* sdlstm_load fails with E_IO on a missing file by design; the model given is not changed. */
        check(s, name, m, before, before_n);
        free(before);
    }
    for (int i = 0; i < 3; i++) sdlstm_model_free(models[i]);
    remove(path_a);
    remove(path_b);
    printf("{\"calls\": %ld, \"failed_as_documented\": %ld, \"broken_rules\": 0}\n", calls, failures);
    return 0;
}
