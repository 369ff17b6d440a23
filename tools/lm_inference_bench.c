/* Tokens per second of the LM inference calls on a PTB-sized model (random parameters: speed only),
 * one stream, the model's default single thread: sdlstm_lm_score (64-token windows), sdlstm_evaluate
 * on the same tokens in batches of 1 x 64 (the training-side reference), sdlstm_lm_next one token
 * at a time, and sdlstm_lm_generate (temperature 1, every token).
 *   make lib && cc -std=c11 -O2 -Iinclude tools/lm_inference_bench.c -Lbuild/lib -Wl,-rpath,$PWD/build/lib \
 *     -lsdlstm -lm -o build/lm_inference_bench && build/lm_inference_bench HIDDEN TOKENS   (e.g. 650 4000) */
#define _POSIX_C_SOURCE 199309L
#include <sdlstm.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

int main(int argc, char **argv) {
    int hidden = argc > 1 ? atoi(argv[1]) : 650, n = argc > 2 ? atoi(argv[2]) : 4000;
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    sdlstm_config_init(&cfg, SDLSTM_TASK_LANGUAGE_MODEL);
    cfg.hidden_size = cfg.embed_size = hidden;
    sdlstm_model *m;
    if (sdlstm_model_create(&cfg, &m) != SDLSTM_OK) { fprintf(stderr, "%s\n", sdlstm_last_error()); return 1; }
    int32_t *tok = malloc(sizeof *tok * n);
    for (int i = 0; i < n; i++) tok[i] = (i * 7919) % cfg.vocab_size;
    double lp, t0 = now();
    sdlstm_lm_score(m, tok, n, &lp, NULL);  /* warm-up: workspaces, page faults */
    t0 = now();
    if (sdlstm_lm_score(m, tok, n, &lp, NULL) != SDLSTM_OK) { fprintf(stderr, "%s\n", sdlstm_last_error()); return 1; }
    double ts = now() - t0;
    int32_t *in = malloc(sizeof *in * n), *tg = malloc(sizeof *tg * n);
    for (int i = 0; i < n - 1; i++) { in[i] = tok[i]; tg[i] = tok[i + 1]; }
    sdlstm_batch b = {.struct_size = sizeof b, .batch_size = 1, .seq_len = 64, .inputs = in, .targets = tg};
    sdlstm_reset_state(m);
    t0 = now();
    int windows = (n - 1) / 64;
    for (int w = 0; w < windows; w++) { b.inputs = in + w * 64; b.targets = tg + w * 64; sdlstm_evaluate(m, &b, NULL); }
    double te = now() - t0;
    sdlstm_lm_state *st;
    sdlstm_lm_state_create(m, 1, &st);
    float *row = malloc(sizeof *row * cfg.vocab_size);
    int steps = n / 8;
    t0 = now();
    for (int i = 0; i < steps; i++) sdlstm_lm_next(m, st, &tok[i], row);
    double tn = now() - t0;
    sdlstm_generate_options o = {.struct_size = sizeof o};
    sdlstm_generate_options_init(&o);
    int32_t *out = malloc(sizeof *out * steps);
    int64_t count;
    t0 = now();
    sdlstm_lm_generate(m, tok, 1, &o, out, steps, &count);
    double tg2 = now() - t0;
    printf("{\"hidden\": %d, \"vocab\": %d, \"score_tokens_per_s\": %.0f, \"evaluate_b1_t64_tokens_per_s\": %.0f, "
           "\"lm_next_tokens_per_s\": %.0f, \"generate_tokens_per_s\": %.0f}\n",
           hidden, cfg.vocab_size, (n - 1) / ts, windows * 64 / te, steps / tn, count / tg2);
    sdlstm_lm_state_free(st);
    sdlstm_model_free(m);
    return 0;
}
