// orchestrate-runner: runs one benchmark CELL with llama.cpp, in process.
//
// Reads the job (schemas/cell.schema.json) from $ORCHESTRATE_JOB (default
// /job/job.json), loads the GGUF model once, runs `warmup` untimed and
// `repetitions` timed greedy generations, and writes
// <output_dir>/result.json (schemas/result.schema.json) atomically.
// On any error: a message on stderr, a non-zero exit status, no result file.
//
// Timing (std::chrono::steady_clock) per repetition, after clearing the KV cache:
//   t0          start of prefill (just before llama_decode of the whole prompt batch)
//   prefill_s   t0 -> llama_decode returned and the last position's logits are
//               readable (llama_get_logits_ith synchronizes the backend)
//   ttft_s      t0 -> greedy argmax over those logits done (first token id known)
//   itl[k]      time from token k known to token k+1 known: one llama_decode of
//               the previous token + logits readout + argmax
//   decode_s    sum of the inter-token latencies (first token -> last token)
//
// A job whose workload.kind is "perplexity" (docs/contract.md, "The perplexity workload")
// scores a pre-tokenized text instead: the ids file is checked against its sha256, the ids
// are fed in windows of `context` ids every `stride` ids, each window from an empty KV
// cache in one llama_decode, and every scored id's negative log-likelihood is computed in
// double from the float logits. `warmup` untimed evaluations of the first window, then
// `repetitions` timed evaluations of the whole text (time_s: all windows, forward passes
// and scoring). See run_perplexity().

#include "llama.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <chrono>
#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef ORCHESTRATE_ENGINE_VERSION
#define ORCHESTRATE_ENGINE_VERSION "unknown"
#endif

using json = nlohmann::ordered_json;
using steady = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------- logging

bool g_verbose = false;

void logf(const char * fmt, ...) __attribute__((format(printf, 1, 2)));
void logf(const char * fmt, ...) {
    std::fprintf(stderr, "orchestrate-runner: ");
    va_list ap;
    va_start(ap, fmt);
    std::vfprintf(stderr, fmt, ap);
    va_end(ap);
    std::fputc('\n', stderr);
    std::fflush(stderr);
}

// llama.cpp / ggml log filter: warnings and errors only, unless
// ORCHESTRATE_VERBOSE=1. CONT lines continue the previous message's level.
// ggml's "loaded CPU backend from <path>" line: which CPU variant library the
// runtime dispatch chose (images built with CPU_BUILD=variants).
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

// ---------------------------------------------------------------- job parsing

template <typename T>
T require(const json & obj, const char * key, const char * where) {
    if (!obj.is_object() || !obj.contains(key)) {
        throw std::runtime_error(std::string("job: missing '") + where + key + "'");
    }
    try {
        return obj.at(key).get<T>();
    } catch (const json::exception & e) {
        throw std::runtime_error(std::string("job: bad type for '") + where + key + "': " + e.what());
    }
}

// workload.kind "perplexity": the text's ids file and the windows (docs/contract.md).
struct PerplexityJob {
    std::string text;       // the evaluation text's id
    std::string ids_path;   // JSON {text, tokenizer, ids}
    std::string ids_sha256; // of the file's bytes
    int         context = 0;
    int         stride = 0;
};

struct Job {
    std::string cell_id;
    std::string model_path;
    int         threads = 1;
    bool        perplexity = false; // workload.kind == "perplexity"; else generation
    PerplexityJob ppl;              // only when perplexity
    // generation (workload.kind absent or "generate")
    std::string prompt;
    long long   prompt_tokens = -1; // -1: null (use the tokenized text as is)
    int         gen_tokens = 0;
    int         warmup = 0;
    int         repetitions = 0;
    std::string output_dir;
    bool        llama_bench = false;
    std::string load_mode = "auto"; // llama.cpp's own default
    std::string kv_cache_type = "f16"; // llama.cpp's own default for the K and V caches
};

// The perplexity workload's fields and the checks that need no file or model
// (the sha256, the number of ids and the model's context length are checked later).
PerplexityJob parse_perplexity_workload(const json & wl) {
    PerplexityJob p;
    p.text = require<std::string>(wl, "text", "workload.");
    p.ids_path = require<std::string>(wl, "ids_path", "workload.");
    p.ids_sha256 = require<std::string>(wl, "ids_sha256", "workload.");
    p.context = require<int>(wl, "context", "workload.");
    p.stride = require<int>(wl, "stride", "workload.");
    if (p.ids_path.empty()) throw std::runtime_error("job: workload.ids_path is empty");
    const bool hex64 = p.ids_sha256.size() == 64 &&
                       p.ids_sha256.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex64) throw std::runtime_error("job: workload.ids_sha256 is not 64 lowercase hex digits");
    if (p.context < 2) throw std::runtime_error("job: workload.context must be >= 2");
    if (p.stride < 1 || p.stride >= p.context) {  // below context: every id after the first is scored
        throw std::runtime_error("job: workload.stride must be at least 1 and below workload.context (" +
                                 std::to_string(p.context) + "), not " + std::to_string(p.stride));
    }
    return p;
}

Job parse_job(const json & j) {
    Job job;
    if (!j.is_object()) {
        throw std::runtime_error("job: top level is not an object");
    }
    const int schema_version = require<int>(j, "schema_version", "");
    if (schema_version != 1) {
        throw std::runtime_error("job: unsupported schema_version " + std::to_string(schema_version));
    }
    job.cell_id = require<std::string>(j, "cell_id", "");
    const json & model = j.at("model");
    job.model_path = require<std::string>(model, "path", "model.");
    job.threads = require<int>(j, "threads", "");
    const json & wl = j.contains("workload") ? j.at("workload") : json();
    const std::string kind = wl.is_object() && wl.contains("kind") ? require<std::string>(wl, "kind", "workload.")
                                                                   : std::string("generate");
    if (kind == "perplexity") {
        job.perplexity = true;
        job.ppl = parse_perplexity_workload(wl);
    } else if (kind == "generate") {
        job.prompt = require<std::string>(wl, "prompt", "workload.");
        if (!wl.contains("prompt_tokens")) {
            throw std::runtime_error("job: missing 'workload.prompt_tokens' (may be null)");
        }
        if (!wl.at("prompt_tokens").is_null()) {
            job.prompt_tokens = require<long long>(wl, "prompt_tokens", "workload.");
            if (job.prompt_tokens < 2) {
                throw std::runtime_error("job: workload.prompt_tokens must be >= 2");
            }
        }
        job.gen_tokens = require<int>(wl, "gen_tokens", "workload.");
        if (job.prompt.empty()) throw std::runtime_error("job: workload.prompt is empty");
        if (job.gen_tokens < 2) throw std::runtime_error("job: workload.gen_tokens must be >= 2");
    } else {
        throw std::runtime_error("job: unknown workload.kind '" + kind + "' (generate or perplexity)");
    }
    job.warmup = require<int>(j, "warmup", "");
    job.repetitions = require<int>(j, "repetitions", "");
    job.output_dir = require<std::string>(j, "output_dir", "");

    if (job.threads < 1) throw std::runtime_error("job: threads must be >= 1");
    if (job.warmup < 0) throw std::runtime_error("job: warmup must be >= 0");
    if (job.repetitions < 1) throw std::runtime_error("job: repetitions must be >= 1");

    if (j.contains("engine") && j.at("engine").contains("options")) {
        const json & opts = j.at("engine").at("options");
        if (!opts.is_object()) throw std::runtime_error("job: engine.options is not an object");
        if (opts.contains("llama_bench")) {
            if (!opts.at("llama_bench").is_boolean()) {
                throw std::runtime_error("job: engine.options.llama_bench must be a boolean");
            }
            job.llama_bench = opts.at("llama_bench").get<bool>();
        }
        if (opts.contains("load_mode")) {
            static const char * modes[] = {"auto", "none", "mmap", "mlock", "mmap+mlock", "dio"};
            const json & value = opts.at("load_mode");
            bool known = false;
            for (const char * mode : modes) known = known || (value.is_string() && value.get<std::string>() == mode);
            if (!known) {
                throw std::runtime_error("job: engine.options.load_mode must be one of auto, none, mmap, mlock, "
                                         "mmap+mlock, dio");
            }
            job.load_mode = value.get<std::string>();
        }
        if (opts.contains("kv_cache_type")) {
            const json & value = opts.at("kv_cache_type");
            if (!value.is_string() || (value.get<std::string>() != "f16" && value.get<std::string>() != "f32")) {
                throw std::runtime_error("job: engine.options.kv_cache_type must be \"f16\" or \"f32\"");
            }
            job.kv_cache_type = value.get<std::string>();
        }
        for (const auto & item : opts.items()) {
            if (item.key() != "llama_bench" && item.key() != "load_mode" && item.key() != "kv_cache_type") {
                throw std::runtime_error("job: unknown engine option '" + item.key() +
                                         "' (llama.cpp takes llama_bench, load_mode, kv_cache_type)");
            }
        }
    }
    return job;
}

json read_json_file(const std::string & path) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    }
    try {
        return json::parse(in);
    } catch (const json::exception & e) {
        throw std::runtime_error("cannot parse " + path + ": " + e.what());
    }
}

std::string read_file_bytes(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot open " + path + ": " + std::strerror(errno));
    }
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad()) throw std::runtime_error("cannot read " + path);
    return bytes;
}

// SHA-256 (FIPS 180-4) of a byte string, as 64 lowercase hex digits.
std::string sha256_hex(const std::string & data) {
    static const uint32_t k[64] = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    };
    uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    auto rotr = [](uint32_t x, int n) { return (x >> n) | (x << (32 - n)); };

    // The message, padded: 0x80, zeros, then the length in bits (big-endian), to a multiple of 64 bytes.
    std::string msg = data;
    const uint64_t bits = (uint64_t) data.size() * 8;
    msg.push_back((char) 0x80);
    while (msg.size() % 64 != 56) msg.push_back('\0');
    for (int i = 7; i >= 0; --i) msg.push_back((char) ((bits >> (8 * i)) & 0xff));

    for (size_t off = 0; off < msg.size(); off += 64) {
        uint32_t w[64];
        for (int i = 0; i < 16; ++i) {
            const auto * b = (const unsigned char *) msg.data() + off + 4 * i;
            w[i] = ((uint32_t) b[0] << 24) | ((uint32_t) b[1] << 16) | ((uint32_t) b[2] << 8) | (uint32_t) b[3];
        }
        for (int i = 16; i < 64; ++i) {
            const uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
            const uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16] + s0 + w[i - 7] + s1;
        }
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
        for (int i = 0; i < 64; ++i) {
            const uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + k[i] + w[i];
            const uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
    }
    char hex[65];
    for (int i = 0; i < 8; ++i) std::snprintf(hex + 8 * i, 9, "%08x", h[i]);
    return std::string(hex, 64);
}

// ---------------------------------------------------------------- /proc helpers

long long read_vmhwm_bytes() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmHWM:", 0) == 0) {
            std::istringstream ss(line.substr(6));
            long long kb = -1;
            std::string unit;
            ss >> kb >> unit;
            if (kb >= 0 && unit == "kB") return kb * 1024;
        }
    }
    return -1;
}

// tid -> CPU time in ns the thread has run (first field of /proc/self/task/<tid>/schedstat;
// falls back to utime+stime from .../stat in clock ticks when schedstat is absent).
struct TaskTimes {
    std::map<long, double> cpu_s;
    std::string source;
};

TaskTimes read_task_times() {
    TaskTimes t;
    DIR * dir = opendir("/proc/self/task");
    if (!dir) return t;
    const long ticks = sysconf(_SC_CLK_TCK);
    bool used_schedstat = false, used_stat = false;
    while (dirent * ent = readdir(dir)) {
        if (ent->d_name[0] == '.') continue;
        const long tid = std::strtol(ent->d_name, nullptr, 10);
        const std::string base = std::string("/proc/self/task/") + ent->d_name;
        double cpu = -1.0;
        {
            std::ifstream in(base + "/schedstat");
            unsigned long long run_ns = 0;
            if (in && (in >> run_ns)) {
                cpu = run_ns / 1e9;
                used_schedstat = true;
            }
        }
        if (cpu < 0) {
            std::ifstream in(base + "/stat");
            std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            const size_t rp = s.rfind(')');
            if (rp != std::string::npos && ticks > 0) {
                std::istringstream ss(s.substr(rp + 2));
                std::string field;
                std::vector<std::string> f;
                while (ss >> field) f.push_back(field);
                // after "pid (comm) ": state(0) ... utime is field 14 overall -> index 11 here
                if (f.size() > 12) {
                    cpu = (std::stod(f[11]) + std::stod(f[12])) / ticks;
                    used_stat = true;
                }
            }
        }
        if (cpu >= 0) t.cpu_s[tid] = cpu;
    }
    closedir(dir);
    t.source = used_schedstat ? "/proc/self/task/*/schedstat" : (used_stat ? "/proc/self/task/*/stat" : "none");
    return t;
}

// ---------------------------------------------------------------- llama helpers

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

struct Rep {
    double prefill_s = 0, ttft_s = 0, decode_s = 0;
    // The part of decode_s spent inside llama.cpp (llama_decode until the logits are
    // readable); the rest is choosing the next token (argmax) and the loop itself.
    double decode_engine_s = 0;
    std::vector<double> itl;
    std::vector<llama_token> tokens;
    llama_perf_context_data perf{};
    int os_threads_during_generation = -1;
};

Rep run_once(llama_context * ctx, const llama_vocab * vocab, llama_batch & batch,
             const std::vector<llama_token> & prompt, int gen_tokens) {
    Rep r;
    const int n_vocab = llama_vocab_n_tokens(vocab);
    const int n_prompt = (int) prompt.size();
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
    llama_token tok = argmax(logits, n_vocab);
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
        tok = argmax(logits, n_vocab); // end-of-sequence is ignored on purpose
        const auto t = steady::now();
        r.itl.push_back(seconds(t - t_prev));
        t_prev = t;
        r.tokens.push_back(tok);
        if (r.tokens.size() == 2) {
            // The compute threads exist while a generation is under way (OpenMP keeps its team).
            // Counting happens outside the timed span's hot path only once and is cheap (readdir).
            const auto tc0 = steady::now();
            DIR * dir = opendir("/proc/self/task");
            if (dir) {
                int count = 0;
                while (dirent * ent = readdir(dir)) {
                    if (ent->d_name[0] != '.') ++count;
                }
                closedir(dir);
                r.os_threads_during_generation = count;
            }
            // Do not charge the count to the next inter-token latency.
            t_prev += steady::now() - tc0;
        }
    }
    r.prefill_s = seconds(t_prefill - t0);
    r.ttft_s = seconds(t_first - t0);
    r.decode_s = 0;
    for (double d : r.itl) r.decode_s += d;
    r.perf = llama_perf_context(ctx);

    if ((int) r.tokens.size() != gen_tokens || (int) r.itl.size() != gen_tokens - 1) {
        throw std::runtime_error("internal: generated " + std::to_string(r.tokens.size()) + " tokens, wanted " + std::to_string(gen_tokens));
    }
    return r;
}

// ---------------------------------------------------------------- perplexity

// The text's token ids, from the ids file {text, tokenizer, ids} once its bytes match the job's sha256.
struct TextIds {
    std::vector<llama_token> ids;
    size_t      file_bytes = 0;
    std::string file_text;      // the file's own "text" field ("" when absent)
    std::string file_tokenizer; // its "tokenizer" field ("" when absent)
};

TextIds read_text_ids(const PerplexityJob & p) {
    const std::string bytes = read_file_bytes(p.ids_path);
    const std::string sha = sha256_hex(bytes);
    if (sha != p.ids_sha256) {
        throw std::runtime_error("ids file " + p.ids_path + " has sha256 " + sha + ", the job expects " + p.ids_sha256);
    }
    json doc;
    try {
        doc = json::parse(bytes);
    } catch (const json::exception & e) {
        throw std::runtime_error("cannot parse " + p.ids_path + ": " + e.what());
    }
    if (!doc.is_object() || !doc.contains("ids") || !doc.at("ids").is_array()) {
        throw std::runtime_error("ids file " + p.ids_path + " has no 'ids' array");
    }
    TextIds t;
    t.file_bytes = bytes.size();
    if (doc.contains("text") && doc.at("text").is_string()) t.file_text = doc.at("text").get<std::string>();
    if (doc.contains("tokenizer") && doc.at("tokenizer").is_string()) t.file_tokenizer = doc.at("tokenizer").get<std::string>();
    const json & ids = doc.at("ids");
    if (ids.size() > (size_t) INT32_MAX) throw std::runtime_error("ids file " + p.ids_path + " has too many ids");
    t.ids.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
        const json & v = ids[i];
        if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > INT32_MAX) {
            throw std::runtime_error("ids file " + p.ids_path + ": ids[" + std::to_string(i) + "] is not a token id");
        }
        t.ids.push_back((llama_token) v.get<long long>());
    }
    if (t.ids.size() < 2) {
        throw std::runtime_error("ids file " + p.ids_path + " has " + std::to_string(t.ids.size()) +
                                 " ids; a perplexity needs at least 2");
    }
    if (!t.file_text.empty() && t.file_text != p.text) {
        logf("warning: ids file %s is for text '%s', the job names '%s'", p.ids_path.c_str(), t.file_text.c_str(),
             p.text.c_str());
    }
    return t;
}

// One window: the ids [begin, end) fed at positions 0 .. end-begin-1 from an empty KV cache;
// the ids at text positions [first_scored, end) are scored.
struct Window {
    int begin = 0, end = 0, first_scored = 0;
};

// Windows [b, min(b + context, n)) for b = 0, stride, 2 stride, ..., the last being the first
// that ends at n; each scores [max(previous end, b + 1), end) (docs/contract.md).
std::vector<Window> plan_windows(int n, int context, int stride) {
    std::vector<Window> windows;
    int previous_end = 0;
    for (long long b = 0;; b += stride) {
        Window w;
        w.begin = (int) b;
        w.end = (int) std::min<long long>(b + context, n);
        w.first_scored = std::max(previous_end, w.begin + 1);
        windows.push_back(w);
        previous_end = w.end;
        if (w.end == n) break;
    }
    return windows;
}

// nll = logsumexp(z) - z[tok], in double from the float logits: m = max(z),
// logsumexp = m + log(sum(exp(z - m))).
double token_nll(const float * z, int n_vocab, llama_token tok) {
    float m = z[0];
    for (int v = 1; v < n_vocab; ++v) m = std::max(m, z[v]);
    double sum = 0.0;
    for (int v = 0; v < n_vocab; ++v) sum += std::exp((double) z[v] - (double) m);
    return (double) m + std::log(sum) - (double) z[tok];
}

// One window in one llama_decode from an empty KV cache, with logits only at the window
// positions that predict a scored id (position i - 1 - begin for a scored i). Adds the scored
// ids' negative log-likelihoods to nll_sum and returns how many ids it scored.
int score_window(llama_context * ctx, llama_batch & batch, const std::vector<llama_token> & ids, const Window & w,
                 int n_vocab, double & nll_sum) {
    const int n = w.end - w.begin;
    llama_memory_clear(llama_get_memory(ctx), true);
    batch_fill(batch, ids.data() + w.begin, n, 0);
    for (int k = 0; k < n; ++k) {
        const int predicted = w.begin + k + 1; // the text position window position k predicts
        batch.logits[k] = (predicted >= w.first_scored && predicted < w.end) ? 1 : 0;
    }
    const int rc = llama_decode(ctx, batch);
    if (rc != 0) {
        throw std::runtime_error("llama_decode (window at " + std::to_string(w.begin) + ") returned " + std::to_string(rc));
    }
    for (int i = w.first_scored; i < w.end; ++i) {
        const float * z = llama_get_logits_ith(ctx, i - 1 - w.begin);
        if (!z) throw std::runtime_error("no logits at window position " + std::to_string(i - 1 - w.begin));
        nll_sum += token_nll(z, n_vocab, ids[i]);
    }
    return w.end - w.first_scored;
}

struct Evaluation {
    double    time_s = 0;
    int       windows = 0;
    long long scored = 0;
    double    mean_nll = 0;
    llama_perf_context_data perf{};
};

// One timed evaluation of the whole text: every window's forward pass and scoring.
Evaluation evaluate_text(llama_context * ctx, llama_batch & batch, const std::vector<llama_token> & ids,
                         const std::vector<Window> & windows, int n_vocab) {
    Evaluation e;
    llama_perf_context_reset(ctx);
    double nll_sum = 0.0;
    const auto t0 = steady::now();
    for (const Window & w : windows) {
        e.scored += score_window(ctx, batch, ids, w, n_vocab, nll_sum);
    }
    e.time_s = seconds(steady::now() - t0);
    e.perf = llama_perf_context(ctx);
    e.windows = (int) windows.size();
    e.mean_nll = nll_sum / (double) e.scored;
    if (!std::isfinite(e.mean_nll)) throw std::runtime_error("the mean negative log-likelihood is not finite");
    return e;
}

// ---------------------------------------------------------------- llama-bench

// Runs llama-bench once as a child process (same container, cores and model file) and
// returns its JSON output with the command line and wall time.
json run_bench_once(const std::vector<std::string> & args) {
    std::string cmdline;
    for (const auto & a : args) {
        if (!cmdline.empty()) cmdline += ' ';
        cmdline += a;
    }
    logf("running %s", cmdline.c_str());

    int pipefd[2];
    if (pipe(pipefd) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    const auto t0 = steady::now();
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        dup2(pipefd[1], STDOUT_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        std::vector<char *> argv;
        for (auto & a : args) argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        execvp(argv[0], argv.data());
        std::fprintf(stderr, "orchestrate-runner: exec %s: %s\n", argv[0], std::strerror(errno));
        _exit(127);
    }
    close(pipefd[1]);
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t n = read(pipefd[0], buf, sizeof buf);
        if (n > 0) {
            out.append(buf, (size_t) n);
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            break;
        }
    }
    close(pipefd[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const double wall = seconds(steady::now() - t0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        throw std::runtime_error("llama-bench failed (status " + std::to_string(status) + ")");
    }
    json parsed;
    try {
        parsed = json::parse(out);
    } catch (const json::exception & e) {
        throw std::runtime_error(std::string("llama-bench output is not JSON: ") + e.what());
    }
    json res;
    res["command"] = args;
    res["command_line"] = cmdline;
    res["wall_s"] = wall;
    res["results"] = parsed;
    return res;
}

// llama-bench, the engine's own benchmark, on the same model, threads and cores, at the
// runner's own shapes: prefill of n_prompt tokens from an empty cache (pp), and decode of
// gen_tokens - 1 tokens after a cache of n_prompt (tg at depth n_prompt), which is exactly
// the span of our inter-token latencies. Each with the job's repetitions.
json run_llama_bench(const Job & job, int n_prompt) {
    const char * exe_env = std::getenv("ORCHESTRATE_LLAMA_BENCH");
    const std::string exe = exe_env && *exe_env ? exe_env : "llama-bench";
    const std::vector<std::string> common = {exe, "-m", job.model_path, "-t", std::to_string(job.threads),
                                             "-r", std::to_string(job.repetitions), "-o", "json"};
    std::vector<std::string> pp = common, tg = common;
    for (const auto & a : {std::string("-p"), std::to_string(n_prompt), std::string("-n"), std::string("0")}) pp.push_back(a);
    for (const auto & a : {std::string("-p"), std::string("0"), std::string("-n"), std::to_string(job.gen_tokens - 1),
                           std::string("-d"), std::to_string(n_prompt)}) tg.push_back(a);
    json res;
    res["how"] = "llama-bench run as child processes in the same container on the same cores and model file, "
                 "after the runner's timed repetitions (its model stays loaded; mmapped pages are shared): "
                 "prefill = -p n_prompt -n 0 (empty cache, as our prefill_s), decode = -p 0 -n gen_tokens-1 "
                 "-d n_prompt (tg at the depth our inter-token latencies start from, same number of tokens); "
                 "llama-bench uses its own token ids and never samples; its samples_ts are tokens per second";
    res["prefill"] = run_bench_once(pp);
    res["decode"] = run_bench_once(tg);
    return res;
}

// ---------------------------------------------------------------- output

void write_atomically(const std::string & dir, const std::string & name, const std::string & data) {
    const std::string final_path = dir + "/" + name;
    std::string tmpl = dir + "/." + name + ".XXXXXX";
    std::vector<char> path(tmpl.begin(), tmpl.end());
    path.push_back('\0');
    const int fd = mkstemp(path.data());
    if (fd < 0) throw std::runtime_error("cannot create temp file in " + dir + ": " + std::strerror(errno));
    const std::string tmp_path(path.data());
    size_t off = 0;
    while (off < data.size()) {
        const ssize_t n = write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            const int e = errno;
            close(fd);
            unlink(tmp_path.c_str());
            throw std::runtime_error("write " + tmp_path + ": " + std::strerror(e));
        }
        off += (size_t) n;
    }
    fchmod(fd, 0644);
    if (fsync(fd) != 0 || close(fd) != 0) {
        const int e = errno;
        unlink(tmp_path.c_str());
        throw std::runtime_error("sync/close " + tmp_path + ": " + std::strerror(e));
    }
    if (rename(tmp_path.c_str(), final_path.c_str()) != 0) {
        const int e = errno;
        unlink(tmp_path.c_str());
        throw std::runtime_error("rename to " + final_path + ": " + std::strerror(e));
    }
}

json parse_system_info(const std::string & info) {
    // "CPU : SSE3 = 1 | AVX = 1 | ... | OPENMP = 1 | REPACK = 1 |"
    json features = json::object();
    std::string section;
    std::istringstream ss(info);
    std::string part;
    while (std::getline(ss, part, '|')) {
        const size_t colon = part.find(" : ");
        if (colon != std::string::npos) {
            section = part.substr(0, colon);
            section.erase(0, section.find_first_not_of(' '));
            part = part.substr(colon + 3);
        }
        const size_t eq = part.find('=');
        if (eq == std::string::npos) continue;
        std::string key = part.substr(0, eq), val = part.substr(eq + 1);
        auto trim = [](std::string & s) {
            s.erase(0, s.find_first_not_of(' '));
            s.erase(s.find_last_not_of(' ') + 1);
        };
        trim(key);
        trim(val);
        if (key.empty()) continue;
        const std::string full = section.empty() ? key : section + "." + key;
        if (val == "1") {
            features[full] = true;
        } else if (val == "0") {
            features[full] = false;
        } else {
            features[full] = val;
        }
    }
    return features;
}

// Which CPU code path runs: the ggml CPU backend variant that was loaded (or the one
// built in), and the features it was compiled to use, from the backend's own registry.
json cpu_path() {
    json out = json::object();
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
    out["variant"] = variant;
    out["library"] = g_cpu_backend_path.empty() ? json(nullptr) : json(g_cpu_backend_path);
    out["features"] = features;
    out["amx"] = amx;
    out["how"] = "ggml_backend_load_all() chose the CPU backend library; features from its ggml_backend_get_features";
    out["summary"] = "ggml CPU variant " + variant + " (" + simd + (amx ? "" : "; no AMX") + ")";
    return out;
}

// ---------------------------------------------------------------- engine set-up, shared by both workloads

// The model, its context and the ggml threadpool attached to the context, with the
// parameters they were made with and when.
struct Engine {
    llama_model_params     mparams{};
    llama_context_params   cparams{};
    ggml_threadpool_params tpp{};
    llama_model *       model = nullptr;
    const llama_vocab * vocab = nullptr;
    llama_context *     ctx = nullptr;
    ggml_threadpool *   threadpool = nullptr;
    decltype(ggml_threadpool_free) * threadpool_free = nullptr;
    steady::time_point  t_load0, t_model, t_ctx; // load started, model loaded, context ready
};

void load_model(const Job & job, Engine & e) {
    e.t_load0 = steady::now();
    e.mparams = llama_model_default_params();
    e.mparams.n_gpu_layers = 0;
    e.mparams.load_mode = llama_load_mode_from_str(job.load_mode.c_str());
    e.model = llama_model_load_from_file(job.model_path.c_str(), e.mparams);
    if (!e.model) throw std::runtime_error("failed to load model " + job.model_path);
    e.t_model = steady::now();
    e.vocab = llama_model_get_vocab(e.model);
}

// The context, with the job's threads and KV cache type, one sequence.
void create_context(const Job & job, Engine & e, uint32_t n_ctx, uint32_t n_batch, uint32_t n_ubatch) {
    e.cparams = llama_context_default_params();
    e.cparams.n_ctx = n_ctx;
    e.cparams.n_batch = n_batch;
    e.cparams.n_ubatch = n_ubatch;
    e.cparams.n_seq_max = 1;
    e.cparams.n_threads = job.threads;
    e.cparams.n_threads_batch = job.threads;
    e.cparams.no_perf = false;
    e.cparams.type_k = job.kv_cache_type == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
    e.cparams.type_v = e.cparams.type_k;
    e.ctx = llama_init_from_model(e.model, e.cparams);
    if (!e.ctx) throw std::runtime_error("failed to create llama context");
    // A persistent ggml threadpool attached to the context, as llama-bench and llama-cli do
    // (ggml's defaults: poll 50, no CPU mask). Without one, ggml makes and frees a threadpool
    // for every graph, i.e. every token: a cost llama.cpp's own tools never pay.
    ggml_backend_reg_t cpu_reg = ggml_backend_reg_by_name("CPU");
    auto * threadpool_new = (decltype(ggml_threadpool_new) *) ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_new");
    e.threadpool_free = (decltype(ggml_threadpool_free) *) ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_free");
    if (!threadpool_new || !e.threadpool_free) throw std::runtime_error("the CPU backend exports no ggml_threadpool_new");
    e.tpp = ggml_threadpool_params_default(job.threads);
    e.threadpool = threadpool_new(&e.tpp);
    if (!e.threadpool) throw std::runtime_error("ggml_threadpool_new failed for " + std::to_string(job.threads) + " threads");
    llama_attach_threadpool(e.ctx, e.threadpool, nullptr);
    e.t_ctx = steady::now();
}

void free_engine(Engine & e) {
    llama_detach_threadpool(e.ctx);
    e.threadpool_free(e.threadpool);
    llama_free(e.ctx);
    llama_model_free(e.model);
}

// ---------------------------------------------------------------- result parts, shared by both workloads

// The engine's thread setting and every thread's CPU time over the timed repetitions.
struct ThreadFigures {
    int         engine_threads = 0;
    int         engine_threads_batch = 0;
    json        per_thread = json::array();
    std::string source; // where per_thread was read
    std::string how;
};

ThreadFigures thread_figures(const Job & job, llama_context * ctx, const TaskTimes & before, const TaskTimes & after) {
    ThreadFigures f;
    f.engine_threads = llama_n_threads(ctx);
    f.engine_threads_batch = llama_n_threads_batch(ctx);
    // Raw figures only: the orchestrator derives the threads used from them (one rule).
    for (const auto & kv : after.cpu_s) {
        const auto it = before.cpu_s.find(kv.first);
        const double d = kv.second - (it == before.cpu_s.end() ? 0.0 : it->second);
        f.per_thread.push_back({{"tid", kv.first}, {"pid", (long) getpid()}, {"cpu_s", d}});
    }
    f.source = after.source;
    f.how = "per_thread: CPU time of every thread of this process over the timed repetitions (" +
            after.source + "); engine_reported: llama_n_threads(ctx)=" +
            std::to_string(f.engine_threads) + " and llama_n_threads_batch(ctx)=" +
            std::to_string(f.engine_threads_batch) +
            " (set through llama_context_params.n_threads/n_threads_batch)";
    if (f.engine_threads != job.threads) {
        logf("warning: engine reports %d threads, job requested %d", f.engine_threads, job.threads);
    }
    return f;
}

json model_facts(const Engine & e) {
    char desc[256] = {0};
    llama_model_desc(e.model, desc, sizeof desc);
    return {
        {"desc", desc},
        {"n_params", llama_model_n_params(e.model)},
        {"size_bytes", llama_model_size(e.model)},
        {"n_ctx_train", llama_model_n_ctx_train(e.model)},
        {"n_vocab", llama_vocab_n_tokens(e.vocab)},
        {"add_bos", llama_vocab_get_add_bos(e.vocab)},
    };
}

json context_facts(const Job & job, const Engine & e, const ThreadFigures & tf) {
    return {
        {"n_ctx", llama_n_ctx(e.ctx)},
        {"n_batch", llama_n_batch(e.ctx)},
        {"n_ubatch", llama_n_ubatch(e.ctx)},
        {"n_threads", tf.engine_threads},
        {"n_threads_batch", tf.engine_threads_batch},
        {"load_mode", llama_load_mode_name(e.mparams.load_mode)},
        {"flash_attn_type", (int) e.cparams.flash_attn_type},
        {"kv_cache_type", job.kv_cache_type},
        {"threadpool", "ggml_threadpool_new(ggml_threadpool_params_default(threads)) attached with "
                       "llama_attach_threadpool, as llama-bench does (poll " + std::to_string(e.tpp.poll) + ")"},
    };
}

json load_breakdown(const Engine & e) {
    return {{"model", seconds(e.t_model - e.t_load0)}, {"context", seconds(e.t_ctx - e.t_model)}};
}

// The RESULT's fields up to peak_rss_bytes; the workload adds its own, then extra and unmeasured.
json result_head(const Job & job, const std::string & engine_version, const json & build, const ThreadFigures & tf,
                 double load_time_s, long long peak_rss) {
    json result = json::object();
    result["schema_version"] = 1;
    result["cell_id"] = job.cell_id;
    result["engine"] = {{"name", "llama.cpp"}, {"version", engine_version}, {"build", build}};
    result["measurement_boundary"] = "in-process";
    result["threads"] = {{"requested", job.threads}, {"per_thread", tf.per_thread},
                         {"engine_reported", tf.engine_threads}, {"how", tf.how}};
    result["load_time_s"] = load_time_s;
    result["peak_rss_bytes"] = peak_rss >= 0 ? json(peak_rss) : json(nullptr);
    return result;
}

json unmeasured_of(long long peak_rss) {
    json unmeasured = json::object();
    if (peak_rss < 0) unmeasured["peak_rss_bytes"] = "VmHWM not found in /proc/self/status";
    return unmeasured;
}

// ---------------------------------------------------------------- the generation workload

json run_generation(const Job & job, const std::string & engine_version, const json & build) {
    // ---- load
    Engine eng;
    load_model(job, eng);
    const llama_vocab * vocab = eng.vocab;

    // ---- prompt
    std::vector<llama_token> prompt = tokenize(vocab, job.prompt);
    int repeats = 1;
    if (job.prompt_tokens > 0) {
        std::string text = job.prompt;
        while ((long long) prompt.size() < job.prompt_tokens) {
            const size_t before = prompt.size();
            text += " ";
            text += job.prompt;
            ++repeats;
            prompt = tokenize(vocab, text);
            if (prompt.size() <= before) {
                throw std::runtime_error("prompt does not grow when repeated; cannot reach prompt_tokens");
            }
        }
        prompt.resize((size_t) job.prompt_tokens);
    }
    if (prompt.empty()) throw std::runtime_error("prompt tokenized to zero tokens");
    const int n_prompt = (int) prompt.size();

    // ---- context: room for the prompt plus every generated token; the whole prompt goes
    // into one llama_decode call.
    create_context(job, eng, (uint32_t) (n_prompt + job.gen_tokens), (uint32_t) n_prompt,
                   std::min<uint32_t>(llama_context_default_params().n_ubatch, (uint32_t) n_prompt));
    llama_context * ctx = eng.ctx;
    const double load_time_s = seconds(eng.t_ctx - eng.t_load0);
    logf("loaded in %.3f s (model %.3f s, context %.3f s); prompt %d tokens (text repeated %d x)",
         load_time_s, seconds(eng.t_model - eng.t_load0), seconds(eng.t_ctx - eng.t_model), n_prompt, repeats);

    const int n_ctx_train = llama_model_n_ctx_train(eng.model);
    if (n_ctx_train > 0 && n_prompt + job.gen_tokens > n_ctx_train) {
        throw std::runtime_error("prompt (" + std::to_string(n_prompt) + ") + gen_tokens (" +
                                 std::to_string(job.gen_tokens) + ") exceed the model's context length (" +
                                 std::to_string(n_ctx_train) + ")");
    }

    llama_batch batch = llama_batch_init(n_prompt, 0, 1);

    // ---- warmup + timed repetitions
    for (int i = 0; i < job.warmup; ++i) {
        run_once(ctx, vocab, batch, prompt, job.gen_tokens);
    }
    if (job.warmup > 0) logf("warmup done (%d)", job.warmup);

    const TaskTimes tasks_before = read_task_times();
    std::vector<Rep> reps;
    for (int i = 0; i < job.repetitions; ++i) {
        reps.push_back(run_once(ctx, vocab, batch, prompt, job.gen_tokens));
        const Rep & r = reps.back();
        logf("rep %d/%d: ttft %.4f s, decode %.4f s (%.1f tok/s)", i + 1, job.repetitions, r.ttft_s, r.decode_s,
             r.decode_s > 0 ? (job.gen_tokens - 1) / r.decode_s : 0.0);
    }
    const TaskTimes tasks_after = read_task_times();

    // ---- threads: engine setting, cross-checked against the OS.
    const ThreadFigures tf = thread_figures(job, ctx, tasks_before, tasks_after);
    int os_threads = -1;
    for (const Rep & r : reps) os_threads = std::max(os_threads, r.os_threads_during_generation);

    const long long peak_rss = read_vmhwm_bytes();

    // ---- model / context facts for 'extra'
    json extra = json::object();
    extra["timing_definitions"] = {
        {"clock", "std::chrono::steady_clock, in process"},
        {"load_time_s", "llama_model_load_from_file + llama_init_from_model (mmap'd weights: pages may still fault in during the first (warmup) run)"},
        {"prefill_s", "one llama_decode over the whole prompt batch, until the last position's logits are readable (llama_get_logits_ith, which synchronizes)"},
        {"ttft_s", "prefill_s + greedy argmax over the vocabulary: start of prefill until the first token id is known"},
        {"inter_token_latencies_s", "between consecutive generated token ids: llama_decode of one token + logits readout + argmax"},
        {"decode_s", "sum of inter_token_latencies_s"},
        {"kv_cache", "llama_memory_clear(llama_get_memory(ctx), true) before every repetition, outside the timed span"},
    };
    extra["load_breakdown_s"] = load_breakdown(eng);
    extra["model"] = model_facts(eng);
    extra["context"] = context_facts(job, eng, tf);
    extra["prompt"] = {{"text_repeats", repeats}, {"tokenize", "llama_tokenize(add_special=true, parse_special=false)"}};
    extra["generated_text"] = {
        {"text", reps.empty() ? std::string() : detokenize(vocab, reps[0].tokens)},
        {"how", "llama_detokenize(remove_special=false, unparse_special=true) of repetition 0's token_ids; "
                "bytes that are not valid UTF-8 (a character cut at the end) are written as U+FFFD"},
    };
    json perf = json::array();
    for (size_t i = 0; i < reps.size(); ++i) {
        perf.push_back({
            {"index", i},
            {"t_p_eval_ms", reps[i].perf.t_p_eval_ms},
            {"n_p_eval", reps[i].perf.n_p_eval},
            {"t_eval_ms", reps[i].perf.t_eval_ms},
            {"n_eval", reps[i].perf.n_eval},
        });
    }
    extra["llama_perf"] = {
        {"how", "llama_perf_context(ctx) after each timed repetition (reset before it): llama.cpp's own "
                "prompt-eval and eval timers, for cross-checking prefill_s and decode_s"},
        {"repetitions", perf},
    };
    extra["threads_observed"] = {
        {"os_threads_during_generation", os_threads},
        {"source", tf.source},
        {"tasks", tf.per_thread},
    };

    // ---- the harness's share of each token: decode_s minus the time inside llama.cpp
    auto gen_rate = [&](double s_) { return s_ > 0 ? (job.gen_tokens - 1) / s_ : 0.0; };
    json shares = json::array();
    for (size_t i = 0; i < reps.size(); ++i) {
        shares.push_back({{"index", i}, {"decode_s", reps[i].decode_s}, {"decode_engine_s", reps[i].decode_engine_s},
                          {"engine_only_tok_s", gen_rate(reps[i].decode_engine_s)},
                          {"harness_share", reps[i].decode_s > 0 ? 1.0 - reps[i].decode_engine_s / reps[i].decode_s : 0.0}});
    }
    extra["harness"] = {
        {"how", "decode_engine_s: per generated token, llama_decode until llama_get_logits_ith returns (the "
                "engine's own work); the rest of decode_s is choosing the next token (argmax over the vocabulary) "
                "and the loop; harness_share = 1 - decode_engine_s / decode_s"},
        {"repetitions", shares},
    };

    // ---- llama-bench side by side, ABBA: our repetitions (A, above), llama-bench's prefill and
    // decode (B B), then our repetitions again (A), so drift during the cell falls on both.
    if (job.llama_bench) {
        json bench = run_llama_bench(job, n_prompt);
        json again = json::array();
        for (int i = 0; i < job.repetitions; ++i) {
            const Rep r = run_once(ctx, vocab, batch, prompt, job.gen_tokens);
            again.push_back({{"index", i}, {"decode_s", r.decode_s}, {"decode_engine_s", r.decode_engine_s},
                             {"gen_tok_s", gen_rate(r.decode_s)}, {"engine_only_tok_s", gen_rate(r.decode_engine_s)},
                             {"prefill_s", r.prefill_s}});
        }
        bench["order"] = "ABBA: result repetitions (A), llama-bench prefill and decode (B B), second_a (A)";
        bench["second_a"] = again;
        extra["llama_bench"] = bench;
    }

    llama_batch_free(batch);
    free_engine(eng);

    // ---- result
    json result = result_head(job, engine_version, build, tf, load_time_s, peak_rss);
    result["prompt_token_ids"] = prompt;
    json reps_json = json::array();
    for (size_t i = 0; i < reps.size(); ++i) {
        const Rep & r = reps[i];
        reps_json.push_back({
            {"index", i},
            {"prompt_tokens", n_prompt},
            {"generated_tokens", (int) r.tokens.size()},
            {"prefill_s", r.prefill_s},
            {"decode_s", r.decode_s},
            {"ttft_s", r.ttft_s},
            {"inter_token_latencies_s", r.itl},
            {"token_ids", r.tokens},
        });
    }
    result["repetitions"] = reps_json;
    result["extra"] = extra;
    result["unmeasured"] = unmeasured_of(peak_rss);
    return result;
}

// ---------------------------------------------------------------- the perplexity workload

json run_perplexity(const Job & job, const std::string & engine_version, const json & build) {
    const PerplexityJob & p = job.ppl;
    // llama_bench is a generation figure (llama-bench has no perplexity mode): a perplexity
    // job ignores it, says so on stderr and in extra, rather than refusing, so one MATRIX
    // setting can cover generation and perplexity workloads alike.
    if (job.llama_bench) logf("note: engine option llama_bench applies to generation only; ignored for perplexity");

    // ---- the text's ids (checked against ids_sha256) and its windows, before any loading
    const TextIds text = read_text_ids(p);
    const std::vector<llama_token> & ids = text.ids;
    const int n = (int) ids.size();
    const std::vector<Window> windows = plan_windows(n, p.context, p.stride);

    // ---- load; context fits the model's and a whole window goes into one llama_decode
    Engine eng;
    load_model(job, eng);
    const int n_ctx_train = llama_model_n_ctx_train(eng.model);
    if (n_ctx_train > 0 && p.context > n_ctx_train) {
        throw std::runtime_error("workload.context (" + std::to_string(p.context) +
                                 ") exceeds the model's context length (" + std::to_string(n_ctx_train) + ")");
    }
    const int n_vocab = llama_vocab_n_tokens(eng.vocab);
    for (int i = 0; i < n; ++i) {
        if (ids[i] >= n_vocab) {
            throw std::runtime_error("ids file " + p.ids_path + ": ids[" + std::to_string(i) + "] = " +
                                     std::to_string(ids[i]) + " is outside the model's vocabulary (" +
                                     std::to_string(n_vocab) + " tokens)");
        }
    }
    create_context(job, eng, (uint32_t) p.context, (uint32_t) p.context, (uint32_t) p.context);
    llama_context * ctx = eng.ctx;
    const double load_time_s = seconds(eng.t_ctx - eng.t_load0);
    logf("loaded in %.3f s (model %.3f s, context %.3f s); text %s: %d ids, %zu windows (context %d, stride %d)",
         load_time_s, seconds(eng.t_model - eng.t_load0), seconds(eng.t_ctx - eng.t_model), p.text.c_str(), n,
         windows.size(), p.context, p.stride);

    llama_batch batch = llama_batch_init(p.context, 0, 1);

    // ---- warmup (the first window only, untimed) + timed evaluations of the whole text
    for (int i = 0; i < job.warmup; ++i) {
        double discard = 0.0;
        score_window(ctx, batch, ids, windows.front(), n_vocab, discard);
    }
    if (job.warmup > 0) logf("warmup done (%d x the first window)", job.warmup);

    const TaskTimes tasks_before = read_task_times();
    std::vector<Evaluation> evals;
    for (int i = 0; i < job.repetitions; ++i) {
        evals.push_back(evaluate_text(ctx, batch, ids, windows, n_vocab));
        const Evaluation & e = evals.back();
        logf("rep %d/%d: %.4f s, %d windows, %lld ids scored, mean nll %.6f (perplexity %.4f)", i + 1,
             job.repetitions, e.time_s, e.windows, e.scored, e.mean_nll, std::exp(e.mean_nll));
    }
    const TaskTimes tasks_after = read_task_times();

    const ThreadFigures tf = thread_figures(job, ctx, tasks_before, tasks_after);
    const long long peak_rss = read_vmhwm_bytes();

    json extra = json::object();
    extra["timing_definitions"] = {
        {"clock", "std::chrono::steady_clock, in process"},
        {"load_time_s", "llama_model_load_from_file + llama_init_from_model (mmap'd weights: pages may still fault in during the first (warmup) run)"},
        {"time_s", "one evaluation of the whole text: for every window, llama_memory_clear (empty KV cache) + one "
                   "llama_decode of the window's ids at positions 0.. (logits only where a scored id is predicted) + "
                   "scoring (llama_get_logits_ith, logsumexp in double)"},
        {"warmup", "the first window only, untimed, warmup times"},
    };
    extra["load_breakdown_s"] = load_breakdown(eng);
    extra["model"] = model_facts(eng);
    extra["context"] = context_facts(job, eng, tf);
    extra["ids_file"] = {{"path", p.ids_path}, {"bytes", text.file_bytes}, {"text", text.file_text},
                         {"tokenizer", text.file_tokenizer}};
    json perf = json::array();
    for (size_t i = 0; i < evals.size(); ++i) {
        perf.push_back({{"index", i}, {"t_p_eval_ms", evals[i].perf.t_p_eval_ms}, {"n_p_eval", evals[i].perf.n_p_eval}});
    }
    extra["llama_perf"] = {
        {"how", "llama_perf_context(ctx) after each timed evaluation (reset before it): llama.cpp's own "
                "prompt-eval timer over all the windows, for cross-checking time_s"},
        {"repetitions", perf},
    };
    if (job.llama_bench) extra["llama_bench"] = "not run: llama-bench has no perplexity mode (the option applies to generation only)";

    llama_batch_free(batch);
    free_engine(eng);

    // ---- result
    const Evaluation & first = evals.front();
    json result = result_head(job, engine_version, build, tf, load_time_s, peak_rss);
    result["perplexity"] = {
        {"text", p.text},
        {"ids_sha256", p.ids_sha256},
        {"tokens", n},
        {"context", p.context},
        {"stride", p.stride},
        {"windows", first.windows},
        {"scored_tokens", first.scored},
        {"mean_nll", first.mean_nll},
        {"perplexity", std::exp(first.mean_nll)},
    };
    json reps_json = json::array();
    for (size_t i = 0; i < evals.size(); ++i) {
        reps_json.push_back({{"index", i}, {"time_s", evals[i].time_s}, {"windows", evals[i].windows},
                             {"scored_tokens", evals[i].scored}, {"mean_nll", evals[i].mean_nll}});
    }
    result["repetitions"] = reps_json;
    result["extra"] = extra;
    result["unmeasured"] = unmeasured_of(peak_rss);
    return result;
}

// ---------------------------------------------------------------- run

int run(const std::string & job_path) {
    const json job_json = read_json_file(job_path);
    const Job job = parse_job(job_json);
    if (job.perplexity) {
        logf("cell %s: model %s, threads %d, perplexity of %s (context %d, stride %d), warmup %d, repetitions %d",
             job.cell_id.c_str(), job.model_path.c_str(), job.threads, job.ppl.text.c_str(), job.ppl.context,
             job.ppl.stride, job.warmup, job.repetitions);
    } else {
        logf("cell %s: model %s, threads %d, gen_tokens %d, warmup %d, repetitions %d",
             job.cell_id.c_str(), job.model_path.c_str(), job.threads, job.gen_tokens, job.warmup, job.repetitions);
    }

    struct stat st{};
    if (stat(job.output_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        throw std::runtime_error("output_dir " + job.output_dir + " is not a directory");
    }
    if (access(job.output_dir.c_str(), W_OK) != 0) {
        throw std::runtime_error("output_dir " + job.output_dir + " is not writable");
    }

    // Build info baked into the image.
    const char * bi_env = std::getenv("ORCHESTRATE_BUILD_INFO");
    const std::string build_info_path = bi_env && *bi_env ? bi_env : "/opt/engine/build.json";
    json build = json::object();
    std::string engine_version = ORCHESTRATE_ENGINE_VERSION;
    {
        std::ifstream in(build_info_path);
        if (in) {
            try {
                build = json::parse(in);
                if (build.contains("engine_version") && build["engine_version"].is_string()) {
                    engine_version = build["engine_version"].get<std::string>();
                }
            } catch (const json::exception & e) {
                throw std::runtime_error("cannot parse " + build_info_path + ": " + e.what());
            }
        } else {
            logf("warning: %s not found; build details limited to llama_print_system_info()", build_info_path.c_str());
            build["build_info_missing"] = build_info_path;
        }
    }

    llama_log_set(llama_log_filter, nullptr);
    ggml_backend_load_all();  // dynamic CPU variants: picks the best one this CPU can run
    llama_backend_init();
    build["cpu_path"] = cpu_path();
    logf("CPU path: %s", build["cpu_path"]["summary"].get<std::string>().c_str());

    const std::string system_info = llama_print_system_info();
    build["system_info"] = system_info;
    build["system_info_parsed"] = parse_system_info(system_info);

    const json result = job.perplexity ? run_perplexity(job, engine_version, build)
                                       : run_generation(job, engine_version, build);
    llama_backend_free();

    write_atomically(job.output_dir, "result.json", result.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    logf("wrote %s/result.json", job.output_dir.c_str());
    return 0;
}

} // namespace

int main(int argc, char ** argv) {
    std::setlocale(LC_NUMERIC, "C");
    const char * verbose = std::getenv("ORCHESTRATE_VERBOSE");
    g_verbose = verbose && *verbose && std::strcmp(verbose, "0") != 0;

    std::string job_path;
    if (argc > 1) {
        const std::string a = argv[1];
        if (a == "-h" || a == "--help") {
            std::printf("usage: %s [JOB_JSON]\n"
                        "Runs one benchmark cell. The job is read from JOB_JSON, else $ORCHESTRATE_JOB, "
                        "else /job/job.json. Writes <output_dir>/result.json.\n",
                        argv[0]);
            return 0;
        }
        job_path = a;
    } else {
        const char * env = std::getenv("ORCHESTRATE_JOB");
        job_path = env && *env ? env : "/job/job.json";
    }
    try {
        return run(job_path);
    } catch (const std::exception & e) {
        std::fprintf(stderr, "orchestrate-runner: error: %s\n", e.what());
        return 1;
    }
}
