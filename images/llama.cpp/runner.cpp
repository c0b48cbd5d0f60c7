// orchestrate-runner: llama.cpp's half of a CELL, in process.
//
// The runner kit (runner.py, images/_shared/runnerkit) does the contract: the job, the
// prompt's shape, the checks, this process's per-thread CPU time and peak memory, the
// perplexity windows and the RESULT. This program only runs llama.cpp for it, speaking
// the native-runner line protocol (docs/contract.md, "Native runners"): one JSON request a
// line on stdin, one answer a line on stdout, `@orchestrate {"event": <op>, ...}`, or
// `@orchestrate {"event": "error", "error": <reason>}`. Requests:
//   load        load the GGUF model (load_mode, kv_cache_type options)
//   tokenize    llama_tokenize(add_special=true, parse_special=false)
//   prepare     the context: n_ctx = positions, n_batch = batch, the load's threads, a threadpool
//   generate    `repetitions` greedy generations of gen_tokens after the prompt ids
//   perplexity  `repetitions` evaluations of the windows: each window's NLL sum
//   detokenize  llama_detokenize
//   quit        exit 0
//
// Timing (std::chrono::steady_clock) per generation, after clearing the KV cache:
//   t0          start of prefill (just before llama_decode of the whole prompt batch)
//   prefill_s   t0 -> llama_decode returned and the last position's logits are
//               readable (llama_get_logits_ith synchronizes the backend)
//   ttft_s      t0 -> greedy argmax over those logits done (first token id known)
//   itl[k]      time from token k known to token k+1 known: one llama_decode of
//               the previous token + logits readout + argmax
// Perplexity: each window from an empty KV cache in one llama_decode, logits only where a
// scored id is predicted, every scored id's NLL in double from the float logits; time_s of
// an evaluation covers all its windows (forward passes and scoring).

#include "llama.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <clocale>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#ifndef ORCHESTRATE_ENGINE_VERSION
#define ORCHESTRATE_ENGINE_VERSION "unknown"
#endif

using json = nlohmann::ordered_json;
using steady = std::chrono::steady_clock;

namespace {

bool g_verbose = false;

// llama.cpp / ggml log filter: warnings and errors only, unless ORCHESTRATE_VERBOSE=1.
// CONT lines continue the previous message's level. ggml's "loaded CPU backend from
// <path>" line says which CPU variant library the runtime dispatch chose.
std::string g_cpu_backend_path;

void llama_log_filter(enum ggml_log_level level, const char * text, void * /*user*/) {
    static enum ggml_log_level last = GGML_LOG_LEVEL_INFO;
    if (level != GGML_LOG_LEVEL_CONT) {
        last = level;
    }
    const char * loaded = std::strstr(text, "loaded CPU backend from ");
    if (loaded) {
        g_cpu_backend_path = loaded + std::strlen("loaded CPU backend from ");
        g_cpu_backend_path.erase(g_cpu_backend_path.find_last_not_of(" \n") + 1);
    }
    if (g_verbose || last == GGML_LOG_LEVEL_WARN || last == GGML_LOG_LEVEL_ERROR) {
        std::fputs(text, stderr);
    }
}

double seconds(steady::duration d) {
    return std::chrono::duration<double>(d).count();
}

// ---------------------------------------------------------------- tokens

std::vector<llama_token> tokenize(const llama_vocab * vocab, const std::string & text) {
    // add_special=true: BOS (if the model's vocab adds one); parse_special=false: plain text.
    int n = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), nullptr, 0, true, false);
    if (n == INT32_MIN) throw std::runtime_error("tokenize: overflow");
    if (n < 0) n = -n;
    std::vector<llama_token> ids(n);
    const int got = llama_tokenize(vocab, text.c_str(), (int32_t) text.size(), ids.data(), n, true, false);
    if (got < 0) throw std::runtime_error("tokenize: failed");
    ids.resize(got);
    return ids;
}

std::string detokenize(const llama_vocab * vocab, const std::vector<llama_token> & ids) {
    // remove_special=false, unparse_special=true: the text of exactly these ids, control tokens included.
    std::string text(ids.size() * 16 + 16, '\0');
    int n = llama_detokenize(vocab, ids.data(), (int32_t) ids.size(), text.data(), (int32_t) text.size(), false, true);
    if (n < 0) {
        text.resize(-n);
        n = llama_detokenize(vocab, ids.data(), (int32_t) ids.size(), text.data(), (int32_t) text.size(), false, true);
        if (n < 0) throw std::runtime_error("detokenize: failed");
    }
    text.resize(n);
    return text;
}

// The first index of the largest logit: the same answer as a scalar scan with '>' (for finite
// logits), in two passes the compiler vectorizes for any target: the largest value over 64
// independent lanes, then the first block of 64 that holds it. The image is built for any
// x86-64 CPU, so the function is compiled three times (AVX-512, AVX2, baseline) and the
// dynamic loader picks the widest this CPU has (GCC target_clones, an ifunc), as ggml picks
// its CPU variant. Choosing the token is harness time, not the engine's, so it is kept small
// (benchmarks/fidelity.py, "harness share"): a scalar scan was 2.7-2.9 % of a tinystories
// token on a Xeon; on a Zen 5 EPYC, one core, 32,000 logits, 16 lanes took 4.1 us and 64
// lanes (AVX-512) 1.0 us (49,152 logits: 10.3 -> 2.0 us).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx512f", "avx2", "default")))
#endif
__attribute__((optimize("no-signed-zeros", "finite-math-only")))
llama_token argmax(const float * logits, int n_vocab) {
    constexpr int lanes = 64;
    float best_v = logits[0];
    int i = 1;
    if (n_vocab >= 2 * lanes) {
        float lane[lanes];
        for (int j = 0; j < lanes; ++j) lane[j] = logits[j];
        for (i = lanes; i + lanes <= n_vocab; i += lanes) {
            for (int j = 0; j < lanes; ++j) lane[j] = logits[i + j] > lane[j] ? logits[i + j] : lane[j];
        }
        for (int j = 0; j < lanes; ++j) best_v = lane[j] > best_v ? lane[j] : best_v;
    }
    for (; i < n_vocab; ++i) best_v = logits[i] > best_v ? logits[i] : best_v;
    int k = 0;
    for (; k + lanes <= n_vocab; k += lanes) {  // which block of 64 holds it first
        int hit = 0;
        for (int j = 0; j < lanes; ++j) hit |= logits[k + j] == best_v;
        if (hit) break;
    }
    for (; k < n_vocab; ++k) {
        if (logits[k] == best_v) return k;
    }
    return 0;
}

void batch_fill(llama_batch & batch, const llama_token * tokens, int n, llama_pos pos0) {
    batch.n_tokens = n;
    for (int i = 0; i < n; ++i) {
        batch.token[i] = tokens[i];
        batch.pos[i] = pos0 + i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = (i == n - 1) ? 1 : 0;
    }
}

// ---------------------------------------------------------------- the engine

// The model, its context and the ggml threadpool attached to the context, with the
// parameters they were made with.
struct Engine {
    llama_model_params     mparams{};
    llama_context_params   cparams{};
    ggml_threadpool_params tpp{};
    llama_model *       model = nullptr;
    const llama_vocab * vocab = nullptr;
    llama_context *     ctx = nullptr;
    ggml_threadpool *   threadpool = nullptr;
    decltype(ggml_threadpool_free) * threadpool_free = nullptr;
    llama_batch         batch{};
    int                 batch_size = 0;  // ids one llama_decode takes (the prepared n_batch)
    int                 threads = 1;
    std::string         kv_cache_type = "f16";
    int                 n_vocab = 0;

    llama_context * context() const {
        if (!ctx) throw std::runtime_error("no context: send 'prepare' first");
        return ctx;
    }
};

// Which CPU code path runs: the ggml CPU backend variant that was loaded (or the one
// built in), and the features it was compiled to use, from the backend's own registry.
json cpu_path() {
    ggml_backend_reg_t reg = ggml_backend_reg_by_name("CPU");
    if (!reg) throw std::runtime_error("no ggml CPU backend could be loaded: no variant in this image runs on this CPU");
    json features = json::object();
    auto get_features = (ggml_backend_get_features_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
    if (get_features) {
        for (ggml_backend_feature * f = get_features(reg); f && f->name; ++f) {
            features[f->name] = f->value;
        }
    }
    std::string variant = "built-in (static)";
    if (!g_cpu_backend_path.empty()) {
        const std::string file = g_cpu_backend_path.substr(g_cpu_backend_path.find_last_of('/') + 1);
        const std::string prefix = "libggml-cpu-", suffix = ".so";
        variant = file;
        if (file.rfind(prefix, 0) == 0 && file.size() > prefix.size() + suffix.size()) {
            variant = file.substr(prefix.size(), file.size() - prefix.size() - suffix.size());
        }
    }
    std::string simd;
    for (auto it = features.begin(); it != features.end(); ++it) {
        if (it.key() != "OPENMP" && it.key() != "REPACK" && it.key() != "LLAMAFILE") simd += (simd.empty() ? "" : " ") + it.key();
    }
    const bool amx = features.contains("AMX_INT8");
    return {
        {"variant", variant},
        {"library", g_cpu_backend_path.empty() ? json(nullptr) : json(g_cpu_backend_path)},
        {"features", features},
        {"amx", amx},
        {"how", "ggml_backend_load_all() chose the CPU backend library; features from its ggml_backend_get_features"},
        {"summary", "ggml CPU variant " + variant + " (" + simd + (amx ? "" : "; no AMX") + ")"},
    };
}

json op_load(Engine & e, const json & req) {
    if (e.model) throw std::runtime_error("the model is loaded already");
    const std::string path = req.at("model").get<std::string>();
    const json & options = req.at("options");
    e.threads = req.at("threads").get<int>();
    e.kv_cache_type = options.value("kv_cache_type", std::string("f16"));
    const auto t0 = steady::now();
    e.mparams = llama_model_default_params();
    e.mparams.n_gpu_layers = 0;
    e.mparams.load_mode = llama_load_mode_from_str(options.value("load_mode", std::string("auto")).c_str());
    e.model = llama_model_load_from_file(path.c_str(), e.mparams);
    if (!e.model) throw std::runtime_error("failed to load model " + path);
    const double load_s = seconds(steady::now() - t0);
    e.vocab = llama_model_get_vocab(e.model);
    e.n_vocab = llama_vocab_n_tokens(e.vocab);
    char desc[256] = {0};
    llama_model_desc(e.model, desc, sizeof desc);
    const int n_ctx_train = llama_model_n_ctx_train(e.model);
    return {
        {"load_s", load_s},
        {"context_length", n_ctx_train > 0 ? json(n_ctx_train) : json(nullptr)},
        {"vocab_size", e.n_vocab},
        {"engine", {{"version", ORCHESTRATE_ENGINE_VERSION},
                    {"build", {{"cpu_path", cpu_path()}, {"system_info", llama_print_system_info()}}}}},
        {"model", {{"desc", desc}, {"n_params", llama_model_n_params(e.model)}, {"size_bytes", llama_model_size(e.model)},
                   {"n_ctx_train", n_ctx_train}, {"n_vocab", e.n_vocab}, {"add_bos", llama_vocab_get_add_bos(e.vocab)}}},
    };
}

// The context, with the job's threads and KV cache type, one sequence, and a persistent ggml
// threadpool attached to it, as llama-bench and llama-cli do (ggml's defaults: poll 50, no CPU
// mask). Without one, ggml makes and frees a threadpool for every graph, i.e. every token: a
// cost llama.cpp's own tools never pay.
json op_prepare(Engine & e, const json & req) {
    if (!e.model) throw std::runtime_error("no model: send 'load' first");
    if (e.ctx) throw std::runtime_error("the context is prepared already");
    const auto positions = req.at("positions").get<uint32_t>(), batch = req.at("batch").get<uint32_t>();
    const auto t0 = steady::now();
    e.cparams = llama_context_default_params();
    e.cparams.n_ctx = positions;
    e.cparams.n_batch = batch;
    e.cparams.n_ubatch = std::min<uint32_t>(e.cparams.n_ubatch, batch);
    e.cparams.n_seq_max = 1;
    e.cparams.n_threads = e.threads;
    e.cparams.n_threads_batch = e.threads;
    e.cparams.no_perf = false;
    e.cparams.type_k = e.kv_cache_type == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
    e.cparams.type_v = e.cparams.type_k;
    e.ctx = llama_init_from_model(e.model, e.cparams);
    if (!e.ctx) throw std::runtime_error("failed to create llama context");
    ggml_backend_reg_t cpu_reg = ggml_backend_reg_by_name("CPU");
    auto * threadpool_new = (decltype(ggml_threadpool_new) *) ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_new");
    e.threadpool_free = (decltype(ggml_threadpool_free) *) ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_free");
    if (!threadpool_new || !e.threadpool_free) throw std::runtime_error("the CPU backend exports no ggml_threadpool_new");
    e.tpp = ggml_threadpool_params_default(e.threads);
    e.threadpool = threadpool_new(&e.tpp);
    if (!e.threadpool) throw std::runtime_error("ggml_threadpool_new failed for " + std::to_string(e.threads) + " threads");
    llama_attach_threadpool(e.ctx, e.threadpool, nullptr);
    const double prepare_s = seconds(steady::now() - t0);
    e.batch = llama_batch_init((int32_t) batch, 0, 1);
    e.batch_size = (int) batch;
    return {
        {"prepare_s", prepare_s},
        {"threads_reported", llama_n_threads(e.ctx)},
        {"context", {{"n_ctx", llama_n_ctx(e.ctx)}, {"n_batch", llama_n_batch(e.ctx)}, {"n_ubatch", llama_n_ubatch(e.ctx)},
                     {"n_threads", llama_n_threads(e.ctx)}, {"n_threads_batch", llama_n_threads_batch(e.ctx)},
                     {"load_mode", llama_load_mode_name(e.mparams.load_mode)},
                     {"flash_attn_type", (int) e.cparams.flash_attn_type}, {"kv_cache_type", e.kv_cache_type},
                     {"threadpool", "ggml_threadpool_new(ggml_threadpool_params_default(threads)) attached with "
                                    "llama_attach_threadpool, as llama-bench does (poll " + std::to_string(e.tpp.poll) + ")"}}},
    };
}

// ---------------------------------------------------------------- generation

struct Rep {
    double prefill_s = 0, ttft_s = 0;
    // The part of decode spent inside llama.cpp (llama_decode until the logits are
    // readable); the rest is choosing the next token (argmax) and the loop itself.
    double decode_engine_s = 0;
    std::vector<double> itl;
    std::vector<llama_token> tokens;
    llama_perf_context_data perf{};
};

Rep run_once(Engine & e, const std::vector<llama_token> & prompt, int gen_tokens) {
    llama_context * ctx = e.context();
    llama_batch & batch = e.batch;
    Rep r;
    const int n_prompt = (int) prompt.size();
    if (n_prompt > e.batch_size) throw std::runtime_error("the prompt is longer than the prepared batch");
    r.tokens.reserve(gen_tokens);
    r.itl.reserve(gen_tokens);

    llama_memory_clear(llama_get_memory(ctx), true);
    llama_perf_context_reset(ctx);
    batch_fill(batch, prompt.data(), n_prompt, 0);

    const auto t0 = steady::now();
    int rc = llama_decode(ctx, batch);
    if (rc != 0) throw std::runtime_error("llama_decode (prompt) returned " + std::to_string(rc));
    const float * logits = llama_get_logits_ith(ctx, -1);
    if (!logits) throw std::runtime_error("no logits after prompt decode");
    const auto t_prefill = steady::now();
    llama_token tok = argmax(logits, e.n_vocab);
    const auto t_first = steady::now();
    r.tokens.push_back(tok);

    auto t_prev = t_first;
    llama_pos pos = n_prompt;
    while ((int) r.tokens.size() < gen_tokens) {
        batch_fill(batch, &tok, 1, pos++);
        const auto t_engine0 = steady::now();
        rc = llama_decode(ctx, batch);
        if (rc != 0) throw std::runtime_error("llama_decode (token " + std::to_string(r.tokens.size()) + ") returned " + std::to_string(rc));
        logits = llama_get_logits_ith(ctx, -1);
        if (!logits) throw std::runtime_error("no logits after token decode");
        r.decode_engine_s += seconds(steady::now() - t_engine0);
        tok = argmax(logits, e.n_vocab); // end-of-sequence is ignored on purpose
        const auto t = steady::now();
        r.itl.push_back(seconds(t - t_prev));
        t_prev = t;
        r.tokens.push_back(tok);
    }
    r.prefill_s = seconds(t_prefill - t0);
    r.ttft_s = seconds(t_first - t0);
    r.perf = llama_perf_context(ctx);
    return r;
}

json op_generate(Engine & e, const json & req) {
    e.context();
    const auto prompt = req.at("ids").get<std::vector<llama_token>>();
    const int gen_tokens = req.at("gen_tokens").get<int>();
    json reps = json::array();
    for (int i = 0, n = req.at("repetitions").get<int>(); i < n; ++i) {
        const Rep r = run_once(e, prompt, gen_tokens);
        reps.push_back({{"token_ids", r.tokens}, {"prefill_s", r.prefill_s}, {"ttft_s", r.ttft_s},
                        {"inter_token_latencies_s", r.itl}, {"decode_engine_s", r.decode_engine_s},
                        {"llama_perf", {{"t_p_eval_ms", r.perf.t_p_eval_ms}, {"n_p_eval", r.perf.n_p_eval},
                                        {"t_eval_ms", r.perf.t_eval_ms}, {"n_eval", r.perf.n_eval}}}});
    }
    return {{"repetitions", reps}};
}

// ---------------------------------------------------------------- perplexity

// nll = logsumexp(z) - z[tok], in double from the float logits: m = max(z),
// logsumexp = m + log(sum(exp(z - m))).
double token_nll(const float * z, int n_vocab, llama_token tok) {
    float m = z[0];
    for (int v = 1; v < n_vocab; ++v) m = std::max(m, z[v]);
    double sum = 0.0;
    for (int v = 0; v < n_vocab; ++v) sum += std::exp((double) z[v] - (double) m);
    return (double) m + std::log(sum) - (double) z[tok];
}

// One window in one llama_decode from an empty KV cache, with logits only at the positions
// that predict one of its last `score_last` ids; the sum of those ids' NLL.
double score_window(Engine & e, const std::vector<llama_token> & ids, int score_last) {
    llama_context * ctx = e.context();
    const int n = (int) ids.size(), first = n - score_last;
    llama_memory_clear(llama_get_memory(ctx), true);
    batch_fill(e.batch, ids.data(), n, 0);
    for (int k = 0; k < n; ++k) e.batch.logits[k] = (k + 1 >= first && k + 1 < n) ? 1 : 0;
    const int rc = llama_decode(ctx, e.batch);
    if (rc != 0) throw std::runtime_error("llama_decode (window) returned " + std::to_string(rc));
    double sum = 0.0;
    for (int i = first; i < n; ++i) {
        const float * z = llama_get_logits_ith(ctx, i - 1);
        if (!z) throw std::runtime_error("no logits at window position " + std::to_string(i - 1));
        sum += token_nll(z, e.n_vocab, ids[i]);
    }
    return sum;
}

json op_perplexity(Engine & e, const json & req) {
    e.context();
    std::vector<std::vector<llama_token>> windows;
    std::vector<int> score_last;
    for (const json & w : req.at("windows")) {  // checked here, before any timing
        windows.push_back(w.at("ids").get<std::vector<llama_token>>());
        score_last.push_back(w.at("score_last").get<int>());
        const int n = (int) windows.back().size();
        if (n > e.batch_size || score_last.back() < 0 || score_last.back() >= n) {
            throw std::runtime_error("a window of " + std::to_string(n) + " ids scoring its last " +
                                     std::to_string(score_last.back()) + " does not fit the prepared batch");
        }
        for (llama_token id : windows.back()) {
            if (id < 0 || id >= e.n_vocab) throw std::runtime_error("token id " + std::to_string(id) + " is outside the vocabulary");
        }
    }
    json reps = json::array();
    for (int r = 0, n = req.at("repetitions").get<int>(); r < n; ++r) {
        llama_perf_context_reset(e.context());
        std::vector<double> sums;
        const auto t0 = steady::now();
        for (size_t w = 0; w < windows.size(); ++w) sums.push_back(score_window(e, windows[w], score_last[w]));
        const double time_s = seconds(steady::now() - t0);
        const llama_perf_context_data perf = llama_perf_context(e.ctx);
        reps.push_back({{"time_s", time_s}, {"nll_sums", sums},
                        {"llama_perf", {{"t_p_eval_ms", perf.t_p_eval_ms}, {"n_p_eval", perf.n_p_eval}}}});
    }
    return {{"repetitions", reps}};
}

// ---------------------------------------------------------------- the protocol

json answer(Engine & e, const std::string & op, const json & req) {
    if (op == "load") return op_load(e, req);
    if (!e.model) throw std::runtime_error("no model: send 'load' first");
    if (op == "tokenize") return {{"ids", tokenize(e.vocab, req.at("text").get<std::string>())}};
    if (op == "detokenize") return {{"text", detokenize(e.vocab, req.at("ids").get<std::vector<llama_token>>())}};
    if (op == "prepare") return op_prepare(e, req);
    if (op == "generate") return op_generate(e, req);
    if (op == "perplexity") return op_perplexity(e, req);
    throw std::runtime_error("unknown request '" + op + "'");
}

void reply(json event) {
    const std::string line = "@orchestrate " + event.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fflush(stdout);
}

int serve() {
    Engine e;
    std::string line;
    while (std::getline(std::cin, line)) {
        std::string op = "?";
        try {
            const json req = json::parse(line);
            op = req.at("op").get<std::string>();
            if (op == "quit") break;
            json event = {{"event", op}};
            event.update(answer(e, op, req));
            reply(event);
        } catch (const std::exception & exc) {
            reply({{"event", "error"}, {"op", op}, {"error", exc.what()}});
        }
    }
    if (e.ctx) {
        llama_detach_threadpool(e.ctx);
        e.threadpool_free(e.threadpool);
        llama_batch_free(e.batch);
        llama_free(e.ctx);
    }
    if (e.model) llama_model_free(e.model);
    return 0;
}

} // namespace

int main(int argc, char ** argv) {
    std::setlocale(LC_NUMERIC, "C");
    if (argc > 1) {
        std::printf("usage: %s\nllama.cpp's half of an orchestrate CELL: speaks the native-runner line protocol "
                    "on stdin/stdout (docs/contract.md); started by the runner kit (runner.py).\n", argv[0]);
        return std::strcmp(argv[1], "-h") == 0 || std::strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    const char * verbose = std::getenv("ORCHESTRATE_VERBOSE");
    g_verbose = verbose && *verbose && std::strcmp(verbose, "0") != 0;
    llama_log_set(llama_log_filter, nullptr);
    ggml_backend_load_all();  // dynamic CPU variants: picks the best one this CPU can run
    llama_backend_init();
    const int status = serve();
    llama_backend_free();
    return status;
}
