//! What the runner says about its build: crate versions (from the embedded Cargo.lock), the
//! compiler, flags and target features, and whether this CPU can run the machine code.

use serde_json::{json, Map, Value};

const CARGO_LOCK: &str = include_str!("../Cargo.lock");
const CARGO_TOML: &str = include_str!("../Cargo.toml");

pub fn locked_version(name: &str) -> Option<String> {
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

pub fn build_info() -> Value {
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
pub fn missing_cpu_features() -> Vec<&'static str> {
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
