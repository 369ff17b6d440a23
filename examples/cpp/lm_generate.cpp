// A C++17 client of the installed C library: train a small language model on a sentence that repeats,
// save it, load the checkpoint into a new model (its vocabulary comes from the file), and generate
// text from a prompt with the loaded model. Exits 0 when the loaded model continues the sentence.
//
// Build: c++ -std=c++17 lm_generate.cpp $(pkg-config --cflags --libs sdlstm)   or CMakeLists.txt here.
// Run:   ./lm_generate [checkpoint path, default lm_generate.h5]
#include <sdlstm.h>

#include <cstdio>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Every failing call becomes an exception carrying the library's message.
void check(sdlstm_status status, const char *what) {
    if (status != SDLSTM_OK)
        throw std::runtime_error(std::string(what) + ": " + sdlstm_status_name(status) + ": " + sdlstm_last_error());
}

struct ModelDeleter { void operator()(sdlstm_model *m) const { sdlstm_model_free(m); } };
using Model = std::unique_ptr<sdlstm_model, ModelDeleter>;

// C++ has no designated initialisers before C++20: zero the struct, then give it its size.
template <class T> T sized() {
    T value{};
    value.struct_size = sizeof value;
    return value;
}

// Every word follows one word only, so the most likely continuation is the text itself.
const char *const kText = "the quick brown fox jumps over a lazy dog .";

}  // namespace

int main(int argc, char **argv) try {
    const std::string path = argc > 1 ? argv[1] : "lm_generate.h5";
    if (sdlstm_version_number() < SDLSTM_VERSION_NUMBER)
        throw std::runtime_error(std::string("libsdlstm ") + sdlstm_version() + " is older than this header");

    // The vocabulary: each distinct word of the text, in order of first appearance.
    std::vector<std::string> vocab;
    std::vector<int32_t> ids;
    std::istringstream words(kText);
    for (std::string w; words >> w;) {
        size_t id = 0;
        while (id < vocab.size() && vocab[id] != w) id++;
        if (id == vocab.size()) vocab.push_back(w);
        ids.push_back(static_cast<int32_t>(id));
    }

    {
        auto cfg = sized<sdlstm_config>();
        check(sdlstm_config_init(&cfg, SDLSTM_TASK_LANGUAGE_MODEL), "sdlstm_config_init");
        cfg.vocab_size = static_cast<int32_t>(vocab.size());
        cfg.embed_size = 16;
        cfg.hidden_size = 32;
        cfg.num_layers = 1;
        cfg.init_scale = 0.1f;
        sdlstm_model *raw = nullptr;
        check(sdlstm_model_create(&cfg, &raw), "sdlstm_model_create");
        Model model(raw);
        check(sdlstm_set_dropout(model.get(), SDLSTM_SITE_OUTPUT, SDLSTM_POLICY_STRUCTURED, 0.2f), "sdlstm_set_dropout");
        check(sdlstm_set_clip_norm(model.get(), 5.0f), "sdlstm_set_clip_norm");

        // One stream of the repeating text, in windows of 8 tokens.
        const int32_t seq = 8, n = static_cast<int32_t>(ids.size());
        std::vector<int32_t> inputs(seq), targets(seq);
        auto batch = sized<sdlstm_batch>();
        batch.batch_size = 1;
        batch.seq_len = seq;
        batch.inputs = inputs.data();
        batch.targets = targets.data();
        auto stats = sized<sdlstm_stats>();
        for (int32_t step = 0, pos = 0; step < 300; step++) {
            for (int32_t t = 0; t < seq; t++, pos++) {
                inputs[t] = ids[pos % n];
                targets[t] = ids[(pos + 1) % n];
            }
            check(sdlstm_step(model.get(), &batch, &stats), "sdlstm_step");
        }
        std::printf("trained: loss %.4f after 300 steps\n", stats.loss);

        std::vector<const char *> table;
        for (const auto &w : vocab) table.push_back(w.c_str());
        check(sdlstm_set_strings(model.get(), "vocab", table.data(), static_cast<int64_t>(table.size())), "sdlstm_set_strings");
        check(sdlstm_save(model.get(), path.c_str(), SDLSTM_SAVE_DEFAULT), "sdlstm_save");
    }

    // From here on only the checkpoint is used.
    sdlstm_model *raw = nullptr;
    check(sdlstm_load(path.c_str(), &raw), "sdlstm_load");
    Model model(raw);
    char **names = nullptr;
    int64_t count = 0;
    check(sdlstm_get_strings(model.get(), "vocab", &names, &count), "sdlstm_get_strings");
    std::unique_ptr<char *, void (*)(void *)> names_owner(names, sdlstm_free);

    auto options = sized<sdlstm_generate_options>();
    check(sdlstm_generate_options_init(&options), "sdlstm_generate_options_init");
    options.temperature = 0;  // the most likely word each time: the text it learnt
    const int32_t prompt[] = {ids[0], ids[1]};  // "the quick"
    std::vector<int32_t> out(12);
    int64_t written = 0;
    check(sdlstm_lm_generate(model.get(), prompt, 2, &options, out.data(), static_cast<int64_t>(out.size()), &written),
          "sdlstm_lm_generate");

    std::string text = std::string(names[prompt[0]]) + " " + names[prompt[1]];
    bool continues = true;
    for (int64_t i = 0; i < written; i++) {
        text += std::string(" ") + names[out[i]];
        continues = continues && out[i] == ids[(2 + i) % ids.size()];
    }
    std::printf("generated from the loaded checkpoint: %s\n", text.c_str());
    return continues ? 0 : 1;
} catch (const std::exception &e) {
    std::fprintf(stderr, "lm_generate: %s\n", e.what());
    return 1;
}
