/*
 * The smallest complete use of sdlstm: a tiny LSTM language model with structured dropout learns
 * a fixed synthetic sequence in which token i + 1 follows token i.
 *
 * Build: cc -std=c11 quickstart.c $(pkg-config --cflags --libs sdlstm) -o quickstart
 * Exits 0 if the last step's loss is below the first's.
 */
#include <stdio.h>

#include "sdlstm.h"

#define VOCAB 50
#define BATCH 4
#define SEQ 8
#define STEPS 30

/* On failure, say which call failed and why, then jump to the clean-up. */
#define CHECK(call)                                                                      \
    do {                                                                                 \
        sdlstm_status s_ = (call);                                                       \
        if (s_ != SDLSTM_OK) {                                                           \
            fprintf(stderr, "%s: %s: %s\n", #call, sdlstm_status_name(s_), sdlstm_last_error()); \
            goto done;                                                                   \
        }                                                                                \
    } while (0)

int main(void) {
    int exit_code = 1;
    sdlstm_model *model = NULL;

    sdlstm_config cfg = {.struct_size = sizeof cfg};
    CHECK(sdlstm_config_init(&cfg, SDLSTM_TASK_LANGUAGE_MODEL));
    cfg.vocab_size = VOCAB;
    cfg.hidden_size = 32;
    cfg.num_layers = 1;
    cfg.embed_size = 16;
    CHECK(sdlstm_model_create(&cfg, &model));

    CHECK(sdlstm_set_dropout(model, SDLSTM_SITE_INPUT, SDLSTM_POLICY_STRUCTURED, 0.5f));
    CHECK(sdlstm_set_dropout(model, SDLSTM_SITE_OUTPUT, SDLSTM_POLICY_STRUCTURED, 0.5f));
    CHECK(sdlstm_set_learning_rate(model, 1.0f));
    CHECK(sdlstm_set_clip_norm(model, 5.0f));

    int32_t inputs[BATCH * SEQ], targets[BATCH * SEQ];
    sdlstm_batch batch = {
        .struct_size = sizeof batch,
        .batch_size = BATCH,
        .seq_len = SEQ,
        .inputs = inputs,
        .targets = targets,
    };
    /* Row b cycles through the tokens 8b, 8b + 1, ..., 8b + 7, 8b, ...: a window of SEQ = 8 tokens
     * ends where the next one begins, so every step sees the same batch and it still continues
     * the text behind the hidden state the model carries from step to step. (A stream that walks
     * through all 50 tokens is learnable too, but from the small initial weights it takes a few
     * hundred steps at this learning rate before the loss moves.) */
    for (int b = 0; b < BATCH; b++)
        for (int t = 0; t < SEQ; t++) {
            inputs[b * SEQ + t] = b * SEQ + t;
            targets[b * SEQ + t] = b * SEQ + (t + 1) % SEQ;
        }

    double first = 0, last = 0;
    for (int step = 0; step < STEPS; step++) {
        sdlstm_stats stats = {.struct_size = sizeof stats};
        CHECK(sdlstm_step(model, &batch, &stats));
        if (step == 0) first = stats.loss;
        last = stats.loss;
    }

    printf("sdlstm %s: loss %.4f at step 1, %.4f at step %d\n", sdlstm_version(), first, last, STEPS);
    exit_code = last < first ? 0 : 1;

done:
    sdlstm_model_free(model);
    return exit_code;
}
