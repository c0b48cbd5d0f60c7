//! orchestrate-candle-runner: runs one benchmark CELL with Hugging Face candle, in process.
//!
//! Reads the job (schemas/cell.schema.json) from $ORCHESTRATE_JOB (default /job/job.json),
//! loads the model once, runs `warmup` untimed and `repetitions` timed greedy generations,
//! and writes <output_dir>/result.json (schemas/result.schema.json) atomically.
//! On any error: a message on stderr, a non-zero exit status, no result file.
//! A perplexity workload (workload.kind "perplexity") scores a tokenized text instead:
//! see perplexity.rs.
//!
//! Formats:
//!   safetensors  job.model.path is a Hugging Face folder (config.json, *.safetensors,
//!                tokenizer.json): candle_transformers::models::llama, F32, its KV cache.
//!   gguf-*       job.model.path is a GGUF file (llama architecture):
//!                candle_transformers::models::quantized_llama (Q8_0/Q4_0 and the other
//!                ggml block types run quantized; F32/F16/BF16 tensors are dequantized to
//!                F32 at load, as candle does). Tokenizer: job.model.tokenizer.
//!
//! Threads: the rayon global pool is built with job.threads workers (RAYON_NUM_THREADS is
//! set too, which candle reads for gemm's parallelism) and the whole run executes on a
//! pool worker, so candle's parallel ops use exactly that pool and the main thread sleeps.
//!
//! Timing (std::time::Instant, monotonic) per repetition, after a fresh KV cache (untimed):
//!   t0        just before the prompt's input tensor is built and the forward pass starts
//!   prefill_s t0 -> forward over the whole prompt returned and the last position's logits
//!             are copied out (candle's CPU ops are synchronous)
//!   ttft_s    t0 -> greedy argmax over those logits done (first token id known)
//!   itl[k]    token k known -> token k+1 known: input tensor of the previous token,
//!             one forward with the KV cache, logits copy-out, argmax
//!   decode_s  sum of the inter-token latencies

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as hf_llama;
use candle_transformers::models::quantized_llama as q_llama;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokenizers::Tokenizer;

mod perplexity;
mod sha256;

const RUNNER: &str = "orchestrate-candle-runner";
const ENGINE_NAME: &str = "candle";
const CARGO_LOCK: &str = include_str!("../Cargo.lock");
const CARGO_TOML: &str = include_str!("../Cargo.toml");

// ---------------------------------------------------------------- job

struct Job {
    cell_id: String,
    threads: usize,
    format: String,
    model_path: PathBuf,
    tokenizer: Option<PathBuf>,
    workload: Workload,
    warmup: usize,
    repetitions: usize,
    output_dir: PathBuf,
}

enum Workload {
    Generate(Generate),
    Perplexity(perplexity::Spec),
}

struct Generate {
    prompt: String,
    prompt_tokens: Option<usize>,
    gen_tokens: usize,
}

fn field<'a>(v: &'a Value, path: &str) -> Result<&'a Value> {
    let mut cur = v;
    for key in path.split('.') {
        cur = cur.get(key).ok_or_else(|| anyhow!("job: missing field {path}"))?;
    }
    Ok(cur)
}

fn field_str(v: &Value, path: &str) -> Result<String> {
    field(v, path)?
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("job: {path} must be a string"))
}

fn field_usize(v: &Value, path: &str, min: u64) -> Result<usize> {
    let n = field(v, path)?
        .as_u64()
        .ok_or_else(|| anyhow!("job: {path} must be a non-negative integer"))?;
    if n < min {
        bail!("job: {path} must be >= {min}, got {n}");
    }
    usize::try_from(n).map_err(|_| anyhow!("job: {path} too large"))
}

fn parse_job(v: &Value) -> Result<Job> {
    let schema = field(v, "schema_version")?.as_u64();
    if schema != Some(1) {
        bail!("job: unsupported schema_version {:?}", field(v, "schema_version")?);
    }
    let cell_id = field_str(v, "cell_id")?;
    let ok_id = cell_id.len() == 14
        && cell_id.starts_with("c-")
        && cell_id[2..].bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok_id {
        bail!("job: cell_id {cell_id:?} does not match ^c-[0-9a-f]{{12}}$");
    }
    let tokenizer = match v.get("model").and_then(|m| m.get("tokenizer")) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(PathBuf::from(s)),
        Some(other) => bail!("job: model.tokenizer must be a string or null, got {other}"),
    };
    let workload = match field(v, "workload")?.get("kind") {
        None => Workload::Generate(parse_generate(v)?),
        Some(Value::String(k)) if k == "generate" => Workload::Generate(parse_generate(v)?),
        Some(Value::String(k)) if k == "perplexity" => Workload::Perplexity(perplexity::parse_spec(v)?),
        Some(other) => bail!("job: workload.kind {other} is not \"generate\" or \"perplexity\""),
    };
    // candle declares no engine options (orchestrator/engines/candle.py): any option is refused.
    match field(v, "engine.options")? {
        Value::Object(m) if m.is_empty() => {}
        Value::Object(m) => bail!("job: unknown engine option(s) {:?}: candle takes none", m.keys().collect::<Vec<_>>()),
        other => bail!("job: engine.options must be an object, got {other}"),
    }
    Ok(Job {
        cell_id,
        threads: field_usize(v, "threads", 1)?,
        format: field_str(v, "model.format")?,
        model_path: PathBuf::from(field_str(v, "model.path")?),
        tokenizer,
        workload,
        warmup: field_usize(v, "warmup", 0)?,
        repetitions: field_usize(v, "repetitions", 1)?,
        output_dir: PathBuf::from(field_str(v, "output_dir")?),
    })
}

fn parse_generate(v: &Value) -> Result<Generate> {
    let prompt_tokens = match field(v, "workload.prompt_tokens")? {
        Value::Null => None,
        _ => Some(field_usize(v, "workload.prompt_tokens", 2)?),
    };
    let prompt = field_str(v, "workload.prompt")?;
    if prompt.is_empty() {
        bail!("job: workload.prompt is empty");
    }
    Ok(Generate { prompt, prompt_tokens, gen_tokens: field_usize(v, "workload.gen_tokens", 2)? })
}

// ---------------------------------------------------------------- model

enum Model {
    Llama {
        model: hf_llama::Llama,
        config: hf_llama::Config,
    },
    Quantized {
        weights: q_llama::ModelWeights,
    },
}

/// One generation's state: a fresh KV cache.
enum Session<'a> {
    Llama {
        model: &'a hf_llama::Llama,
        cache: hf_llama::Cache,
    },
    Quantized {
        weights: q_llama::ModelWeights,
    },
}

impl Model {
    /// A session with an empty KV cache (not timed).
    fn session(&self, device: &Device) -> Result<Session<'_>> {
        Ok(match self {
            Model::Llama { model, config } => Session::Llama {
                model,
                cache: hf_llama::Cache::new(true, DType::F32, config, device)?,
            },
            // The loaded weights never ran, so their per-layer KV caches are empty; a
            // clone shares the weight storage (Arc) and starts with empty caches.
            Model::Quantized { weights } => Session::Quantized {
                weights: weights.clone(),
            },
        })
    }
}

impl Session<'_> {
    /// Forward `ids` at position `pos`; returns the last position's logits.
    fn forward(&mut self, ids: &[u32], pos: usize, device: &Device) -> Result<Vec<f32>> {
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let logits = match self {
            Session::Llama { model, cache } => model.forward(&input, pos, cache)?,
            Session::Quantized { weights } => weights.forward(&input, pos)?,
        };
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }
}

struct Loaded {
    model: Model,
    /// Positions the model's rotary tables / KV cache can hold.
    max_positions: usize,
    /// The context length the model was trained/configured for.
    context_length: Option<usize>,
    /// Token ids the model has embeddings/logits for, when known.
    vocab_size: Option<usize>,
    bos_id: Option<u32>,
    /// GGUF `tokenizer.ggml.add_bos_token`, when the file has it.
    add_bos: Option<bool>,
    info: Value,
}

impl Loaded {
    /// The contract's context limit: the model's context length, within what it can hold.
    fn position_limit(&self) -> usize {
        self.context_length.unwrap_or(self.max_positions).min(self.max_positions)
    }
}

fn load_safetensors(dir: &Path, device: &Device) -> Result<Loaded> {
    if !dir.is_dir() {
        bail!("model.path {} is not a directory (safetensors wants the Hugging Face folder)", dir.display());
    }
    let config_path = dir.join("config.json");
    let config_text = std::fs::read_to_string(&config_path)
        .with_context(|| format!("reading {}", config_path.display()))?;
    let raw: Value = serde_json::from_str(&config_text).context("parsing config.json")?;
    if let Some(mt) = raw.get("model_type").and_then(Value::as_str) {
        if mt != "llama" {
            bail!("config.json model_type is {mt:?}; this runner loads llama models only");
        }
    }
    let llama_cfg: hf_llama::LlamaConfig =
        serde_json::from_str(&config_text).context("config.json is not a llama config")?;
    let mut config = llama_cfg.into_config(false);
    if let Some(hd) = raw.get("head_dim").and_then(Value::as_u64) {
        let implied = config.hidden_size / config.num_attention_heads;
        if hd as usize != implied {
            bail!("config.json head_dim {hd} != hidden_size/num_attention_heads {implied}; candle's llama assumes the latter");
        }
    }

    let files: Vec<PathBuf> = {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        if single.is_file() {
            vec![single]
        } else if index.is_file() {
            let idx: Value = serde_json::from_str(&std::fs::read_to_string(&index)?)?;
            let map = idx
                .get("weight_map")
                .and_then(Value::as_object)
                .ok_or_else(|| anyhow!("{} has no weight_map", index.display()))?;
            let mut names: Vec<&str> = map.values().filter_map(Value::as_str).collect();
            names.sort_unstable();
            names.dedup();
            names.into_iter().map(|n| dir.join(n)).collect()
        } else {
            bail!("no model.safetensors or model.safetensors.index.json in {}", dir.display());
        }
    };
    // SAFETY: the files are on a read-only mount and are not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, DType::F32, device)? };
    let lm_head = if config.tie_word_embeddings {
        "tied to model.embed_tokens (tie_word_embeddings=true)"
    } else if !vb.contains_tensor("lm_head.weight") {
        config.tie_word_embeddings = true;
        "tied to model.embed_tokens (lm_head.weight absent)"
    } else {
        "lm_head.weight"
    };
    let model = hf_llama::Llama::load(vb, &config)?;
    let info = json!({
        "loader": "candle_transformers::models::llama::Llama::load (VarBuilder::from_mmaped_safetensors)",
        "dtype": "F32",
        "files": files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.num_hidden_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "vocab_size": config.vocab_size,
        "rope_theta": config.rope_theta,
        "rms_norm_eps": config.rms_norm_eps,
        "max_position_embeddings": config.max_position_embeddings,
        "lm_head": lm_head,
        "kv_cache": "candle_transformers::models::llama::Cache (use_kv_cache=true), new per repetition",
    });
    Ok(Loaded {
        max_positions: config.max_position_embeddings,
        context_length: Some(config.max_position_embeddings),
        vocab_size: Some(config.vocab_size),
        bos_id: config.bos_token_id,
        add_bos: None,
        model: Model::Llama { model, config },
        info,
    })
}

fn load_gguf(path: &Path, device: &Device) -> Result<Loaded> {
    let mut file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let content = gguf_file::Content::read(&mut file)
        .map_err(|e| e.with_path(path))
        .context("reading the GGUF header")?;
    let md_u32 = |k: &str| content.metadata.get(k).and_then(|v| v.to_u32().ok());
    let arch = content
        .metadata
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default();
    if arch != "llama" {
        bail!("GGUF general.architecture is {arch:?}; quantized_llama loads llama only");
    }
    let mut types: BTreeMap<String, usize> = BTreeMap::new();
    for ti in content.tensor_infos.values() {
        *types.entry(format!("{:?}", ti.ggml_dtype)).or_default() += 1;
    }
    let output = if content.tensor_infos.contains_key("output.weight") {
        "output.weight"
    } else {
        "tied to token_embd.weight (no output.weight)"
    };
    let context_length = md_u32("llama.context_length").map(|v| v as usize);
    let bos_id = md_u32("tokenizer.ggml.bos_token_id");
    let vocab_size = match content.metadata.get("tokenizer.ggml.tokens").and_then(|v| v.to_vec().ok()) {
        Some(tokens) => Some(tokens.len()),
        None => md_u32("llama.vocab_size").map(|v| v as usize),
    };
    let add_bos = content.metadata.get("tokenizer.ggml.add_bos_token").and_then(|v| v.to_bool().ok());
    let info = json!({
        "loader": "candle_transformers::models::quantized_llama::ModelWeights::from_gguf",
        "gguf_version": format!("{:?}", content.magic),
        "tensor_types": types,
        "tensor_count": content.tensor_infos.len(),
        "block_count": md_u32("llama.block_count"),
        "embedding_length": md_u32("llama.embedding_length"),
        "head_count": md_u32("llama.attention.head_count"),
        "head_count_kv": md_u32("llama.attention.head_count_kv"),
        "context_length": context_length,
        "general_file_type": md_u32("general.file_type"),
        "output": output,
        "matmul": "QMatMul: ggml block types use candle's quantized CPU kernels (activations quantized to the \
                   type's vec-dot format); F32/F16/BF16 tensors are dequantized to F32 at load",
        "kv_cache": "per-layer cache inside ModelWeights; a clone of the unused loaded weights per repetition",
    });
    let weights = q_llama::ModelWeights::from_gguf(content, &mut file, device)?;
    Ok(Loaded {
        model: Model::Quantized { weights },
        max_positions: q_llama::MAX_SEQ_LEN,
        context_length,
        vocab_size,
        bos_id,
        add_bos,
        info,
    })
}

/// How the tokenizer is configured to add BOS: `add_bos_token` (and `bos_token`) from the
/// tokenizer_config.json beside tokenizer.json, else the GGUF's `tokenizer.ggml.add_bos_token`.
/// None: follow tokenizer.json's post-processor as is.
struct BosPolicy {
    add_bos: Option<bool>,
    bos_id: Option<u32>,
    source: String,
}

fn bos_policy(tok_path: &Path, tok: &Tokenizer, loaded: &Loaded) -> BosPolicy {
    let cfg_path = tok_path.with_file_name("tokenizer_config.json");
    let cfg: Option<Value> = std::fs::read_to_string(&cfg_path).ok().and_then(|t| serde_json::from_str(&t).ok());
    let cfg_add = cfg.as_ref().and_then(|c| c.get("add_bos_token")).and_then(Value::as_bool);
    let cfg_bos = cfg.as_ref().and_then(|c| c.get("bos_token")).and_then(|b| match b {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    });
    let bos_id = cfg_bos.as_deref().and_then(|b| tok.token_to_id(b)).or(loaded.bos_id);
    let (add_bos, source) = match (cfg_add, loaded.add_bos) {
        (Some(a), _) => (Some(a), format!("add_bos_token in {}", cfg_path.display())),
        (None, Some(a)) => (Some(a), "tokenizer.ggml.add_bos_token in the GGUF".to_owned()),
        (None, None) => (None, "tokenizer.json post-processor (no add_bos_token setting found)".to_owned()),
    };
    BosPolicy { add_bos, bos_id, source }
}

fn tokenizer_path(job: &Job) -> Result<PathBuf> {
    if let Some(p) = &job.tokenizer {
        return Ok(p.clone());
    }
    let mut candidates = Vec::new();
    if job.model_path.is_dir() {
        candidates.push(job.model_path.join("tokenizer.json"));
    } else if let Some(parent) = job.model_path.parent() {
        candidates.push(parent.join("tokenizer.json"));
        if let Some(root) = parent.parent() {
            candidates.push(root.join("hf").join("tokenizer.json"));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| anyhow!("job.model.tokenizer is null and no tokenizer.json found (tried {candidates:?})"))
}

// ---------------------------------------------------------------- prompt

/// Tokenize with special tokens as the tokenizer is configured (BOS first when it adds one);
/// with `prompt_tokens`, repeat the text joined by a space until it gives at least that many
/// ids and keep exactly the first `prompt_tokens`.
fn prompt_ids(tok: &Tokenizer, job: &Generate, bos: &BosPolicy) -> Result<(Vec<u32>, Value)> {
    let encode = |text: &str| -> Result<(Vec<u32>, &'static str)> {
        let enc = tok.encode(text, true).map_err(|e| anyhow!("tokenizing the prompt: {e}"))?;
        let mut ids = enc.get_ids().to_vec();
        let mut action = "none: the tokenizer's encode(add_special_tokens=true) already matches";
        if let Some(b) = bos.bos_id {
            let starts = ids.first() == Some(&b);
            match bos.add_bos {
                Some(true) if !starts => {
                    ids.insert(0, b);
                    action = "BOS prepended by the runner (add_bos_token=true, tokenizer.json added none)";
                }
                Some(false) if starts => {
                    let plain = tok.encode(text, false).map_err(|e| anyhow!("tokenizing the prompt: {e}"))?;
                    if plain.get_ids().first() != Some(&b) {
                        ids.remove(0);
                        action = "BOS removed by the runner (add_bos_token=false, tokenizer.json added one)";
                    }
                }
                _ => {}
            }
        }
        Ok((ids, action))
    };
    let (mut ids, mut action) = encode(&job.prompt)?;
    let mut repeats = 1usize;
    if let Some(want) = job.prompt_tokens {
        while ids.len() < want {
            repeats += 1;
            // every extra copy adds at least one id, so this bound is never hit normally
            if repeats > want + 1 {
                bail!("prompt does not grow to {want} tokens when repeated");
            }
            let text = vec![job.prompt.as_str(); repeats].join(" ");
            (ids, action) = encode(&text)?;
        }
        ids.truncate(want);
    }
    if ids.is_empty() {
        bail!("the prompt tokenized to no ids");
    }
    let info = json!({
        "text_repeats": repeats,
        "add_bos_token": bos.add_bos,
        "add_bos_token_source": bos.source,
        "bos_id": bos.bos_id,
        "bos_first": bos.bos_id.is_some() && ids.first() == bos.bos_id.as_ref(),
        "bos_action": action,
    });
    Ok((ids, info))
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

fn generate(model: &Model, prompt: &[u32], gen_tokens: usize, device: &Device) -> Result<Rep> {
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
    if tokens.len() != gen_tokens || itl.len() + 1 != gen_tokens {
        bail!("generated {} tokens / {} latencies, wanted {gen_tokens}", tokens.len(), itl.len());
    }
    Ok(Rep { prefill, ttft, itl, tokens })
}

// ---------------------------------------------------------------- process facts

#[derive(Clone)]
struct TaskCpu {
    comm: String,
    sched_ns: Option<u64>,
    ticks: Option<u64>,
}

/// CPU time of every thread of this process: /proc/self/task/<tid>/schedstat (ns on CPU)
/// and /proc/self/task/<tid>/stat (utime+stime, clock ticks).
fn task_cpu() -> BTreeMap<u32, TaskCpu> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return out };
    for entry in dir.flatten() {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let base = entry.path();
        let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default().trim().to_owned();
        let sched_ns = std::fs::read_to_string(base.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()));
        let ticks = std::fs::read_to_string(base.join("stat")).ok().and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            // fields after "comm)": state=3 ... utime=14, stime=15 (1-based in proc(5))
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        });
        out.insert(tid, TaskCpu { comm, sched_ns, ticks });
    }
    out
}

fn vm_hwm_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The version(s) of a crate in the embedded Cargo.lock ("a, b" when several are locked).
fn locked_version(name: &str) -> Option<String> {
    let mut found = Vec::new();
    let mut lines = CARGO_LOCK.lines();
    while let Some(line) = lines.next() {
        if line.trim() == format!("name = \"{name}\"") {
            let v = lines.next().unwrap_or("").trim();
            if let Some(v) = v.strip_prefix("version = \"").and_then(|v| v.strip_suffix('"')) {
                found.push(v.to_owned());
            }
        }
    }
    (!found.is_empty()).then(|| found.join(", "))
}

fn release_profile() -> Value {
    let mut m = Map::new();
    let mut inside = false;
    for line in CARGO_TOML.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            inside = t == "[profile.release]";
            continue;
        }
        if inside && !t.is_empty() && !t.starts_with('#') {
            if let Some((k, v)) = t.split_once('=') {
                m.insert(k.trim().to_owned(), Value::String(v.trim().trim_matches('"').to_owned()));
            }
        }
    }
    Value::Object(m)
}

fn build_info() -> Value {
    let crates: Map<String, Value> = [
        "candle-core", "candle-nn", "candle-transformers", "tokenizers", "fancy-regex", "gemm",
        "gemm-common", "gemm-f32", "rayon", "rayon-core", "half", "safetensors", "serde_json", "anyhow",
    ]
    .iter()
    .map(|n| (n.to_string(), json!(locked_version(n))))
    .collect();
    let compiled_features: Vec<&str> = [
        ("sse4.2", cfg!(target_feature = "sse4.2")),
        ("avx", cfg!(target_feature = "avx")),
        ("avx2", cfg!(target_feature = "avx2")),
        ("fma", cfg!(target_feature = "fma")),
        ("f16c", cfg!(target_feature = "f16c")),
        ("avx512f", cfg!(target_feature = "avx512f")),
        ("avx512bw", cfg!(target_feature = "avx512bw")),
        ("avx512vl", cfg!(target_feature = "avx512vl")),
        ("avx512vnni", cfg!(target_feature = "avx512vnni")),
        ("neon", cfg!(target_feature = "neon")),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(n, _)| *n)
    .collect();
    let runtime_flags: Vec<String> = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| c.lines().find(|l| l.starts_with("flags")).map(str::to_owned))
        .map(|l| {
            l.split_whitespace()
                .filter(|f| {
                    f.starts_with("avx") || f.starts_with("sse") || f.starts_with("amx")
                        || ["fma", "f16c"].contains(f)
                })
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let host_flags: Vec<&str> = option_env!("ORCHESTRATE_BUILD_HOST_FLAGS")
        .unwrap_or("")
        .split_whitespace()
        .filter(|f| f.starts_with("avx") || f.starts_with("amx") || ["fma", "f16c"].contains(f))
        .collect();
    json!({
        "source": "crates.io (versions pinned in Cargo.toml with =, resolved in Cargo.lock, cargo build --release --locked)",
        "crates": crates,
        "candle_features": "default (CPU only: no mkl, accelerate, cuda, metal); tokenizers: default-features=false + fancy-regex",
        "rustc": option_env!("ORCHESTRATE_BUILD_RUSTC"),
        "cargo": option_env!("ORCHESTRATE_BUILD_CARGO"),
        "rustflags": option_env!("ORCHESTRATE_BUILD_RUSTFLAGS"),
        "target_cpu": option_env!("ORCHESTRATE_BUILD_TARGET_CPU").map(|s| if s.is_empty() { "default (x86-64 baseline)" } else { s }),
        "target": format!("{}-{}", std::env::consts::ARCH, std::env::consts::OS),
        "profile_release": release_profile(),
        "base_image": option_env!("ORCHESTRATE_BUILD_BASE_IMAGE"),
        "build_host_cpu": option_env!("ORCHESTRATE_BUILD_HOST_CPU"),
        "build_host_simd_flags": host_flags,
        "compiled_target_features": compiled_features,
        "compiled_target_features_note": "cfg!(target_feature) as rustc reports it; rustc 1.85 does not report \
            target features that are unstable there (AVX-512) even when target-cpu lets LLVM use them",
        "candle_utils": {
            "with_avx": candle_core::utils::with_avx(),
            "with_f16c": candle_core::utils::with_f16c(),
            "with_neon": candle_core::utils::with_neon(),
            "has_mkl": candle_core::utils::has_mkl(),
            "has_accelerate": candle_core::utils::has_accelerate(),
        },
        "runtime_cpu_simd_flags": runtime_flags,
        "cpu_path": {
            "target_cpu": option_env!("ORCHESTRATE_BUILD_TARGET_CPU"),
            "compiled_target_features": compiled_features,
            "how": "chosen at compile time (-C target-cpu); candle's quantized kernels use the compiled \
                target features, gemm picks its f32 kernels at run time",
            "summary": format!("candle built for target-cpu {} ({})",
                option_env!("ORCHESTRATE_BUILD_TARGET_CPU").filter(|s| !s.is_empty()).unwrap_or("default"),
                compiled_features.join(" ")),
        },
    })
}

/// Compiled-in x86 features this CPU lacks (empty when the machine code can run here).
fn missing_cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut missing = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if cfg!(target_feature = "avx") && !std::is_x86_feature_detected!("avx") { missing.push("avx"); }
        if cfg!(target_feature = "avx2") && !std::is_x86_feature_detected!("avx2") { missing.push("avx2"); }
        if cfg!(target_feature = "fma") && !std::is_x86_feature_detected!("fma") { missing.push("fma"); }
        if cfg!(target_feature = "f16c") && !std::is_x86_feature_detected!("f16c") { missing.push("f16c"); }
        if cfg!(target_feature = "bmi2") && !std::is_x86_feature_detected!("bmi2") { missing.push("bmi2"); }
    }
    missing
}

// ---------------------------------------------------------------- run

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn run(job: &Job) -> Result<Value> {
    let device = Device::Cpu;

    // Load the model once (the generation workload adds its tokenizer to the load time).
    let t_load = Instant::now();
    let loaded = match job.format.as_str() {
        "safetensors" => load_safetensors(&job.model_path, &device)?,
        f if f.starts_with("gguf") => load_gguf(&job.model_path, &device)?,
        other => bail!("unsupported model.format {other:?} (candle runner reads safetensors and gguf-*)"),
    };
    let model_load = t_load.elapsed();
    match &job.workload {
        Workload::Generate(gen) => run_generate(job, gen, &loaded, t_load, model_load, &device),
        Workload::Perplexity(spec) => perplexity::run(job, spec, &loaded, model_load, &device),
    }
}

fn run_generate(
    job: &Job,
    gen: &Generate,
    loaded: &Loaded,
    t_load: Instant,
    model_load: Duration,
    device: &Device,
) -> Result<Value> {
    let tok_path = tokenizer_path(job)?;
    let t_tok = Instant::now();
    let tokenizer = Tokenizer::from_file(&tok_path)
        .map_err(|e| anyhow!("loading tokenizer {}: {e}", tok_path.display()))?;
    let tok_load = t_tok.elapsed();
    let load_time = t_load.elapsed();

    let bos = bos_policy(&tok_path, &tokenizer, loaded);
    let (prompt, prompt_info) = prompt_ids(&tokenizer, gen, &bos)?;
    // Positions fed to the model: the prompt plus every generated token but the last.
    let positions = prompt.len() + gen.gen_tokens - 1;
    // The contract's rule: prompt + generated tokens must fit the model's context length.
    let limit = loaded.position_limit();
    if prompt.len() + gen.gen_tokens > limit {
        bail!(
            "prompt ({}) + gen_tokens ({}) exceed the model's context length ({limit})",
            prompt.len(), gen.gen_tokens
        );
    }

    for _ in 0..job.warmup {
        generate(&loaded.model, &prompt, gen.gen_tokens, device)?;
    }
    let (reps, cpu) = measure(|| {
        (0..job.repetitions).map(|_| generate(&loaded.model, &prompt, gen.gen_tokens, device)).collect::<Result<Vec<_>>>()
    })?;

    let repetitions: Vec<Value> = reps
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let itl: Vec<f64> = r.itl.iter().copied().map(secs).collect();
            json!({
                "index": i,
                "prompt_tokens": prompt.len(),
                "generated_tokens": r.tokens.len(),
                "prefill_s": secs(r.prefill),
                "decode_s": itl.iter().sum::<f64>(),
                "ttft_s": secs(r.ttft),
                "inter_token_latencies_s": itl,
                "token_ids": r.tokens,
            })
        })
        .collect();
    let mut fields = Map::new();
    fields.insert("prompt_token_ids".into(), json!(prompt));
    fields.insert("repetitions".into(), Value::Array(repetitions));

    let extra = json!({
        "timing": "std::time::Instant per repetition after a fresh KV cache (untimed): prefill_s = forward over \
                   the whole prompt + copy of the last position's logits; ttft_s = prefill_s + greedy argmax; \
                   each inter-token latency = input tensor + one cached forward + logits copy + argmax; \
                   decode_s = their sum. candle CPU ops are synchronous.",
        "load": {
            "model_s": secs(model_load),
            "tokenizer_s": secs(tok_load),
            "how": "load_time_s = model load (weights read/mapped, tensors built) + tokenizer.json load",
        },
        "model": loaded.info,
        "format": job.format,
        "context_length": loaded.context_length,
        "positions_used": positions,
        "tokenizer": {"path": tok_path.display().to_string(), "crate": "tokenizers", "prompt": prompt_info},
    });
    let Value::Object(extra) = extra else { unreachable!() };
    finish_result(job, load_time, &cpu, fields, extra)
}

/// A timed section's wall time and the CPU time of every thread of the process around it.
struct CpuWindow {
    before: BTreeMap<u32, TaskCpu>,
    after: BTreeMap<u32, TaskCpu>,
    wall: Duration,
}

/// Run the timed repetitions, reading the threads' CPU time before and after.
fn measure<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, CpuWindow)> {
    let before = task_cpu();
    let t0 = Instant::now();
    let value = f()?;
    let wall = t0.elapsed();
    let after = task_cpu();
    Ok((value, CpuWindow { before, after, wall }))
}

/// The RESULT: the fields every workload has, the workload's own `fields` (repetitions,
/// prompt_token_ids or perplexity), and `extra` with the thread and memory notes added.
fn finish_result(
    job: &Job,
    load_time: Duration,
    cpu: &CpuWindow,
    fields: Map<String, Value>,
    mut extra: Map<String, Value>,
) -> Result<Value> {
    let pool_threads = rayon::current_num_threads();
    let on_worker = rayon::current_thread_index();
    let (before, after, window) = (&cpu.before, &cpu.after, cpu.wall);

    // Raw per-thread CPU seconds over the timed repetitions: the orchestrator derives the
    // threads used from them (one rule for every engine).
    let use_sched = after.values().all(|t| t.sched_ns.is_some());
    let pid = std::process::id();
    let mut per_task = Vec::new();
    for (tid, a) in after {
        let b = before.get(tid);
        let dns = match (a.sched_ns, b.and_then(|b| b.sched_ns)) {
            (Some(x), Some(y)) => Some(x.saturating_sub(y)),
            (Some(x), None) => Some(x),
            _ => None,
        };
        let dticks = a.ticks.map(|x| x.saturating_sub(b.and_then(|b| b.ticks).unwrap_or(0)));
        // stat's utime+stime are in USER_HZ clock ticks, 100 per second on Linux.
        let cpu_s = if use_sched { dns.unwrap_or(0) as f64 / 1e9 } else { dticks.unwrap_or(0) as f64 / 100.0 };
        per_task.push(json!({"tid": tid, "pid": pid, "name": a.comm, "cpu_s": cpu_s}));
    }
    let busy_cpu_ns: u64 = if use_sched {
        after.iter().map(|(tid, a)| a.sched_ns.unwrap_or(0).saturating_sub(
            before.get(tid).and_then(|b| b.sched_ns).unwrap_or(0))).sum()
    } else { 0 };
    let how = format!(
        "per_thread: CPU time of every thread of this process over the timed repetitions ({}); \
         engine_reported: rayon::current_num_threads()={pool_threads} of the global pool the runner built \
         with num_threads={} (RAYON_NUM_THREADS={}, which candle's gemm parallelism reads); the work runs \
         on the pool's workers while the main thread blocks",
        if use_sched { "/proc/self/task/*/schedstat deltas" } else { "/proc/self/task/*/stat utime+stime deltas" },
        job.threads,
        std::env::var("RAYON_NUM_THREADS").unwrap_or_default(),
    );

    let peak = vm_hwm_bytes();
    let mut unmeasured = Map::new();
    if peak.is_none() {
        unmeasured.insert("peak_rss_bytes".into(), json!("VmHWM not readable from /proc/self/status"));
    }
    extra.insert(
        "threads".into(),
        json!({
            "rayon_current_num_threads": pool_threads,
            "ran_on_rayon_worker": on_worker,
            "candle_get_num_threads": candle_core::utils::get_num_threads(),
            "mean_threads_on_cpu": if use_sched && !window.is_zero() {
                json!(busy_cpu_ns as f64 / 1e9 / secs(window)) } else { Value::Null },
            "mean_threads_on_cpu_how": "sum of the threads' schedstat CPU time over the timed repetitions / their wall time",
            "tasks_in_process": after.len(),
            "window_s": secs(window),
        }),
    );
    extra.insert("peak_rss".into(), json!("VmHWM from /proc/self/status at the end of the run"));

    let mut result = Map::new();
    result.insert("schema_version".into(), json!(1));
    result.insert("cell_id".into(), json!(job.cell_id));
    result.insert(
        "engine".into(),
        json!({
            "name": ENGINE_NAME,
            "version": locked_version("candle-core").unwrap_or_else(|| "unknown".into()),
            "build": build_info(),
        }),
    );
    result.insert("measurement_boundary".into(), json!("in-process"));
    result.insert(
        "threads".into(),
        json!({"requested": job.threads, "per_thread": per_task, "engine_reported": pool_threads, "how": how}),
    );
    result.insert("load_time_s".into(), json!(secs(load_time)));
    result.insert("peak_rss_bytes".into(), json!(peak));
    result.extend(fields);
    result.insert("extra".into(), Value::Object(extra));
    result.insert("unmeasured".into(), Value::Object(unmeasured));
    Ok(Value::Object(result))
}

fn write_atomic(dir: &Path, value: &Value) -> Result<PathBuf> {
    let dest = dir.join("result.json");
    let tmp = dir.join(format!(".result.json.{}.tmp", std::process::id()));
    let body = serde_json::to_vec_pretty(value)?;
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(&body)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, &dest).with_context(|| format!("renaming to {}", dest.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|_| dest)
}

fn real_main() -> Result<()> {
    let missing = missing_cpu_features();
    if !missing.is_empty() {
        bail!("this image's machine code needs CPU features this CPU lacks ({}): rebuild the candle image \
               with --build-arg TARGET_CPU=native on this machine", missing.join(", "));
    }
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("{RUNNER} {} (candle {})", env!("CARGO_PKG_VERSION"), locked_version("candle-core").unwrap_or_default());
        println!("{}", serde_json::to_string_pretty(&build_info())?);
        return Ok(());
    }
    let job_path = std::env::var("ORCHESTRATE_JOB").unwrap_or_else(|_| "/job/job.json".into());
    let text = std::fs::read_to_string(&job_path).with_context(|| format!("reading job {job_path}"))?;
    let raw: Value = serde_json::from_str(&text).with_context(|| format!("parsing job {job_path}"))?;
    let job = parse_job(&raw)?;
    if !job.output_dir.is_dir() {
        bail!("output_dir {} is not a directory", job.output_dir.display());
    }

    // Before any thread exists: candle reads RAYON_NUM_THREADS for gemm's parallelism.
    std::env::set_var("RAYON_NUM_THREADS", job.threads.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(job.threads)
        .thread_name(|i| format!("candle-rayon-{i}"))
        .build_global()
        .context("building the rayon global pool")?;

    // rayon::scope called from outside the pool runs its body on a pool worker while this
    // (main) thread blocks, so all work happens on the job.threads pool workers.
    let result = rayon::scope(|_| run(&job))?;
    let dest = write_atomic(&job.output_dir, &result)?;
    let reps = result["repetitions"].as_array().map(Vec::len).unwrap_or(0);
    eprintln!("{RUNNER}: wrote {} ({reps} repetitions)", dest.display());
    Ok(())
}

fn main() {
    if let Err(e) = real_main() {
        eprintln!("{RUNNER}: error: {e:#}");
        std::process::exit(1);
    }
}
