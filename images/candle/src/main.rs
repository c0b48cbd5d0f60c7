//! orchestrate-candle-runner: candle's half of a CELL, in process.
//!
//! The runner kit (runner.py, images/_shared/runnerkit) does the contract: the job, the
//! prompt's shape, the checks, this process's per-thread CPU time and peak memory, the
//! perplexity windows and the RESULT. This program only runs candle for it, speaking the
//! native-runner line protocol (docs/contract.md, "Native runners"): one JSON request a
//! line on stdin, one answer a line on stdout, `@orchestrate {"event": <op>, ...}`, or
//! `@orchestrate {"event": "error", "error": <reason>}`. Requests: load, tokenize, prepare,
//! generate, perplexity, quit.
//!
//! Formats (model.rs):
//!   safetensors  a Hugging Face folder: candle_transformers::models::llama, F32, its KV cache.
//!   gguf-*       a GGUF file (llama architecture): candle_transformers::models::quantized_llama
//!                (ggml block types run quantized; F32/F16/BF16 tensors are dequantized to F32).
//!
//! Threads: the load request builds the rayon global pool with its `threads` workers
//! (RAYON_NUM_THREADS is set too, which candle reads for gemm's parallelism) and every
//! request is then served on a pool worker, so candle's parallel ops use exactly that pool
//! and the main thread sleeps.
//!
//! Timing (std::time::Instant, monotonic) per generation, after a fresh KV cache (untimed):
//!   t0        just before the prompt's input tensor is built and the forward pass starts
//!   prefill_s t0 -> forward over the whole prompt returned and the last position's logits
//!             are copied out (candle's CPU ops are synchronous)
//!   ttft_s    t0 -> greedy argmax over those logits done (first token id known)
//!   itl[k]    token k known -> token k+1 known: input tensor of the previous token,
//!             one forward with the KV cache, logits copy-out, argmax

use anyhow::{anyhow, bail, Context, Result};
use candle_core::Device;
use serde_json::{json, Value};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use tokenizers::Tokenizer;

mod facts;
mod model;
mod perplexity;

const RUNNER: &str = "orchestrate-candle-runner";

/// What the requests so far have set up.
#[derive(Default)]
struct State {
    loaded: Option<model::Loaded>,
    tokenizer: Option<(Tokenizer, model::BosPolicy)>,
}

impl State {
    fn loaded(&self) -> Result<&model::Loaded> {
        self.loaded.as_ref().ok_or_else(|| anyhow!("no model: send 'load' first"))
    }
}

// ---------------------------------------------------------------- generation

struct Rep {
    prefill: Duration,
    ttft: Duration,
    itl: Vec<Duration>,
    tokens: Vec<u32>,
}

fn argmax(logits: &[f32]) -> Result<u32> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i as u32).ok_or_else(|| anyhow!("logits are all NaN"))
}

fn generate(model: &model::Model, prompt: &[u32], gen_tokens: usize, device: &Device) -> Result<Rep> {
    let mut session = model.session(device)?;
    let mut tokens = Vec::with_capacity(gen_tokens);
    let mut itl = Vec::with_capacity(gen_tokens.saturating_sub(1));

    let t0 = Instant::now();
    let logits = session.forward(prompt, 0, device)?;
    let prefill = t0.elapsed();
    let mut next = argmax(&logits)?;
    let mut last = Instant::now();
    let ttft = last - t0;
    tokens.push(next);
    for i in 1..gen_tokens {
        let logits = session.forward(&[next], prompt.len() + i - 1, device)?;
        next = argmax(&logits)?;
        let now = Instant::now();
        itl.push(now - last);
        last = now;
        tokens.push(next);
    }
    Ok(Rep { prefill, ttft, itl, tokens })
}

// ---------------------------------------------------------------- requests

fn field<'a>(request: &'a Value, name: &str) -> Result<&'a Value> {
    request.get(name).ok_or_else(|| anyhow!("the request has no {name:?}"))
}

fn count(request: &Value, name: &str) -> Result<usize> {
    field(request, name)?.as_u64().map(|n| n as usize).ok_or_else(|| anyhow!("{name:?} is not a count"))
}

fn ids(value: &Value) -> Result<Vec<u32>> {
    serde_json::from_value(value.clone()).context("ids must be a list of token ids")
}

fn load(state: &mut State, request: &Value, device: &Device) -> Result<Value> {
    if state.loaded.is_some() {
        bail!("the model is loaded already");
    }
    let missing = facts::missing_cpu_features();
    if !missing.is_empty() {
        bail!("this image's machine code needs CPU features this CPU lacks ({}): rebuild the candle image \
               with --build-arg TARGET_CPU=native on this machine", missing.join(", "));
    }
    let format = field(request, "format")?.as_str().unwrap_or_default();
    let path = Path::new(field(request, "model")?.as_str().unwrap_or_default());
    let t_load = Instant::now();
    let loaded = model::load(format, path, device)?;
    let model_s = t_load.elapsed();
    let mut tokenizer_info = Value::Null;
    if let Some(tok_path) = field(request, "tokenizer")?.as_str().map(Path::new) {
        let t_tok = Instant::now();
        let tok = Tokenizer::from_file(tok_path).map_err(|e| anyhow!("loading tokenizer {}: {e}", tok_path.display()))?;
        let tokenizer_s = t_tok.elapsed();
        let bos = model::bos_policy(tok_path, &tok, &loaded);
        tokenizer_info = json!({"path": tok_path.display().to_string(), "load_s": tokenizer_s.as_secs_f64(),
                                "add_bos_token": bos.add_bos, "add_bos_token_source": bos.source, "bos_id": bos.bos_id});
        state.tokenizer = Some((tok, bos));
    }
    let answer = json!({
        "load_s": t_load.elapsed().as_secs_f64(),
        "model_s": model_s.as_secs_f64(),
        "context_length": loaded.position_limit(),
        "model_context_length": loaded.context_length,
        "vocab_size": loaded.vocab_size,
        "engine": {"version": facts::locked_version("candle-core").unwrap_or_else(|| "unknown".into()),
                   "build": facts::build_info()},
        "model": loaded.info,
        "tokenizer": tokenizer_info,
    });
    state.loaded = Some(loaded);
    Ok(answer)
}

fn tokenize(state: &State, request: &Value) -> Result<Value> {
    let (tok, bos) = state.tokenizer.as_ref().ok_or_else(|| anyhow!("no tokenizer was loaded"))?;
    let text = field(request, "text")?.as_str().ok_or_else(|| anyhow!("\"text\" is not a string"))?;
    let (ids, action) = model::encode(tok, text, bos)?;
    Ok(json!({"ids": ids, "bos_action": action}))
}

/// Nothing to make: a session (its KV cache) is made per repetition; the threads as candle sees them.
fn prepare(state: &State, request: &Value) -> Result<Value> {
    let positions = count(request, "positions")?;
    let limit = state.loaded()?.max_positions;
    if positions > limit {
        bail!("{positions} positions exceed what the model can hold ({limit})");
    }
    Ok(json!({
        "prepare_s": 0.0,
        "threads_reported": rayon::current_num_threads(),
        "rayon_current_num_threads": rayon::current_num_threads(),
        "ran_on_rayon_worker": rayon::current_thread_index(),
        "candle_get_num_threads": candle_core::utils::get_num_threads(),
        "rayon_num_threads_env": std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
    }))
}

fn generate_request(state: &State, request: &Value, device: &Device) -> Result<Value> {
    let model = &state.loaded()?.model;
    let prompt = ids(field(request, "ids")?)?;
    let gen_tokens = count(request, "gen_tokens")?;
    let reps = (0..count(request, "repetitions")?)
        .map(|_| generate(model, &prompt, gen_tokens, device))
        .collect::<Result<Vec<_>>>()?;
    let reps: Vec<Value> = reps
        .iter()
        .map(|r| {
            json!({
                "token_ids": r.tokens,
                "prefill_s": r.prefill.as_secs_f64(),
                "ttft_s": r.ttft.as_secs_f64(),
                "inter_token_latencies_s": r.itl.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({"repetitions": reps}))
}

fn perplexity_request(state: &State, request: &Value, device: &Device) -> Result<Value> {
    let model = &state.loaded()?.model;
    let windows = field(request, "windows")?
        .as_array()
        .ok_or_else(|| anyhow!("\"windows\" is not a list"))?
        .iter()
        .map(|w| Ok(perplexity::Window { ids: ids(field(w, "ids")?)?, score_last: count(w, "score_last")? }))
        .collect::<Result<Vec<_>>>()?;
    let reps = (0..count(request, "repetitions")?)
        .map(|_| perplexity::evaluate(model, &windows, device))
        .collect::<Result<Vec<_>>>()?;
    let reps: Vec<Value> = reps.iter().map(|(time, sums)| json!({"time_s": time.as_secs_f64(), "nll_sums": sums})).collect();
    Ok(json!({"repetitions": reps}))
}

fn answer(state: &mut State, op: &str, request: &Value, device: &Device) -> Result<Value> {
    match op {
        "load" => load(state, request, device),
        "tokenize" => tokenize(state, request),
        "prepare" => prepare(state, request),
        "generate" => generate_request(state, request, device),
        "perplexity" => perplexity_request(state, request, device),
        other => bail!("unknown request {other:?}"),
    }
}

// ---------------------------------------------------------------- the protocol

fn reply(event: Value) {
    let mut out = std::io::stdout().lock();
    // A write error means the kit is gone; its own error says why.
    let _ = writeln!(out, "@orchestrate {event}").and_then(|_| out.flush());
}

/// One request: its answer as an event named after it, or an error event.
fn serve(state: &mut State, line: &str, device: &Device) -> bool {
    let request: Value = match serde_json::from_str(line) {
        Ok(v) => v,
        Err(e) => {
            reply(json!({"event": "error", "error": format!("request is not JSON: {e}")}));
            return true;
        }
    };
    let op = request.get("op").and_then(Value::as_str).unwrap_or("?").to_owned();
    if op == "quit" {
        return false;
    }
    match answer(state, &op, &request, device) {
        Ok(Value::Object(mut fields)) => {
            fields.insert("event".into(), json!(op));
            reply(Value::Object(fields));
        }
        Ok(_) => unreachable!("every answer is an object"),
        Err(e) => reply(json!({"event": "error", "op": op, "error": format!("{e:#}")})),
    }
    true
}

/// Build the rayon global pool with the load request's threads, before any other thread exists.
fn build_pool(line: &str) -> Result<()> {
    let request: Value = serde_json::from_str(line).context("the first request is not JSON")?;
    if request.get("op").and_then(Value::as_str) != Some("load") {
        bail!("the first request must be 'load'");
    }
    let threads = count(&request, "threads")?;
    // candle reads RAYON_NUM_THREADS for gemm's parallelism.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("candle-rayon-{i}"))
        .build_global()
        .context("building the rayon global pool")
}

fn main() {
    if std::env::args().any(|a| a == "--version" || a == "-V") {
        println!("{RUNNER} {} (candle {})", env!("CARGO_PKG_VERSION"), facts::locked_version("candle-core").unwrap_or_default());
        println!("{}", serde_json::to_string_pretty(&facts::build_info()).unwrap_or_default());
        return;
    }
    let mut first = String::new();
    if std::io::stdin().read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    if let Err(e) = build_pool(&first) {
        reply(json!({"event": "error", "op": "load", "error": format!("{e:#}")}));
        std::process::exit(1);
    }
    // rayon::scope called from outside the pool runs its body on a pool worker while this
    // (main) thread blocks: every request is served there.
    rayon::scope(|_| {
        let (device, mut state) = (Device::Cpu, State::default());
        if !serve(&mut state, &first, &device) {
            return;
        }
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if !serve(&mut state, &line, &device) {
                break;
            }
        }
    });
}
