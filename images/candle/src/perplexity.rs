//! Perplexity windows (docs/contract.md, "The perplexity workload"): the runner kit plans the
//! windows and checks the ids; here each window is scored from an empty KV cache.
//!
//! candle's llama and quantized_llama forward passes return only the last position's
//! logits, so a window is fed as: its ids up to the first scored one in one forward pass
//! (its last position's logits score that id), then every following id alone through the
//! KV cache, each forward's logits scoring the next id. That gives the logits a full
//! forward over the window would give at those positions (causal attention), within float
//! error.

use crate::model::{Model, Session};
use anyhow::{anyhow, bail, Result};
use candle_core::Device;
use std::time::{Duration, Instant};

/// One window: its ids (positions 0..), the last `score_last` of them scored.
pub struct Window {
    pub ids: Vec<u32>,
    pub score_last: usize,
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

/// Feed one window through `session` (an empty KV cache); the sum of its scored ids' nll.
fn score_window(session: &mut Session, w: &Window, device: &Device) -> Result<f64> {
    let first = w.ids.len() - w.score_last;
    let mut sum = 0.0;
    let mut logits = session.forward(&w.ids[..first], 0, device)?;
    for i in first..w.ids.len() {
        if i > first {
            logits = session.forward(&w.ids[i - 1..i], i - 1, device)?;
        }
        sum += nll(&logits, w.ids[i])?;
    }
    Ok(sum)
}

/// One evaluation of the windows in order, each from a fresh session: (time, nll sum of each
/// window). The time covers the windows' forward passes and scoring; making each window's
/// empty KV cache is left out, as for generation.
pub fn evaluate(model: &Model, windows: &[Window], device: &Device) -> Result<(Duration, Vec<f64>)> {
    let (mut time, mut sums) = (Duration::ZERO, Vec::with_capacity(windows.len()));
    for w in windows {
        if w.score_last == 0 || w.score_last >= w.ids.len() {
            bail!("a window of {} ids cannot score its last {}", w.ids.len(), w.score_last);
        }
        let mut session = model.session(device)?;
        let t0 = Instant::now();
        sums.push(score_window(&mut session, w, device)?);
        time += t0.elapsed();
    }
    Ok((time, sums))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_is_log_softmax() {
        let z = [1.0f32, 2.0, 3.0];
        let lse = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
        assert!((nll(&z, 0).unwrap() - (lse - 1.0)).abs() < 1e-12);
        assert!((nll(&[0.0f32; 4], 3).unwrap() - 4f64.ln()).abs() < 1e-12);
        assert!(nll(&z, 3).is_err());
    }
}
