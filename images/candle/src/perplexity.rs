//! The perplexity workload (docs/contract.md, "The perplexity workload"): score a text's
//! token ids, prepared once by the model's Hugging Face tokenizer, in windows of
//! `context` ids every `stride` ids, each window from an empty KV cache.
//!
//! candle's llama and quantized_llama forward passes return only the last position's
//! logits, so a window is fed as: ids[begin .. first_scored] in one forward pass (its last
//! position's logits score `first_scored`), then every following id alone through the KV
//! cache, each forward's logits scoring the next position. That gives the logits a full
//! forward over the window would give at those positions (causal attention), within float
//! error.

use crate::{field_str, field_usize, finish_result, measure, secs, Job, Loaded, Model, Session};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::Device;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The job's perplexity workload.
pub struct Spec {
    pub text: String,
    pub ids_path: PathBuf,
    pub ids_sha256: String,
    pub context: usize,
    pub stride: usize,
}

pub fn parse_spec(v: &Value) -> Result<Spec> {
    let text = field_str(v, "workload.text")?;
    if text.is_empty() {
        bail!("job: workload.text is empty");
    }
    let ids_sha256 = field_str(v, "workload.ids_sha256")?;
    if ids_sha256.len() != 64 || !ids_sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        bail!("job: workload.ids_sha256 {ids_sha256:?} does not match ^[0-9a-f]{{64}}$");
    }
    let context = field_usize(v, "workload.context", 2)?;
    let stride = field_usize(v, "workload.stride", 1)?;
    if stride >= context {
        // Below context, so the first id of every later window has history and every id is scored.
        bail!("job: workload.stride ({stride}) must be below workload.context ({context})");
    }
    Ok(Spec {
        text,
        ids_path: PathBuf::from(field_str(v, "workload.ids_path")?),
        ids_sha256,
        context,
        stride,
    })
}

/// The ids file, checked against the job's sha256.
struct IdsFile {
    ids: Vec<u32>,
    text: Option<String>,
    tokenizer: Option<Value>,
    bytes: usize,
}

fn read_ids(spec: &Spec) -> Result<IdsFile> {
    let path = &spec.ids_path;
    let bytes = std::fs::read(path).with_context(|| format!("reading the ids file {}", path.display()))?;
    let digest = crate::sha256::hex_digest(&bytes);
    if digest != spec.ids_sha256 {
        bail!("ids file {}: sha256 {digest} != workload.ids_sha256 {}", path.display(), spec.ids_sha256);
    }
    let v: Value = serde_json::from_slice(&bytes).with_context(|| format!("parsing the ids file {}", path.display()))?;
    let raw = v
        .get("ids")
        .and_then(Value::as_array)
        .ok_or_else(|| anyhow!("ids file {}: no \"ids\" array", path.display()))?;
    let ids = raw
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| anyhow!("ids file {}: ids[{i}] = {x} is not a token id", path.display()))
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok(IdsFile {
        ids,
        text: v.get("text").and_then(Value::as_str).map(str::to_owned),
        tokenizer: v.get("tokenizer").cloned(),
        bytes: bytes.len(),
    })
}

/// One window: ids[begin..end) at positions 0..end-begin-1; positions first_scored..end
/// (of the text) are scored in it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Window {
    begin: usize,
    end: usize,
    first_scored: usize,
}

/// Windows [b, min(b + context, n)) for b = 0, stride, 2*stride, ..., the last being the
/// first that ends at n; scored positions [max(previous end, b + 1), end).
fn windows(n: usize, context: usize, stride: usize) -> Vec<Window> {
    assert!(n >= 2 && context >= 2 && (1..context).contains(&stride));
    let mut out = Vec::new();
    let (mut begin, mut prev_end) = (0, 0);
    loop {
        let end = (begin + context).min(n);
        out.push(Window { begin, end, first_scored: prev_end.max(begin + 1) });
        if end == n {
            return out;
        }
        prev_end = end;
        begin += stride;
    }
}

/// One evaluation's figures.
struct Evaluation {
    time: Duration,
    windows: usize,
    scored: usize,
    nll_sum: f64,
}

impl Evaluation {
    fn mean_nll(&self) -> f64 {
        self.nll_sum / self.scored as f64
    }
}

/// nll = logsumexp(z) - z[target], in f64 (max-shifted), from the float32 logits.
fn nll(logits: &[f32], target: u32) -> Result<f64> {
    let zt = *logits
        .get(target as usize)
        .ok_or_else(|| anyhow!("token id {target} is outside the model's {} logits", logits.len()))?
        as f64;
    let m = logits.iter().fold(f64::NEG_INFINITY, |m, &z| m.max(z as f64));
    let sum: f64 = logits.iter().map(|&z| (z as f64 - m).exp()).sum();
    let value = (m - zt) + sum.ln();
    if !value.is_finite() || logits.iter().any(|z| z.is_nan()) {
        bail!("non-finite logits while scoring token id {target}");
    }
    Ok(value)
}

/// Feed one window through `session` (an empty KV cache); returns the sum of its scored
/// positions' nll.
fn score_window(session: &mut Session, ids: &[u32], w: Window, device: &Device) -> Result<f64> {
    if w.first_scored >= w.end {
        return Ok(0.0);
    }
    let mut sum = 0.0;
    let mut logits = session.forward(&ids[w.begin..w.first_scored], 0, device)?;
    for i in w.first_scored..w.end {
        if i > w.first_scored {
            logits = session.forward(&ids[i - 1..i], i - 1 - w.begin, device)?;
        }
        sum += nll(&logits, ids[i])?;
    }
    Ok(sum)
}

/// Score `windows` in order, each from a fresh session. `time` covers the windows' forward
/// passes and scoring; making each window's empty KV cache is left out, as for generation.
fn evaluate(model: &Model, ids: &[u32], windows: &[Window], device: &Device) -> Result<Evaluation> {
    let mut eval = Evaluation { time: Duration::ZERO, windows: windows.len(), scored: 0, nll_sum: 0.0 };
    for &w in windows {
        let mut session = model.session(device)?;
        let t0 = Instant::now();
        eval.nll_sum += score_window(&mut session, ids, w, device)?;
        eval.time += t0.elapsed();
        eval.scored += w.end - w.first_scored.min(w.end);
    }
    Ok(eval)
}

pub fn run(job: &Job, spec: &Spec, loaded: &Loaded, model_load: Duration, device: &Device) -> Result<Value> {
    let file = read_ids(spec)?;
    let ids = &file.ids;
    let n = ids.len();
    if n < 2 {
        bail!("ids file {}: {n} id(s), at least 2 are needed", spec.ids_path.display());
    }
    let limit = loaded.position_limit();
    if spec.context > limit {
        bail!("workload.context ({}) exceeds the model's context length ({limit})", spec.context);
    }
    if let Some(vocab) = loaded.vocab_size {
        if let Some((i, id)) = ids.iter().enumerate().find(|(_, &id)| id as usize >= vocab) {
            bail!("ids file {}: ids[{i}] = {id} is outside the model's vocabulary ({vocab})", spec.ids_path.display());
        }
    }
    let plan = windows(n, spec.context, spec.stride);

    for _ in 0..job.warmup {
        evaluate(&loaded.model, ids, &plan[..1], device)?;
    }
    let (evals, cpu) = measure(|| {
        (0..job.repetitions).map(|_| evaluate(&loaded.model, ids, &plan, device)).collect::<Result<Vec<_>>>()
    })?;
    let first = evals.first().ok_or_else(|| anyhow!("no repetitions"))?;
    let mean_nll = first.mean_nll();

    let repetitions: Vec<Value> = evals
        .iter()
        .enumerate()
        .map(|(i, e)| {
            json!({
                "index": i,
                "time_s": secs(e.time),
                "windows": e.windows,
                "scored_tokens": e.scored,
                "mean_nll": e.mean_nll(),
            })
        })
        .collect();
    let mut fields = Map::new();
    fields.insert(
        "perplexity".into(),
        json!({
            "text": spec.text,
            "ids_sha256": spec.ids_sha256,
            "tokens": n,
            "context": spec.context,
            "stride": spec.stride,
            "windows": first.windows,
            "scored_tokens": first.scored,
            "mean_nll": mean_nll,
            "perplexity": mean_nll.exp(),
        }),
    );
    fields.insert("repetitions".into(), Value::Array(repetitions));

    let forwards: usize = plan.iter().map(|w| w.end.saturating_sub(w.first_scored)).sum();
    let mut extra = Map::new();
    extra.insert(
        "timing".into(),
        json!("std::time::Instant per window, summed per repetition: the window's forward passes (candle CPU \
               ops are synchronous, logits copied out) and the nll of its scored positions; making each \
               window's empty KV cache (untimed, as for generation) is left out. Warmup: the first window \
               only, untimed."),
    );
    extra.insert(
        "load".into(),
        json!({
            "model_s": secs(model_load),
            "how": "load_time_s = model load (weights read/mapped, tensors built); no tokenizer is loaded: \
                    the ids come tokenized in the ids file",
        }),
    );
    extra.insert("model".into(), loaded.info.clone());
    extra.insert("format".into(), json!(job.format));
    extra.insert("context_length".into(), json!(loaded.context_length));
    extra.insert("vocab_size".into(), json!(loaded.vocab_size));
    extra.insert(
        "evaluation".into(),
        json!({
            "ids_path": spec.ids_path.display().to_string(),
            "ids_file_bytes": file.bytes,
            "ids_file_text": file.text,
            "ids_file_tokenizer": file.tokenizer,
            "bos": "none added: the ids are scored as given",
            "forward_passes_per_evaluation": forwards,
            "largest_window": plan.iter().map(|w| w.end - w.begin).max(),
            "how": "each window from an empty KV cache: ids[begin..first_scored] in one forward pass (its last \
                    position's logits score first_scored), then each following id alone through the KV cache, \
                    its logits scoring the next position (candle's llama/quantized_llama return only the last \
                    position's logits). nll = logsumexp(z) - z[target] in f64 from the f32 logits (max-shifted); \
                    mean_nll = sum / scored_tokens; perplexity = exp(mean_nll) of the first repetition",
        }),
    );
    finish_result(job, model_load, &cpu, fields, extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(begin: usize, end: usize, first_scored: usize) -> Window {
        Window { begin, end, first_scored }
    }

    #[test]
    fn windows_follow_the_contract() {
        assert_eq!(windows(10, 4, 2), vec![w(0, 4, 1), w(2, 6, 4), w(4, 8, 6), w(6, 10, 8)]);
        assert_eq!(windows(3, 8, 4), vec![w(0, 3, 1)]);
        assert_eq!(windows(2, 2, 1), vec![w(0, 2, 1)]);
        for (n, c, s) in [(1024, 256, 128), (1000, 256, 255), (17, 5, 3), (300, 256, 1)] {
            let plan = windows(n, c, s);
            let scored: usize = plan.iter().map(|w| w.end - w.first_scored).sum();
            assert_eq!(scored, n - 1, "{n} {c} {s}");
            assert_eq!(plan.last().unwrap().end, n);
            assert!(plan.iter().all(|w| w.end - w.begin <= c));
        }
    }

    #[test]
    fn nll_is_log_softmax() {
        let z = [1.0f32, 2.0, 3.0];
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((nll(&z, 0).unwrap() - (lse - 1.0)).abs() < 1e-12);
        assert!((nll(&[0.0f32; 4], 3).unwrap() - 4f64.ln()).abs() < 1e-12);
        assert!(nll(&z, 3).is_err());
    }
}
