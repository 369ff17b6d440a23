/*
 * lm_mpi — the PTB language model of lm.c, trained data-parallel over MPI:
 *
 *   mpirun -np N sdlstm-lm-mpi --data DIR [options]
 *
 * The global batch is --batch parallel streams (Zaremba et al.'s batching, lm_task.h); rank k steps
 * streams [k * B / N, (k + 1) * B / N) and the library sums the ranks' gradients and token counts
 * through sdlstm_set_gradient_reducer, here MPI_Allreduce. The library links no MPI; this program
 * does. N ranks then compute what one process with --batch streams computes: the loss is the mean
 * over all B × bptt tokens of a step, --lr and --clip mean what they mean there, and the dropout
 * masks are those of the global batch (sdlstm_set_batch_shard). Validation and test are sharded the
 * same way and their loss sums reduced. Rank 0 prints progress and the JSON line, writes --save and
 * --loss-log; every rank reads --load (the carried state restarts with each epoch, so a checkpoint
 * resumes on any rank count).
 *
 * Beyond lm.c's JSON fields: ranks, reduce_seconds (time in MPI_Allreduce) and wait_seconds (time
 * the ranks waited for each other before it), both on rank 0, summed over the training steps.
 *
 * Build (in examples/lm):
 *   mpicc -std=c11 -O2 lm_mpi.c lm_task.c ../common/example.c $(pkg-config --cflags --libs sdlstm) -lm
 */
#define _POSIX_C_SOURCE 200809L

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "lm_task.h"

const char *const example_name = "lm-mpi";

static const long long big = INT32_MAX;

static int rank, ranks;

/* What the reducer measures and logs. */
typedef struct reduction {
    double reduce_seconds, wait_seconds;
    FILE *loss_log; /* rank 0: one global step loss per line */
} reduction;

/* The sum over the ranks: MPI_Allreduce in place, in pieces of at most INT_MAX floats (a step calls
 * it twice: the embedding rows used, then the gradients). The barrier first separates waiting for
 * the slowest rank from the reduction itself. */
static int32_t allreduce(float *values, int64_t count, double *totals, void *user_data) {
    reduction *r = user_data;
    double t0 = MPI_Wtime();
    if (MPI_Barrier(MPI_COMM_WORLD) != MPI_SUCCESS) return 1;
    double t1 = MPI_Wtime();
    for (int64_t off = 0; off < count; off += INT_MAX) {
        int n = count - off < INT_MAX ? (int)(count - off) : INT_MAX;
        if (MPI_Allreduce(MPI_IN_PLACE, values + off, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
            return 1;
    }
    if (MPI_Allreduce(MPI_IN_PLACE, totals, SDLSTM_REDUCER_TOTALS, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
        return 1;
    r->wait_seconds += t1 - t0;
    r->reduce_seconds += MPI_Wtime() - t1;
    /* The first of a step's two calls carries the totals (the second's are zero). */
    if (r->loss_log && totals[1] > 0) fprintf(r->loss_log, "%.9g\n", totals[0] / totals[1]);
    return 0;
}

/* This rank's first stream of `global` and how many it steps. */
static void shard_of(int32_t global, int32_t *offset, int32_t *count) {
    *offset = (int32_t)((int64_t)rank * global / ranks);
    *count = (int32_t)((int64_t)(rank + 1) * global / ranks) - *offset;
}

/* The batcher of the global streams, cut down to this rank's: the same stream length and windows,
 * the rows offset .. offset + count - 1. */
static bool shard_batcher(batcher *b, const corpus *c, int32_t global, int32_t bptt, const char *name) {
    if (!batcher_init(b, c, global, bptt, name)) return false;
    int32_t offset, count;
    shard_of(global, &offset, &count);
    b->ids += (int64_t)offset * b->len;
    b->batch = count;
    return true;
}

/* Perplexity of a split over every rank's streams: each rank's loss sum (lm_evaluate's perplexity
 * of its streams, each of which predicts len - 1 tokens) reduced. */
static bool evaluate_all(sdlstm_model *m, batcher *b, double *ppl) {
    double shard_ppl;
    if (!lm_evaluate(m, b, &shard_ppl)) return false;
    double sums[2] = {log(shard_ppl) * (double)b->batch * (double)(b->len - 1), (double)b->batch * (double)(b->len - 1)};
    MPI_Allreduce(MPI_IN_PLACE, sums, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    *ppl = exp(sums[0] / sums[1]);
    return true;
}

static const char synopsis[] =
    "usage: mpirun -np N sdlstm-lm-mpi --data DIR [options]\n"
    "\n"
    "Trains lm's language model on ptb.{train,valid,test}.txt in DIR over N MPI ranks, each stepping\n"
    "its share of the --batch streams; the result is that of one process with --batch streams.\n"
    "\n";

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks);
    /* One voice: the ranks compute the same numbers, rank 0 reports them. */
    if (rank != 0 && (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))) MPI_Abort(MPI_COMM_WORLD, 1);
    double t0 = now_s();
    lm_options lo = lm_defaults();
    train_options *o = &lo.train;
    const char *data_dir = NULL, *loss_log = NULL;
    flag flags[] = {
        LM_SHARED_FLAGS(&lo, o, data_dir),
        {.name = "--epochs", .kind = FLAG_INT, .value = &o->epochs, .arg = "N", .help = "training epochs (1); with --load, more epochs", .min = 0, .max = big},
        {.name = "--batch", .kind = FLAG_INT, .value = &o->batch, .arg = "N", .help = "parallel streams of the global batch, shared out over the ranks (20)", .min = 1, .max = big, .fixed = true},
        {.name = "--lr", .kind = FLAG_REAL, .value = &o->lr, .arg = "F", .help = "learning rate for the mean token loss of the global batch (20)", .range = POSITIVE, .fixed = true},
        {.name = "--clip", .kind = FLAG_REAL, .value = &o->clip, .arg = "F", .help = "clip of the global batch's gradient norm, 0 = off (0.25)", .range = NON_NEGATIVE, .fixed = true},
        {.name = "--threads", .kind = FLAG_INT, .value = &o->threads, .arg = "N", .help = "threads per rank (the cores available to the rank)", .min = 1, .max = 4096},
        {.name = "--seed", .kind = FLAG_U64, .value = &o->seed, .arg = "N", .help = "initialisation and dropout seed, the same on every rank (1)", .fixed = true},
        {.name = "--save", .kind = FLAG_TEXT, .value = &o->save_path, .arg = "FILE", .help = "rank 0 saves a checkpoint after every epoch and at the end"},
        {.name = "--load", .kind = FLAG_TEXT, .value = &o->load_path, .arg = "FILE", .help = "resume from a checkpoint (of any rank count, or of lm)"},
        {.name = "--loss-log", .kind = FLAG_TEXT, .value = &loss_log, .arg = "FILE", .help = "rank 0 writes each step's global training loss, one per line"},
    };
    size_t nflags = sizeof flags / sizeof flags[0];
    parse_flags(argc, argv, 1, synopsis, flags, nflags, NULL, 0);
    if (data_dir == NULL) bad_usage("--data DIR is required", "", "");
    if (o->embed == 0) o->embed = o->hidden;
    normalize_dropout(o);
    if ((int64_t)o->batch * lo.bptt > INT32_MAX) bad_usage("--batch * --bptt is too large", "", "");
    if (o->batch < ranks) bad_usage("--batch must be at least the number of ranks", "", "");

    sdlstm_runtime_info rt;
    if (!report_runtime(&rt)) MPI_Abort(MPI_COMM_WORLD, 1);
    int save_failures = 0;
    dataset d = {0};
    batcher train = {0}, valid = {0}, test = {0};
    sdlstm_model *m = NULL;
    reduction red = {0};
    int64_t start_epoch = 0;
    if (rank == 0 && loss_log && !(red.loss_log = fopen(loss_log, "w"))) {
        fprintf(stderr, "lm-mpi: cannot write %s\n", loss_log);
        goto fail;
    }
    if (o->load_path) {
        sdlstm_progress p = {.struct_size = sizeof p};
        if (!ok(sdlstm_load(o->load_path, &m), "sdlstm_load") || !lm_restore_options(m, &lo) ||
            !dataset_vocab_from_model(m, &d) || !dataset_load_splits(data_dir, &d) ||
            !ok(sdlstm_get_progress(m, &p), "sdlstm_get_progress"))
            goto fail;
        start_epoch = p.epoch;
        fprintf(stderr, "lm-mpi: loaded %s: epoch %" PRId64 ", step %" PRId64 "\n", o->load_path, p.epoch, p.step);
    } else if (!dataset_load(data_dir, &d)) {
        goto fail;
    }
    if (!shard_batcher(&train, &d.train, o->batch, lo.bptt, "ptb.train.txt") ||
        !shard_batcher(&valid, &d.valid, o->batch, lo.bptt, "ptb.valid.txt") ||
        !shard_batcher(&test, &d.test, o->batch, lo.bptt, "ptb.test.txt"))
        goto fail;
    if (!m && !(m = lm_create(&lo, &d.vocab))) goto fail;
    int32_t offset, count;
    shard_of(o->batch, &offset, &count);
    if (!ok(sdlstm_set_num_threads(m, o->threads), "sdlstm_set_num_threads") ||
        !ok(sdlstm_set_batch_shard(m, offset, o->batch), "sdlstm_set_batch_shard") ||
        !ok(sdlstm_set_gradient_reducer(m, allreduce, &red), "sdlstm_set_gradient_reducer"))
        goto fail;
    int64_t params = 0;
    if (!ok(sdlstm_get_parameter_count(m, &params), "sdlstm_get_parameter_count")) goto fail;
    fprintf(stderr,
            "lm-mpi: %d ranks, global batch %d streams (rank 0: %d), %d threads per rank; %d x %d LSTM, %" PRId64
            " parameters; policy %s p_nr %g p_rh %g\n",
            ranks, o->batch, count, o->threads, o->layers, o->hidden, params, policy_name(o), o->p_nr, o->p_rh);

    train_totals tot = {0};
    double valid_ppl = NAN, test_ppl = NAN;
    int32_t last_epoch = (int32_t)start_epoch;
    for (int32_t e = last_epoch + 1; e <= start_epoch + o->epochs; e++) {
        double lr = scheduled_lr(o, e);
        if (!ok(sdlstm_set_epoch(m, e), "sdlstm_set_epoch") || !lm_train_epoch(m, &train, &lo, e, lr, &tot) ||
            !evaluate_all(m, &valid, &valid_ppl))
            goto fail;
        fprintf(stderr, "epoch %d  train ppl %.2f  valid ppl %.2f\n", e, ppl_of(tot.last_epoch_loss, tot.last_epoch_tokens),
                valid_ppl);
        if (rank == 0) save_checkpoint(m, o->save_path, &save_failures);
        last_epoch = e;
    }
    if (o->epochs == 0 && !evaluate_all(m, &valid, &valid_ppl)) goto fail;
    if (!evaluate_all(m, &test, &test_ppl)) goto fail;
    fprintf(stderr, "test ppl %.2f; reduction %.1f s, waiting %.1f s of %.1f s of steps\n", test_ppl, red.reduce_seconds,
            red.wait_seconds, tot.seconds);
    if (rank == 0) save_checkpoint(m, o->save_path, &save_failures);
    json_begin(stdout, "lm");
    json_training(stdout, o, &tot);
    json_int(stdout, "bptt", lo.bptt);
    json_int(stdout, "vocab", d.vocab.size);
    json_int(stdout, "epoch", last_epoch);
    json_int(stdout, "ranks", ranks);
    json_number(stdout, "reduce_seconds", red.reduce_seconds);
    json_number(stdout, "wait_seconds", red.wait_seconds);
    json_number(stdout, "train_ppl", ppl_of(tot.last_epoch_loss, tot.last_epoch_tokens));
    json_number(stdout, "valid_ppl", valid_ppl);
    json_number(stdout, "test_ppl", test_ppl);
    json_number(stdout, "seconds", now_s() - t0);
    json_end(stdout, &rt);
    if (red.loss_log) fclose(red.loss_log);
    sdlstm_model_free(m);
    batcher_free(&train);
    batcher_free(&valid);
    batcher_free(&test);
    dataset_free(&d);
    MPI_Finalize();
    return save_failures > 0;
fail:
    /* The other ranks may be inside a collective already: end them all. */
    fprintf(stderr, "lm-mpi: rank %d failed\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
    return 1;
}
