/*
 * lm — trains a word-level LSTM language model on the Penn Treebank with sdlstm, and applies one.
 *
 *   lm [train] --data DIR [options]        train (lm_task.h has the batching), evaluate, --save
 *   lm score --load FILE TEXT [options]    perplexity of any text file under a checkpoint
 *   lm generate --load FILE [options]      sample text from a prompt
 *
 * Training: progress and per-epoch validation go to stderr; one JSON line with the results goes to
 * stdout, so runs can be collected with `lm ... > results.jsonl`; --epoch-json FILE adds a line per
 * epoch. --save FILE writes the model after every epoch and at the end; --load FILE resumes from one
 * (the epoch counter and the learning-rate schedule continue, --epochs more epochs), and --load FILE
 * --epochs 0 only evaluates. A checkpoint carries the vocabulary (string table "vocab") and this
 * program's settings (metadata "lm.*"), so score and generate need nothing else.
 *
 * Build (in examples/lm):
 *   cc -std=c11 -O2 lm.c lm_task.c ../common/example.c $(pkg-config --cflags --libs sdlstm) -lm -o sdlstm-lm
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lm_task.h"

const char *const example_name = "lm";

static const long long big = INT32_MAX;

/* ------------------------------------------------------------------------------------------ */
/* train                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static const char train_synopsis[] =
    "usage: lm [train] --data DIR [options]\n"
    "       lm score --load FILE [options] TEXT      (lm score --help)\n"
    "       lm generate --load FILE [options]        (lm generate --help)\n"
    "\n"
    "Trains an LSTM language model on ptb.{train,valid,test}.txt in DIR.\n"
    "\n";

static int train_main(int argc, char **argv, int first) {
    double t0 = now_s();
    lm_options lo = lm_defaults();
    train_options *o = &lo.train;
    const char *data_dir = NULL;
    flag flags[] = {
        LM_SHARED_FLAGS(&lo, o, data_dir),
        {.name = "--epochs", .kind = FLAG_INT, .value = &o->epochs, .arg = "N", .help = "training epochs (1); with --load, more epochs, 0 = evaluate only", .min = 0, .max = big},
        {.name = "--batch", .kind = FLAG_INT, .value = &o->batch, .arg = "N", .help = "parallel streams (20)", .min = 1, .max = big, .fixed = true},
        {.name = "--lr", .kind = FLAG_REAL, .value = &o->lr, .arg = "F", .help = "learning rate for the mean token loss (20)", .range = POSITIVE, .fixed = true},
        {.name = "--clip", .kind = FLAG_REAL, .value = &o->clip, .arg = "F", .help = "global gradient-norm clip, 0 = off (0.25)", .range = NON_NEGATIVE, .fixed = true},
        {.name = "--threads", .kind = FLAG_INT, .value = &o->threads, .arg = "N", .help = "threads used by the library (the cores available)", .min = 1, .max = 4096},
        {.name = "--seed", .kind = FLAG_U64, .value = &o->seed, .arg = "N", .help = "initialisation and dropout seed (1)", .fixed = true},
        {.name = "--save", .kind = FLAG_TEXT, .value = &o->save_path, .arg = "FILE", .help = "save a checkpoint (HDF5) after every epoch and at the end"},
        {.name = "--load", .kind = FLAG_TEXT, .value = &o->load_path, .arg = "FILE", .help = "resume from a checkpoint: model, vocabulary, dropout and the flags marked * come from it"},
        {.name = "--epoch-json", .kind = FLAG_TEXT, .value = &o->epoch_json, .arg = "FILE", .help = "one JSON line per epoch (lr, train and valid ppl)"},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    parse_flags(argc, argv, first, train_synopsis, flags, nflags, NULL, 0);
    if (data_dir == NULL) bad_usage("--data DIR is required", "", "");
    if (o->embed == 0) o->embed = o->hidden;
    normalize_dropout(o);
    /* A batch is B * T ids in one int32-indexed buffer. */
    if ((int64_t)o->batch * lo.bptt > INT32_MAX) bad_usage("--batch * --bptt is too large", "", "");
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1, save_failures = 0;
    dataset d = {0};
    batcher train = {0}, valid = {0}, test = {0};
    sdlstm_model *m = NULL;
    FILE *epoch_log = NULL;
    int64_t start_epoch = 0;
    if (!epoch_log_open(o->epoch_json, &epoch_log)) goto done;
    if (o->load_path) {
        /* The model comes first: its vocabulary reads the text. */
        sdlstm_progress p = {.struct_size = sizeof p};
        if (!ok(sdlstm_load(o->load_path, &m), "sdlstm_load") || !lm_restore_options(m, &lo) ||
            !dataset_vocab_from_model(m, &d) || !dataset_load_splits(data_dir, &d) ||
            !ok(sdlstm_get_progress(m, &p), "sdlstm_get_progress"))
            goto done;
        for (size_t k = 0; k < nflags; k++)
            if (flags[k].fixed && flags[k].given)
                fprintf(stderr, "lm: warning: %s is ignored: the checkpoint sets it\n", flags[k].name);
        start_epoch = p.epoch;
        fprintf(stderr, "lm: loaded %s: epoch %" PRId64 ", step %" PRId64 ", lr %g\n", o->load_path, p.epoch, p.step,
                p.learning_rate);
    } else if (!dataset_load(data_dir, &d)) {
        goto done;
    }
    fprintf(stderr, "lm: vocab %d; tokens train %" PRId64 " valid %" PRId64 " test %" PRId64 "\n", d.vocab.size,
            d.train.size, d.valid.size, d.test.size);

    if (!batcher_init(&train, &d.train, o->batch, lo.bptt, "ptb.train.txt") ||
        !batcher_init(&valid, &d.valid, o->batch, lo.bptt, "ptb.valid.txt") ||
        !batcher_init(&test, &d.test, o->batch, lo.bptt, "ptb.test.txt"))
        goto done;
    if (!m && !(m = lm_create(&lo, &d.vocab))) goto done;
    int64_t params = 0;
    if (!ok(sdlstm_get_parameter_count(m, &params), "sdlstm_get_parameter_count")) goto done;
    fprintf(stderr,
            "lm: %d x %d LSTM, embed %d, %" PRId64 " parameters; policy %s p_nr %g p_rh %g; %" PRId64
            " steps per epoch; %d threads\n",
            o->layers, o->hidden, o->embed, params, policy_name(o), o->p_nr, o->p_rh,
            o->max_steps > 0 && o->max_steps < train.steps ? o->max_steps : train.steps, o->threads);

    train_totals tot = {0};
    double valid_ppl = NAN;
    /* The library keeps the epoch counter, so a resumed run continues the schedule where it was. */
    int32_t last_epoch = (int32_t)start_epoch;
    for (int32_t e = last_epoch + 1; e <= start_epoch + o->epochs; e++) {
        double lr = scheduled_lr(o, e);
        if (!ok(sdlstm_set_epoch(m, e), "sdlstm_set_epoch") || !lm_train_epoch(m, &train, &lo, e, lr, &tot) ||
            !lm_evaluate(m, &valid, &valid_ppl))
            goto done;
        double train_ppl = ppl_of(tot.last_epoch_loss, tot.last_epoch_tokens);
        fprintf(stderr, "epoch %d  train ppl %.2f  valid ppl %.2f\n", e, train_ppl, valid_ppl);
        if (epoch_log) {
            epoch_log_begin(epoch_log, "lm", o, e, lr, &tot);
            json_number(epoch_log, "train_ppl", train_ppl);
            json_number(epoch_log, "valid_ppl", valid_ppl);
            json_end(epoch_log, NULL);
        }
        save_checkpoint(m, o->save_path, &save_failures);
        last_epoch = e;
    }
    if (o->epochs == 0 && !lm_evaluate(m, &valid, &valid_ppl)) goto done;
    double test_ppl = NAN;
    if (!lm_evaluate(m, &test, &test_ppl)) goto done;
    fprintf(stderr, "test ppl %.2f\n", test_ppl);
    save_checkpoint(m, o->save_path, &save_failures);

    json_begin(stdout, "lm");
    json_training(stdout, o, &tot);
    json_int(stdout, "bptt", lo.bptt);
    json_int(stdout, "vocab", d.vocab.size);
    json_int(stdout, "epoch", last_epoch);
    json_number(stdout, "train_ppl", ppl_of(tot.last_epoch_loss, tot.last_epoch_tokens));
    json_number(stdout, "valid_ppl", valid_ppl);
    json_number(stdout, "test_ppl", test_ppl);
    json_number(stdout, "seconds", now_s() - t0);
    json_end(stdout, &rt);
    status = save_failures > 0;
done:
    if (epoch_log) fclose(epoch_log);
    sdlstm_model_free(m);
    batcher_free(&train);
    batcher_free(&valid);
    batcher_free(&test);
    dataset_free(&d);
    return status;
}

/* ------------------------------------------------------------------------------------------ */
/* score and generate: a checkpoint alone                                                      */
/* ------------------------------------------------------------------------------------------ */

/* Loads a language model and its vocabulary for applying it. */
static bool load_for_use(const char *path, int32_t threads, sdlstm_model **m, dataset *d) {
    sdlstm_config cfg = {.struct_size = sizeof cfg};
    if (!ok(sdlstm_load(path, m), "sdlstm_load") || !ok(sdlstm_get_config(*m, &cfg), "sdlstm_get_config"))
        return false;
    if (cfg.task != SDLSTM_TASK_LANGUAGE_MODEL) {
        fprintf(stderr, "lm: %s does not hold a language model\n", path);
        return false;
    }
    return ok(sdlstm_set_num_threads(*m, threads), "sdlstm_set_num_threads") && dataset_vocab_from_model(*m, d);
}

static const char score_synopsis[] =
    "usage: lm score --load FILE [options] TEXT\n"
    "\n"
    "Perplexity of the text file TEXT under the checkpoint's language model, from a zero state: its\n"
    "lines are read as the training text is (whitespace-separated words, each line ending in <eos>),\n"
    "every word predicted, the first from <eos>. Words outside the checkpoint's vocabulary are read\n"
    "as <unk> and counted. One JSON line on stdout.\n"
    "\n";

static int score_main(int argc, char **argv, int first) {
    const char *load = NULL;
    int32_t threads = available_cores();
    flag flags[] = {
        {.name = "--load", .kind = FLAG_TEXT, .value = &load, .arg = "FILE", .help = "the checkpoint (sdlstm-lm --save)"},
        {.name = "--threads", .kind = FLAG_INT, .value = &threads, .arg = "N", .help = "threads used by the library (the cores available)", .min = 1, .max = 4096},
    };
    const char *text_path = NULL;
    int n = parse_flags(argc, argv, first, score_synopsis, flags, sizeof flags / sizeof flags[0], &text_path, 1);
    if (!load) bad_usage("--load FILE is required", "", "");
    if (n != 1) bad_usage("the text file to score is required", "", "");
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1;
    sdlstm_model *m = NULL;
    dataset d = {0};
    corpus c = {0};
    int32_t *stream = NULL;
    char *text = NULL;
    double t0 = now_s();
    if (!load_for_use(load, threads, &m, &d) || !(text = read_file(NULL, text_path, NULL)) ||
        !tokenize_fixed(text, &d, &c))
        goto done;
    if (c.size == 0) {
        fprintf(stderr, "lm: %s has no words\n", text_path);
        goto done;
    }
    stream = malloc((size_t)(c.size + 1) * sizeof *stream);
    if (!stream) {
        fputs("lm: out of memory\n", stderr);
        goto done;
    }
    /* The first word of a text follows an <eos>, as every other line's does. */
    stream[0] = d.eos;
    memcpy(stream + 1, c.ids, (size_t)c.size * sizeof *stream);
    double log_prob = 0;
    if (!ok(sdlstm_lm_score(m, stream, c.size + 1, &log_prob, NULL), "sdlstm_lm_score")) goto done;
    double ppl = exp(-log_prob / (double)c.size);
    fprintf(stderr, "lm: %s: %" PRId64 " tokens (<eos> included), %" PRId64
            " words outside the vocabulary read as <unk>; perplexity %.2f\n", text_path, c.size, c.oov, ppl);
    json_begin(stdout, "lm-score");
    json_string(stdout, "text", text_path);
    json_string(stdout, "checkpoint", load);
    json_int(stdout, "tokens", c.size);
    json_int(stdout, "oov", c.oov);
    json_number(stdout, "log_prob", log_prob);
    json_number(stdout, "ppl", ppl);
    json_number(stdout, "seconds", now_s() - t0);
    json_int(stdout, "threads", threads);
    json_end(stdout, &rt);
    status = 0;
done:
    free(stream);
    free(text);
    free(c.ids);
    dataset_free(&d);
    sdlstm_model_free(m);
    return status;
}

static const char generate_synopsis[] =
    "usage: lm generate --load FILE [options]\n"
    "\n"
    "Samples text from the checkpoint's language model after <eos> and the prompt's words (words\n"
    "outside the vocabulary read as <unk>, counted on stderr). Writes the prompt and the sampled\n"
    "words to stdout, each <eos> as a line break.\n"
    "\n";

static int generate_main(int argc, char **argv, int first) {
    const char *load = NULL, *prompt = "";
    int32_t threads = available_cores(), tokens = 50, top_k = 0;
    double temperature = 1;
    uint64_t seed = 1;
    bool until_eos = false;
    flag flags[] = {
        {.name = "--load", .kind = FLAG_TEXT, .value = &load, .arg = "FILE", .help = "the checkpoint (sdlstm-lm --save)"},
        {.name = "--prompt", .kind = FLAG_TEXT, .value = &prompt, .arg = "TEXT", .help = "the words to continue (none: a new sentence)"},
        {.name = "--tokens", .kind = FLAG_INT, .value = &tokens, .arg = "N", .help = "tokens to sample, <eos> included (50)", .min = 1, .max = 1 << 24},
        {.name = "--temperature", .kind = FLAG_REAL, .value = &temperature, .arg = "F", .help = "divides the logits; 0 = always the most likely (1)", .range = NON_NEGATIVE},
        {.name = "--top-k", .kind = FLAG_INT, .value = &top_k, .arg = "K", .help = "sample from the K most likely tokens, 0 = all (0)", .min = 0, .max = big},
        {.name = "--seed", .kind = FLAG_U64, .value = &seed, .arg = "N", .help = "sampling seed: the same seed gives the same text (1)"},
        {.name = "--until-eos", .kind = FLAG_SWITCH, .value = &until_eos, .arg = NULL, .help = "stop after the first sampled <eos>"},
        {.name = "--threads", .kind = FLAG_INT, .value = &threads, .arg = "N", .help = "threads used by the library (the cores available)", .min = 1, .max = 4096},
    };
    parse_flags(argc, argv, first, generate_synopsis, flags, sizeof flags / sizeof flags[0], NULL, 0);
    if (!load) bad_usage("--load FILE is required", "", "");
    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) return 1;

    int status = 1;
    sdlstm_model *m = NULL;
    dataset d = {0};
    corpus c = {0};
    int32_t *ids = NULL, *out = NULL;
    char *text = strdup(prompt);
    if (!text) goto oom;
    if (!load_for_use(load, threads, &m, &d) || !tokenize_fixed(text, &d, &c)) goto done;
    /* tokenize_fixed ends the prompt's line with <eos>; the prompt continues instead. */
    int64_t words = c.size > 0 ? c.size - 1 : 0;
    ids = malloc((size_t)(words + 1) * sizeof *ids);
    out = malloc((size_t)tokens * sizeof *out);
    if (!ids || !out) goto oom;
    ids[0] = d.eos;
    memcpy(ids + 1, c.ids, (size_t)words * sizeof *ids);
    if (c.oov > 0) fprintf(stderr, "lm: %" PRId64 " prompt words outside the vocabulary read as <unk>\n", c.oov);
    sdlstm_generate_options g = {.struct_size = sizeof g};
    if (!ok(sdlstm_generate_options_init(&g), "sdlstm_generate_options_init")) goto done;
    g.temperature = (float)temperature;
    g.top_k = top_k;
    g.seed = seed;
    g.stop_id = until_eos ? d.eos : -1;
    int64_t count = 0;
    if (!ok(sdlstm_lm_generate(m, ids, words + 1, &g, out, tokens, &count), "sdlstm_lm_generate")) goto done;
    bool line_start = true;
    for (int64_t i = 0; i < words + count; i++) {
        int32_t id = i < words ? ids[i + 1] : out[i - words];
        if (id < 0 || id >= d.vocab.size) {
            fprintf(stderr, "lm: sdlstm_lm_generate returned the id %d\n", id);
            goto done;
        }
        if (id == d.eos) {
            putchar('\n');
            line_start = true;
            continue;
        }
        if (!line_start) putchar(' ');
        fputs(d.vocab.words[id], stdout);
        line_start = false;
    }
    if (!line_start) putchar('\n');
    fflush(stdout);
    status = 0;
    goto done;
oom:
    fputs("lm: out of memory\n", stderr);
done:
    free(text);
    free(ids);
    free(out);
    free(c.ids);
    dataset_free(&d);
    sdlstm_model_free(m);
    return status;
}

int main(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "score") == 0) return score_main(argc, argv, 2);
    if (argc >= 2 && strcmp(argv[1], "generate") == 0) return generate_main(argc, argv, 2);
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return train_main(argc, argv, 2);
    return train_main(argc, argv, 1);
}
