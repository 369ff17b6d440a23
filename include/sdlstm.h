/*
 * sdlstm — LSTM training with structured dropout, as a C library.
 *
 * Structured dropout (the paper's "case III") draws one keep set per time step and shares it
 * across the mini-batch, so whole columns of the masked activations are zero and the GEMMs that
 * consume them can skip that share of their work.
 *
 * Conventions
 * - Every fallible call returns an sdlstm_status. On failure the model is unchanged and
 *   sdlstm_last_error() describes what went wrong on this thread.
 * - Structs that cross the ABI begin with `struct_size`: set it to sizeof(the struct) before
 *   passing one in, e.g. `sdlstm_config cfg = {.struct_size = sizeof cfg};` in C (in C++:
 *   `sdlstm_config cfg{}; cfg.struct_size = sizeof cfg;`). The library reads and
 *   writes only the first struct_size bytes, so a program built against an older header keeps
 *   working with a newer library; a size below this first version's is SDLSTM_E_INVALID.
 * - Token ids are int32, batches are batch-major: element [b][t] is at index b * seq_len + t.
 * - A model handle may be used by one thread at a time; different models are independent: models
 *   computing at once in different threads give bit for bit what each gives alone.
 */
#ifndef SDLSTM_H
#define SDLSTM_H

#include <stddef.h>
#include <stdint.h>

/* The version of this header; sdlstm_version_number() gives the library's. The three numbers are the
 * only place the version is written: the library, the Makefile and the pkg-config and CMake files
 * read them from here. docs/ABI.md says what each number promises. */
#define SDLSTM_VERSION_MAJOR 0
#define SDLSTM_VERSION_MINOR 2
#define SDLSTM_VERSION_PATCH 0
#define SDLSTM_VERSION_NUMBER (SDLSTM_VERSION_MAJOR * 10000 + SDLSTM_VERSION_MINOR * 100 + SDLSTM_VERSION_PATCH)

#ifdef __cplusplus
extern "C" {
#endif

/* Result of every fallible call. */
typedef enum sdlstm_status {
    SDLSTM_OK = 0,
    SDLSTM_E_INVALID = 1,  /* a NULL pointer, a size or id out of range, a bad enum value */
    SDLSTM_E_NOMEM = 2,    /* an allocation failed */
    SDLSTM_E_IO = 3,       /* a file could not be read or written */
    SDLSTM_E_FORMAT = 4,   /* a file is not what it claims to be */
    SDLSTM_E_NUMERIC = 5,  /* a non-finite loss or gradient (the update was skipped), or decoding scores */
    SDLSTM_E_STATE = 6     /* the call does not fit the model's current state */
} sdlstm_status;

/* What the model learns. */
typedef enum sdlstm_task {
    SDLSTM_TASK_LANGUAGE_MODEL = 1,  /* embedding -> stacked LSTM -> linear -> softmax */
    SDLSTM_TASK_SEQ2SEQ = 2,         /* LSTM encoder-decoder, Luong global attention, input feeding */
    SDLSTM_TASK_TAGGER = 3           /* (character BiLSTM +) word BiLSTM -> linear (-> CRF) */
} sdlstm_task;

/* Where a dropout mask is applied. */
typedef enum sdlstm_site {
    SDLSTM_SITE_INPUT = 0,     /* the embedding output entering the first LSTM layer */
    SDLSTM_SITE_BETWEEN = 1,   /* a layer's output entering the next layer (needs >= 2 layers) */
    SDLSTM_SITE_OUTPUT = 2,    /* the top layer's output entering the output projection */
    SDLSTM_SITE_RECURRENT = 3  /* H(t-1) entering the recurrent weights, every layer */
} sdlstm_site;

/* How a dropout mask is drawn (the paper's 2 x 2 framework). */
typedef enum sdlstm_policy {
    SDLSTM_POLICY_NONE = 0,
    SDLSTM_POLICY_VARIATIONAL = 1,      /* case I: per sample, one mask for the whole window */
    SDLSTM_POLICY_STANDARD = 2,         /* case II: per sample, a new mask every time step */
    SDLSTM_POLICY_STRUCTURED = 3,       /* case III: shared by the batch, new every time step */
    SDLSTM_POLICY_STRUCTURED_FIXED = 4  /* case IV: shared by the batch, one for the window */
} sdlstm_policy;

/* The update rule. */
typedef enum sdlstm_optimizer {
    SDLSTM_OPTIMIZER_SGD = 1  /* plain stochastic gradient descent */
} sdlstm_optimizer;

/* The architecture of a model; fill it with sdlstm_config_init, then change what you need. */
typedef struct sdlstm_config {
    size_t struct_size;    /* sizeof(sdlstm_config) */
    sdlstm_task task;
    int32_t vocab_size;    /* input and output vocabulary (LM: 10000 for PTB) */
    int32_t embed_size;    /* width of the embedding */
    int32_t hidden_size;   /* width of every LSTM layer */
    int32_t num_layers;    /* stacked LSTM layers, >= 1 */
    float init_scale;      /* parameters start uniform in [-init_scale, init_scale] */
    uint64_t seed;         /* seeds the initialisation and the dropout masks */
    /* SDLSTM_TASK_SEQ2SEQ: vocab_size is the source vocabulary. */
    int32_t target_vocab_size;
    int32_t bidirectional;     /* 1: the encoder reads both ways, hidden_size / 2 per direction */
    int32_t input_feeding;     /* 1: the attentional vector joins the next decoder input */
    /* SDLSTM_TASK_TAGGER: vocab_size is the word vocabulary; the word LSTM is bidirectional,
     * hidden_size / 2 per direction. */
    int32_t num_tags;
    int32_t char_vocab_size;   /* 0: no character features */
    int32_t char_embed_size;
    int32_t char_hidden_size;  /* both directions of the character BiLSTM together */
    int32_t use_crf;           /* 1: linear-chain CRF loss and Viterbi decoding */
} sdlstm_config;

/* One mini-batch of ids, batch-major. The LM predicts targets[i] from inputs[0..i]. */
typedef struct sdlstm_batch {
    size_t struct_size;      /* sizeof(sdlstm_batch) */
    int32_t batch_size;      /* B >= 1 */
    int32_t seq_len;         /* T >= 1: the LM's truncated-BPTT window, the source or sentence length */
    const int32_t *inputs;   /* B * T ids in [0, vocab_size) */
    const int32_t *targets;  /* LM: B * T next-token ids; tagger: B * T tag ids; seq2seq: see below */
    const int32_t *lengths;  /* seq2seq, tagger: B row lengths in [1, T]; NULL: all T */
    /* SDLSTM_TASK_SEQ2SEQ: targets is B * target_len target-side ids. */
    int32_t target_len;
    const int32_t *target_lengths;  /* B lengths in [1, target_len]; NULL: all target_len */
    /* SDLSTM_TASK_TAGGER with character features: W characters per word, 0-padded. */
    int32_t max_word_len;           /* W */
    const int32_t *chars;           /* B * T * W ids; word (b, t) starts at (b * T + t) * W */
    const int32_t *word_lengths;    /* B * T character counts in [1, W] */
} sdlstm_batch;

/* What a step or an evaluation measured. */
typedef struct sdlstm_stats {
    size_t struct_size;            /* sizeof(sdlstm_stats) */
    double loss;                   /* mean cross-entropy per target token (nats) */
    int64_t tokens;                /* target tokens in the batch */
    double grad_norm;              /* global L2 norm of the gradient before clipping (step only) */
    double skipped_macs_fraction;  /* share of the GEMM multiply-adds that structured masks removed */
} sdlstm_stats;

/* Opaque model handle. */
typedef struct sdlstm_model sdlstm_model;

/* The library version, "MAJOR.MINOR.PATCH". Never NULL. */
const char *sdlstm_version(void);

/* The library version as SDLSTM_VERSION_NUMBER computes it, e.g. 200 for 0.2.0: compare it with the
 * header's to detect a library older than the program was built against. */
int32_t sdlstm_version_number(void);

/* The message of the last failed call on this thread ("" if none yet; a successful call leaves it).
 * Valid until the next failing call on this thread. */
const char *sdlstm_last_error(void);

/* A short constant name for a status code, e.g. "SDLSTM_E_INVALID". Never NULL. */
const char *sdlstm_status_name(sdlstm_status status);

/* What this process computes with: sdlstm's own kernels and the BLAS under it. The environment is
 * read once per process:
 * - SDLSTM_ISA=avx512|avx2|portable chooses sdlstm's kernel set (default: the CPU's best) at the
 *   first model (created or loaded) or sdlstm_get_runtime_info; a set the CPU lacks, or another
 *   word, makes both fail with SDLSTM_E_INVALID from then on.
 * - When blas_core_generic is 1, the first model warns once on stderr, naming the OPENBLAS_CORETYPE
 *   to set before the program starts (the library never sets it); SDLSTM_QUIET_BLAS_WARNING=1
 *   silences the warning. */
typedef struct sdlstm_runtime_info {
    size_t struct_size;        /* sizeof(sdlstm_runtime_info) */
    const char *kernel_isa;    /* "avx512", "avx2" or "portable": the kernels sdlstm runs (SDLSTM_ISA may lower it) */
    const char *cpu_isa;       /* the best set this CPU has */
    const char *cpu_model;     /* /proc/cpuinfo model name, or "unknown" */
    const char *blas_name;     /* "OpenBLAS" */
    const char *blas_version;  /* e.g. "0.3.21" */
    const char *blas_core;     /* the kernels OpenBLAS chose, e.g. "Cooperlake", "Haswell", "Prescott" */
    int32_t blas_threads;      /* OpenBLAS's process-wide thread count: 1, set once (sdlstm_set_num_threads), unless the host changed it since */
    int32_t blas_core_generic; /* 1: OpenBLAS runs a generic core on a CPU that has AVX2 or AVX-512 (slow dense GEMMs) */
} sdlstm_runtime_info;

/* Fills info (up to info->struct_size bytes); the strings are static and live as long as the library. */
sdlstm_status sdlstm_get_runtime_info(sdlstm_runtime_info *info);

/* Fills cfg (whose struct_size you set) with the defaults for task.
 * LM: PTB medium, vocab 10000, embedding 650, 2 layers x 650, init 0.05, seed 1. */
sdlstm_status sdlstm_config_init(sdlstm_config *cfg, sdlstm_task task);

/* Creates a model with freshly initialised parameters, no dropout, SGD with learning rate 1, no
 * clipping, and a zero carried state that takes its batch size from the first batch. A bad
 * SDLSTM_ISA (see sdlstm_runtime_info) is SDLSTM_E_INVALID. */
sdlstm_status sdlstm_model_create(const sdlstm_config *cfg, sdlstm_model **out);

/* Frees a model and everything it owns. NULL is ignored. */
void sdlstm_model_free(sdlstm_model *model);

/* Copies the model's architecture into cfg (up to cfg->struct_size bytes). */
sdlstm_status sdlstm_get_config(const sdlstm_model *model, sdlstm_config *cfg);

/* The number of trainable scalars. */
sdlstm_status sdlstm_get_parameter_count(const sdlstm_model *model, int64_t *out);

/* Sets the dropout policy and drop probability p in [0, 1) of one site; p = 0 or NONE turns it off.
 * A real policy on a site the model lacks (BETWEEN with one layer) is SDLSTM_E_INVALID. */
sdlstm_status sdlstm_set_dropout(sdlstm_model *model, sdlstm_site site, sdlstm_policy policy, float p);

/* Chooses the update rule. */
sdlstm_status sdlstm_set_optimizer(sdlstm_model *model, sdlstm_optimizer optimizer);

/* Sets the finite learning rate (> 0) used by the next steps. The gradient is that of the mean token loss. */
sdlstm_status sdlstm_set_learning_rate(sdlstm_model *model, float learning_rate);

/* Rescales the gradient to a global L2 norm of at most max_norm; 0 turns clipping off. */
sdlstm_status sdlstm_set_clip_norm(sdlstm_model *model, float max_norm);

/* Threads used by this model's calls, 1 to 256. Results depend on this count, never on how many
 * workers run: workers beyond the CPUs the process may run on are not started, and if some cannot
 * be created the others do their share. Default: SDLSTM_NUM_THREADS (read once per process; any other value
 * than 1 to 256 warns once on stderr and means 1, or 256 above it), else 1. BLAS: the first model
 * (or sdlstm_get_runtime_info) sets OpenBLAS's process-wide thread count to 1, once, and runs the
 * BLAS calls on its own threads; a host that changes that count later can change results in the
 * last bit. */
sdlstm_status sdlstm_set_num_threads(sdlstm_model *model, int32_t threads);

/* Restarts the dropout random stream from seed. */
sdlstm_status sdlstm_set_seed(sdlstm_model *model, uint64_t seed);

/* One training step (stats may be NULL): forward, backward, clip, update. The LM carries its hidden state from the
 * previous step (truncated BPTT). On SDLSTM_E_NUMERIC nothing changed, carried state included.
 * SDLSTM_E_STATE once progress.step has reached 2^53, the most steps a model counts. */
sdlstm_status sdlstm_step(sdlstm_model *model, const sdlstm_batch *batch, sdlstm_stats *stats);

/* Loss without dropout and without an update (stats may be NULL); the LM carries its hidden state
 * as in a step. A non-finite loss is SDLSTM_E_NUMERIC and leaves the carried state as it was. */
sdlstm_status sdlstm_evaluate(sdlstm_model *model, const sdlstm_batch *batch, sdlstm_stats *stats);

/* Zeroes the carried hidden state, e.g. at the start of an epoch or before evaluating. A batch
 * whose size differs from the carried state's fails with SDLSTM_E_STATE until this is called. */
sdlstm_status sdlstm_reset_state(sdlstm_model *model);

/* ---- Using a trained language model ---- */

/* Recurrent state for applying a SDLSTM_TASK_LANGUAGE_MODEL to text: `streams` independent token
 * streams, each starting from a zero state. It is separate from the carried state of training and
 * evaluation, which inference never touches; none of the calls below changes the model. */
typedef struct sdlstm_lm_state sdlstm_lm_state;

/* Creates a state of streams >= 1 zeroed streams for model (a language model; any other task is
 * SDLSTM_E_INVALID), which must outlive it. */
sdlstm_status sdlstm_lm_state_create(const sdlstm_model *model, int32_t streams, sdlstm_lm_state **out);

/* Frees a state. NULL is ignored. */
void sdlstm_lm_state_free(sdlstm_lm_state *state);

/* Zeroes every stream of state. */
sdlstm_status sdlstm_lm_state_reset(sdlstm_lm_state *state);

/* Reads one token per stream (tokens: one id per stream in [0, vocab_size)), advances state, and
 * writes the natural-log probabilities of the next token: streams * vocab_size floats, stream-major
 * (log_probs[s * vocab_size + v]). No dropout. A state created for another model is
 * SDLSTM_E_INVALID; a non-finite log-probability (a diverged model) is SDLSTM_E_NUMERIC. On failure
 * neither state nor log_probs changes. */
sdlstm_status sdlstm_lm_next(sdlstm_model *model, sdlstm_lm_state *state, const int32_t *tokens,
                             float *log_probs);

/* Scores tokens[0 .. n-1] (n >= 2) from a zero state: *log_prob receives the sum over i >= 1 of
 * log P(tokens[i] | tokens[0 .. i-1]) (nats, n - 1 predictions; tokens[0] is the context, e.g.
 * <eos>), and token_log_probs (n - 1 values, may be NULL) each term. The mean -*log_prob / (n - 1) is
 * the loss sdlstm_evaluate reports for the same tokens as one stream from a reset state. A
 * non-finite log-probability (a diverged model) is SDLSTM_E_NUMERIC, and *log_prob is then not written. */
sdlstm_status sdlstm_lm_score(sdlstm_model *model, const int32_t *tokens, int64_t n, double *log_prob,
                              float *token_log_probs);

/* How sdlstm_lm_generate samples. */
typedef struct sdlstm_generate_options {
    size_t struct_size;   /* sizeof(sdlstm_generate_options) */
    float temperature;    /* > 0 divides the logits (1: the model's distribution); 0: always the most likely token (of equals, the lowest id) */
    int32_t top_k;        /* 0: sample from every token; k >= 1: from the k most likely (of equals, the lowest ids) */
    uint64_t seed;        /* the sampling stream: the same model, prompt, options and seed give the same tokens */
    int32_t stop_id;      /* generation ends once this id is emitted (it is written); -1: only max_tokens ends it */
} sdlstm_generate_options;

/* Fills options (whose struct_size you set) with temperature 1, top_k 0, seed 1, stop_id -1. */
sdlstm_status sdlstm_generate_options_init(sdlstm_generate_options *options);

/* Feeds prompt (prompt_len >= 1 ids) from a zero state, then samples up to max_tokens >= 1 ids into
 * out; *count receives how many were written. options NULL: the defaults of
 * sdlstm_generate_options_init. A non-finite log-probability (a diverged model) is SDLSTM_E_NUMERIC;
 * on failure *count is not written. */
sdlstm_status sdlstm_lm_generate(sdlstm_model *model, const int32_t *prompt, int64_t prompt_len,
                                 const sdlstm_generate_options *options, int32_t *out, int64_t max_tokens,
                                 int64_t *count);

/* ---- Sequence labelling ---- */

/* SDLSTM_TASK_TAGGER reads a batch as B sentences right-padded to T = seq_len words:
 * - inputs: B * T word ids in [0, vocab_size); targets: B * T tag ids in [0, num_tags), batch-major.
 * - lengths: B sentence lengths in [1, T] (NULL: all T). Only positions t < lengths[b] are read;
 *   padded positions may hold anything and take no part in the loss, the CRF, the gradients or the
 *   decoded tags.
 * - With character features (char_vocab_size > 0): chars holds B * T * max_word_len ids in
 *   [0, char_vocab_size), word (b, t) starting at (b * T + t) * max_word_len, and word_lengths the
 *   B * T character counts in [1, max_word_len]; characters past a word's length are not read.
 * stats.loss is the mean over the real words of the sentence losses (CRF: -log P(gold tags)),
 * stats.tokens the number of real words. Defaults (sdlstm_config_init): CoNLL-2003 NER after
 * Lample et al. 2016, word embedding 100, 1 BiLSTM layer of 100 + 100, character embedding 25 and
 * character BiLSTM 25 + 25, CRF on, 9 tags, init 0.1; set vocab_size and char_vocab_size. */

/* How tag names mark spans; a name splits at its first '-' into prefix and type ("B-PER"). */
typedef enum sdlstm_tag_scheme {
    SDLSTM_TAG_SCHEME_NONE = 0,  /* no constraints */
    SDLSTM_TAG_SCHEME_IOB1 = 1,  /* B-X only directly after B-X or I-X, never first */
    SDLSTM_TAG_SCHEME_IOB2 = 2   /* I-X only directly after B-X or I-X, never first */
} sdlstm_tag_scheme;

/* Names a tagger's num_tags tags (names[i] is tag id i, e.g. "O", "B-PER", "I-PER") and makes its
 * CRF forbid the transitions the scheme rules out, in the loss and in decoding; from then on a batch
 * whose gold tags break the scheme is SDLSTM_E_INVALID. The names are copied. Without a CRF the
 * scheme changes nothing. A model that is not a tagger is SDLSTM_E_INVALID. */
sdlstm_status sdlstm_set_tag_names(sdlstm_model *model, const char *const *names, int32_t count,
                                   sdlstm_tag_scheme scheme);

/* Copies out the tag names and scheme of sdlstm_set_tag_names (a checkpoint keeps both): *names
 * receives one malloc'd block as sdlstm_get_strings gives it, *count strings plus a final NULL (free
 * it with sdlstm_free), *count is num_tags and *scheme the scheme (scheme may be NULL). A tagger whose
 * tags were never named gives SDLSTM_OK with *names = NULL, *count = 0, *scheme = NONE. A model that
 * is not a tagger is SDLSTM_E_INVALID. */
sdlstm_status sdlstm_get_tag_names(const sdlstm_model *model, char ***names, int32_t *count,
                                   sdlstm_tag_scheme *scheme);

/* Writes the best tag sequence of each sentence of batch (targets is not read and may be NULL) to
 * tags, B * T ids batch-major: Viterbi with a CRF, the best tag per word without; padded positions
 * get -1. No dropout, no update. Non-finite tag scores or CRF parameters (a diverged model) are
 * SDLSTM_E_NUMERIC, and tags is then not written. */
sdlstm_status sdlstm_tag(sdlstm_model *model, const sdlstm_batch *batch, int32_t *tags);

/* Span counts and scores as conlleval computes them; the scores are fractions in [0, 1]. */
typedef struct sdlstm_span_scores {
    size_t struct_size;       /* sizeof(sdlstm_span_scores) */
    int64_t gold_spans;       /* spans in the gold tags */
    int64_t predicted_spans;  /* spans in the predicted tags */
    int64_t correct_spans;    /* predicted spans with a gold span's first token, last token and type */
    double precision;         /* correct / predicted (0 if none predicted) */
    double recall;            /* correct / gold (0 if no gold span) */
    double f1;                /* 2 * precision * recall / (precision + recall) (0 if both are 0) */
    int64_t tokens;           /* overall only (0 per type): tokens counted */
    int64_t correct_tags;     /* overall only (0 per type): tokens whose two tags are equal */
} sdlstm_span_scores;

/* Accumulates span counts over sentences of tag ids, exactly as the CoNLL script conlleval counts
 * them (the same rules read IOB1 and IOB2). Independent of any model. */
typedef struct sdlstm_span_f1 sdlstm_span_f1;

/* Creates a counter for tags named names[0 .. num_tags-1] (copied). Its entity types are the
 * distinct non-empty parts after the first '-' of the names, sorted (conlleval's report order). */
sdlstm_status sdlstm_span_f1_create(const char *const *names, int32_t num_tags, sdlstm_span_f1 **out);

/* Frees a counter. NULL is ignored. */
void sdlstm_span_f1_free(sdlstm_span_f1 *f1);

/* Adds batch_size sentences of gold and predicted tag ids, batch-major with seq_len columns as in a
 * batch; sentence b is its first lengths[b] positions (lengths NULL: all seq_len). Each sentence ends
 * as at a blank line of conlleval's input. On failure nothing is counted. */
sdlstm_status sdlstm_span_f1_add(sdlstm_span_f1 *f1, const int32_t *gold, const int32_t *predicted,
                                 int32_t batch_size, int32_t seq_len, const int32_t *lengths);

/* The number of entity types. */
sdlstm_status sdlstm_span_f1_get_type_count(const sdlstm_span_f1 *f1, int32_t *out);

/* The name of entity type i in [0, type_count); valid while the counter lives. */
sdlstm_status sdlstm_span_f1_get_type_name(const sdlstm_span_f1 *f1, int32_t type, const char **out);

/* The scores of entity type i in [0, type_count), or over all types for type = -1 (up to
 * out->struct_size bytes). */
sdlstm_status sdlstm_span_f1_get_scores(const sdlstm_span_f1 *f1, int32_t type, sdlstm_span_scores *out);

/* ---- Translation ---- */

/* SDLSTM_TASK_SEQ2SEQ reads a batch as B sentence pairs, each side right-padded:
 * - inputs: B * seq_len source ids in [0, vocab_size), lengths: B source lengths in [1, seq_len].
 * - targets: B * target_len target ids in [0, target_vocab_size), target_lengths: B lengths in
 *   [2, target_len]. A target row holds the whole sentence with its markers, <bos> y_1 … y_n <eos>
 *   (n + 2 ids): the decoder reads ids 0 … n and learns to predict ids 1 … n + 1 (teacher forcing).
 * Padded positions may hold anything and take no part in the loss, the attention, the encoder's
 * final states or the gradients. stats.loss is the mean over the predicted target tokens (n + 1 per
 * sentence), stats.tokens their number.
 * The model (OpenNMT-py's RNN defaults): source embedding -> num_layers LSTM layers (bidirectional:
 * hidden_size / 2 per direction); the decoder starts from the encoder's final states, reads the
 * target embedding (joined by the previous attentional vector with input_feeding) through
 * num_layers LSTM layers, attends to the encoder's top outputs with Luong's "general" score and
 * emits h~ = tanh(W_c [context; h]) to the generator (linear + softmax over the target vocabulary).
 * Dropout sites: INPUT = both embeddings (the decoder's whole first-layer input with input
 * feeding), BETWEEN = between stacked layers of both, OUTPUT = h~ entering the generator,
 * RECURRENT = H(t-1) of every encoder and decoder layer. Defaults (sdlstm_config_init): vocabularies
 * of 10000, embedding 500, 2 layers x 500, bidirectional encoder, input feeding, init 0.1. */

/* How sdlstm_translate decodes. */
typedef struct sdlstm_decode_options {
    size_t struct_size;    /* sizeof(sdlstm_decode_options) */
    int32_t bos_id;        /* the target id the decoder starts from */
    int32_t eos_id;        /* the target id that ends a hypothesis */
    int32_t beam_size;     /* 1: greedy; k > 1: beam search keeping k hypotheses per sentence */
    int32_t max_len;       /* most target tokens per sentence, <eos> not counted, >= 1 */
    float length_penalty;  /* alpha >= 0: hypotheses rank by log P / (tokens + 1)^alpha; 0 = raw log P */
} sdlstm_decode_options;

/* Fills options (whose struct_size you set) with bos_id -1 and eos_id -1 (set both: they are the
 * target vocabulary's markers), beam_size 5, max_len 100, length_penalty 0. */
sdlstm_status sdlstm_decode_options_init(sdlstm_decode_options *options);

/* Translates the B source sentences of sources (inputs, lengths, seq_len; targets not read, may be
 * NULL). tokens receives B * max_len target ids, batch-major, each row the best hypothesis without
 * <bos> and <eos>, padded with -1; lengths (B) their token counts; scores (B, may be NULL) their
 * log-probability under the model, <eos> included (a hypothesis reaching max_len tokens is ended
 * there with <eos>).
 * No dropout, no update; the model is not changed. A NaN log-probability (a diverged model) is
 * SDLSTM_E_NUMERIC, and tokens, lengths and scores are then not written. */
sdlstm_status sdlstm_translate(sdlstm_model *model, const sdlstm_batch *sources, const sdlstm_decode_options *options,
                               int32_t *tokens, int32_t *lengths, double *scores);

/* Corpus BLEU as sacreBLEU computes it by default: 4-gram precisions clipped against one reference
 * per sentence, summed over the corpus, geometric mean with the brevity penalty, "exp" smoothing
 * of empty n-gram orders, after sacreBLEU's "13a" tokenisation (the mteval-v13a rules). */
typedef struct sdlstm_bleu_options {
    size_t struct_size;  /* sizeof(sdlstm_bleu_options) */
    int32_t lowercase;   /* 1: compare case-insensitively (sacreBLEU's -lc) */
    int32_t tokenize;    /* 1: 13a tokenisation (the default); 0: split on whitespace only */
} sdlstm_bleu_options;

/* Fills options (whose struct_size you set) with lowercase 0, tokenize 1. */
sdlstm_status sdlstm_bleu_options_init(sdlstm_bleu_options *options);

/* A BLEU score and its parts. */
typedef struct sdlstm_bleu_scores {
    size_t struct_size;       /* sizeof(sdlstm_bleu_scores) */
    double bleu;              /* 0 … 100, as sacreBLEU prints it */
    double precisions[4];     /* n-gram precisions, 0 … 100 */
    double brevity_penalty;   /* min(1, exp(1 - ref_len / hyp_len)) */
    double length_ratio;      /* hyp_len / ref_len */
    int64_t hyp_len;          /* tokens in the hypotheses */
    int64_t ref_len;          /* tokens in the references */
} sdlstm_bleu_scores;

/* Scores n UTF-8 hypotheses against n references (hypotheses[i] translates the sentence whose
 * reference is references[i]); options NULL: 13a, case-sensitive. Independent of any model. */
sdlstm_status sdlstm_bleu(const char *const *hypotheses, const char *const *references, int64_t n,
                          const sdlstm_bleu_options *options, sdlstm_bleu_scores *out);

/* ---- Checkpoints and metadata ---- */

/* Checkpoints are HDF5 files that other tools read without sdlstm: one float32 dataset per parameter,
 * named and shaped as PyTorch names them ("embedding.weight", "rnn.weight_ih_l0" of 4H x D, gate order
 * i, f, g, o), the config as root attributes, then the training state (optimizer, progress, dropout,
 * random stream), a tagger's tag names and scheme, attached string tables and metadata.
 * docs/CHECKPOINT.md describes the layout.
 * A save is atomic: a temporary file in the same directory, fsync'd and renamed over the target, so a
 * process killed at any point leaves the previous checkpoint intact. A load validates the whole file
 * and builds a new model; a model loaded from a checkpoint of another model's state trains on exactly
 * as that model would (bit-identical parameters with the same thread count). The thread count itself
 * belongs to the process: a loaded model uses the default of sdlstm_model_create.
 * Memory the library returns (strings, string tables) is malloc'd: free it with sdlstm_free. */

/* Flags of sdlstm_save, or'ed together. */
typedef enum sdlstm_save_flags {
    SDLSTM_SAVE_DEFAULT = 0,
    SDLSTM_SAVE_CARRIED_STATE = 1  /* also save the carried state (LM: h and c), which a load restores */
} sdlstm_save_flags;

/* Where training stands; saved with the model. */
typedef struct sdlstm_progress {
    size_t struct_size;    /* sizeof(sdlstm_progress) */
    int64_t step;          /* updates sdlstm_step applied over the model's life (a loaded model continues) */
    int64_t epoch;         /* the caller's epoch counter, set with sdlstm_set_epoch; 0 at creation */
    int64_t epoch_step;    /* updates since the last sdlstm_set_epoch */
    float learning_rate;   /* the learning rate of the next step */
    float clip_norm;       /* the gradient clipping norm, 0 = off */
} sdlstm_progress;

/* Saves the model to path (flags: sdlstm_save_flags), replacing any file there atomically. The
 * model is not changed. SDLSTM_E_IO if the file cannot be written (the previous one is then kept),
 * and if path names something other than a regular file (a FIFO, a device, a directory), which is
 * left as it is. */
sdlstm_status sdlstm_save(const sdlstm_model *model, const char *path, uint32_t flags);

/* Loads the checkpoint at path into a new model in *out (free it with sdlstm_model_free): parameters,
 * config, optimizer settings, progress, dropout, random stream, a tagger's tag names and scheme,
 * string tables, metadata, and the carried state if it was saved (else it is zero). SDLSTM_E_IO: missing or unreadable file,
 * or not a regular file (a FIFO is refused, not waited on); SDLSTM_E_FORMAT: anything wrong inside it (progress
 * counters above 2^53 included), named in sdlstm_last_error(). *out is set only on success. */
sdlstm_status sdlstm_load(const char *path, sdlstm_model **out);

/* Sets the epoch counter (0 to 2^53) and restarts progress.epoch_step at 0; call it as each epoch begins. */
sdlstm_status sdlstm_set_epoch(sdlstm_model *model, int64_t epoch);

/* Copies the model's progress into out (up to out->struct_size bytes). */
sdlstm_status sdlstm_get_progress(const sdlstm_model *model, sdlstm_progress *out);

/* Attaches the table of n UTF-8 strings (e.g. a vocabulary, id -> word) under name, replacing any
 * table of that name; the library copies the strings. n = 0 removes the table (strings may be NULL).
 * Names: 1 to 128 characters of A-Z a-z 0-9 _ . - ; the table is saved and loaded with the model. */
sdlstm_status sdlstm_set_strings(sdlstm_model *model, const char *name, const char *const *strings, int64_t n);

/* Copies the table name out: *out receives one malloc'd block, an array of *n string pointers plus a
 * final NULL, the strings inside the same block; free it with sdlstm_free. A missing table gives
 * SDLSTM_OK with *out = NULL and *n = 0. */
sdlstm_status sdlstm_get_strings(const sdlstm_model *model, const char *name, char ***out, int64_t *n);

/* Sets metadata key (same rule as table names) to the UTF-8 string value (at most 65536 bytes,
 * copied); value NULL removes the key. Saved and loaded with the model. */
sdlstm_status sdlstm_set_metadata(sdlstm_model *model, const char *key, const char *value);

/* Copies the value of key into a malloc'd string *out (free it with sdlstm_free); a missing key gives
 * SDLSTM_OK with *out = NULL. */
sdlstm_status sdlstm_get_metadata(const sdlstm_model *model, const char *key, char **out);

/* Frees memory the library returned (sdlstm_get_strings, sdlstm_get_metadata). NULL is ignored. */
void sdlstm_free(void *p);

#ifdef __cplusplus
}
#endif

#endif /* SDLSTM_H */
