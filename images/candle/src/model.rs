//! The model: loading (safetensors through models::llama, GGUF through models::quantized_llama),
//! a session with an empty KV cache, and the tokenizer with the BOS rule the model's files set.

use anyhow::{anyhow, bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::llama as hf_llama;
use candle_transformers::models::quantized_llama as q_llama;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tokenizers::Tokenizer;

pub enum Model {
    Llama {
        model: hf_llama::Llama,
        config: hf_llama::Config,
    },
    Quantized {
        weights: q_llama::ModelWeights,
    },
}

/// One generation's state: a fresh KV cache.
pub enum Session<'a> {
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
    pub fn session(&self, device: &Device) -> Result<Session<'_>> {
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
    pub fn forward(&mut self, ids: &[u32], pos: usize, device: &Device) -> Result<Vec<f32>> {
        let input = Tensor::new(ids, device)?.unsqueeze(0)?;
        let logits = match self {
            Session::Llama { model, cache } => model.forward(&input, pos, cache)?,
            Session::Quantized { weights } => weights.forward(&input, pos)?,
        };
        Ok(logits.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
    }
}

pub struct Loaded {
    pub model: Model,
    /// Positions the model's rotary tables / KV cache can hold.
    pub max_positions: usize,
    /// The context length the model was trained/configured for.
    pub context_length: Option<usize>,
    /// Token ids the model has embeddings/logits for, when known.
    pub vocab_size: Option<usize>,
    bos_id: Option<u32>,
    /// GGUF `tokenizer.ggml.add_bos_token`, when the file has it.
    add_bos: Option<bool>,
    pub info: Value,
}

impl Loaded {
    /// The contract's context limit: the model's context length, within what it can hold.
    pub fn position_limit(&self) -> usize {
        self.context_length.unwrap_or(self.max_positions).min(self.max_positions)
    }
}

/// The model of `model.format` at `path`: a Hugging Face folder (safetensors) or a GGUF file.
pub fn load(format: &str, path: &Path, device: &Device) -> Result<Loaded> {
    match format {
        "safetensors" => load_safetensors(path, device),
        f if f.starts_with("gguf") => load_gguf(path, device),
        other => bail!("unsupported model.format {other:?} (candle runner reads safetensors and gguf-*)"),
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
pub struct BosPolicy {
    pub add_bos: Option<bool>,
    pub bos_id: Option<u32>,
    pub source: String,
}

pub fn bos_policy(tok_path: &Path, tok: &Tokenizer, loaded: &Loaded) -> BosPolicy {
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


/// The text's ids with special tokens as the tokenizer is configured (BOS first when it adds
/// one), and what the BOS rule changed.
pub fn encode(tok: &Tokenizer, text: &str, bos: &BosPolicy) -> Result<(Vec<u32>, &'static str)> {
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
}
