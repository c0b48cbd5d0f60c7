"""Export a made Hugging Face Llama model to ONNX (fp32) with key/value-cache inputs and outputs.

Usage: export_onnx.py --hf DIR/hf --out DIR/onnx [--opset 18] [--force] [--no-check]
                      [--external-data auto|always|never]

Writes DIR/onnx/model.onnx (+ model.onnx.data for a model over protobuf's 2 GB limit)
and DIR/onnx/onnx_io.json (input/output names, shapes, cache layout) so a runner can feed
one graph for both prefill (many tokens, empty past) and decode (one token + past):

  inputs   input_ids [batch, sequence] int64, attention_mask [batch, total_sequence] int64
           (1 = attend; total_sequence = past_sequence + sequence), position_ids
           [batch, sequence] int64, past_key_values.N.key / .value
           [batch, kv_heads, past_sequence, head_dim] float32 (past_sequence may be 0)
  outputs  logits [batch, 1, vocab] float32 (last position only), present.N.key / .value
           [batch, kv_heads, total_sequence, head_dim] float32

The graph comes from transformers' own LlamaForCausalLM (eager attention), traced by
torch.onnx.export's TorchScript exporter (dynamo=False). The causal mask is built inside
the exported wrapper from attention_mask with plain tensor ops, so no transformers
mask-creation branch is frozen into the trace. The tied output layer is stored twice
(the embedding and the transposed lm_head weight), as the exporter writes it.

With the `onnx` package installed (it is in the image) the result is checked with
onnx.checker and compared against PyTorch with onnx's reference evaluator, for a prefill
with empty past and a decode step with past. The same model in the same image gives a
byte-identical model.onnx. Progress goes to stderr, a one-line JSON summary to stdout.
Exit 1 when a step fails, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path

ONNX_IO_SCHEMA = "orchestrate.modelmaker.onnx_io/1"
MODEL_NAME = "model.onnx"
DATA_NAME = "model.onnx.data"
IO_NAME = "onnx_io.json"
DEFAULT_OPSET = 18
# Shapes of the dummy inputs the trace is taken with: none may be 0 or 1, so that no
# size is mistaken for a constant or a broadcast dimension.
TRACE_BATCH, TRACE_SEQ, TRACE_PAST = 2, 3, 5
# Largest |onnx - torch| difference accepted by the check (fp32, values of order 10).
CHECK_ATOL = 1e-3

_START = time.monotonic()


class ExportError(RuntimeError):
    """A step of the export failed; the message says which and why."""


def log(message: str) -> None:
    print(f"[export_onnx {time.monotonic() - _START:6.1f}s] {message}", file=sys.stderr, flush=True)


def io_names(num_layers: int) -> tuple[list[str], list[str]]:
    inputs = ["input_ids", "attention_mask", "position_ids"]
    outputs = ["logits"]
    for layer in range(num_layers):
        inputs += [f"past_key_values.{layer}.key", f"past_key_values.{layer}.value"]
        outputs += [f"present.{layer}.key", f"present.{layer}.value"]
    return inputs, outputs


def dynamic_axes(num_layers: int) -> dict[str, dict[int, str]]:
    axes = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "position_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch"},
    }
    for layer in range(num_layers):
        for kind in ("key", "value"):
            axes[f"past_key_values.{layer}.{kind}"] = {0: "batch", 2: "past_sequence"}
            axes[f"present.{layer}.{kind}"] = {0: "batch", 2: "total_sequence"}
    return axes


def make_wrapper(model, num_layers: int):
    """An nn.Module whose forward takes and returns flat tensors (what the tracer needs)."""
    import torch
    from transformers.cache_utils import DynamicCache, DynamicLayer

    class KVCacheLM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = model

        def forward(self, input_ids, attention_mask, position_ids, *past):
            # The cache starts out holding the given past tensors as they are (the layers'
            # own update() would concatenate them onto an empty 1-D tensor first).
            cache = DynamicCache()
            for layer in range(num_layers):
                entry = DynamicLayer()
                entry.keys, entry.values = past[2 * layer], past[2 * layer + 1]
                entry.dtype, entry.device = entry.keys.dtype, entry.keys.device
                entry.is_initialized = True
                cache.layers.append(entry)

            # Additive 4-D mask [batch, 1, sequence, total_sequence]: query i (absolute
            # position past + i) sees key j when j <= past + i and attention_mask[j] == 1.
            # transformers uses a 4-D mask as given.
            seq = input_ids.shape[1]
            total = attention_mask.shape[1]
            key_pos = torch.arange(total, device=input_ids.device)
            query_pos = torch.arange(seq, device=input_ids.device) + (total - seq)
            allowed = key_pos[None, :] <= query_pos[:, None]
            allowed = allowed[None, None, :, :] & attention_mask[:, None, None, :].bool()
            zero = torch.zeros((), dtype=torch.float32)
            lowest = torch.full((), torch.finfo(torch.float32).min, dtype=torch.float32)
            mask = torch.where(allowed, zero, lowest)

            # cache_position given too: otherwise transformers derives it from the cache
            # length with a Python branch the tracer would freeze.
            out = self.lm(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                          past_key_values=cache, cache_position=query_pos, use_cache=True,
                          logits_to_keep=1, return_dict=True)
            present = []
            for entry in out.past_key_values.layers[:num_layers]:
                present += [entry.keys, entry.values]
            return (out.logits, *present)

    return KVCacheLM().eval()


def dummy_inputs(config, batch: int, seq: int, past: int, seed: int = 0):
    """Deterministic inputs: token ids, an all-ones mask, positions after the past, random past."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    head_dim = config.head_dim
    input_ids = torch.randint(3, config.vocab_size, (batch, seq), generator=generator, dtype=torch.int64)
    attention_mask = torch.ones((batch, past + seq), dtype=torch.int64)
    position_ids = (torch.arange(seq, dtype=torch.int64) + past).unsqueeze(0).expand(batch, seq).contiguous()
    cache = []
    for _ in range(config.num_hidden_layers * 2):
        cache.append(torch.randn((batch, config.num_key_value_heads, past, head_dim), generator=generator))
    return (input_ids, attention_mask, position_ids, *cache)


def prepare_out(out: Path, force: bool) -> None:
    targets = [out / MODEL_NAME, out / DATA_NAME, out / IO_NAME]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        raise ExportError(f"output exists ({', '.join(map(str, existing))}); pass --force to replace it")
    for path in existing:
        path.unlink()
    if not out.is_dir():
        out.mkdir(parents=True)
        os.chmod(out, 0o755)  # another uid (the engine container's) must read it


def reference_cases(wrapper, config, inputs: list[str]) -> list[tuple[str, dict, list]]:
    """PyTorch's outputs for a 4-token prefill from an empty cache and one decode step fed
    with its presents: computed before export so the model can be freed before the check."""
    import numpy as np
    import torch

    feeds = dummy_inputs(config, 1, 4, 0, seed=1)
    cases = []
    with torch.no_grad():
        expected = [t.numpy().copy() for t in wrapper(*feeds)]
        cases.append(("prefill", {n: t.numpy().copy() for n, t in zip(inputs, feeds)}, expected))
        past = feeds[1].shape[1]
        feeds = (torch.tensor([[int(np.argmax(expected[0][0, -1]))]], dtype=torch.int64),
                 torch.ones((1, past + 1), dtype=torch.int64), torch.tensor([[past]], dtype=torch.int64),
                 *(torch.from_numpy(t) for t in expected[1:]))
        expected = [t.numpy().copy() for t in wrapper(*feeds)]
        cases.append(("decode", {n: t.numpy().copy() for n, t in zip(inputs, feeds)}, expected))
    return cases


def export(hf_dir: Path, out: Path, opset: int, check: bool, external_data: str) -> dict:
    import gc

    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig.from_pretrained(str(hf_dir))
    if config.model_type != "llama":
        raise ExportError(f"{hf_dir}: model_type {config.model_type!r}, expected 'llama'")
    model = LlamaForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32,
                                             attn_implementation="eager").eval()
    num_layers = config.num_hidden_layers
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    config.head_dim = head_dim
    wrapper = make_wrapper(model, num_layers)
    inputs, outputs = io_names(num_layers)
    args = dummy_inputs(config, TRACE_BATCH, TRACE_SEQ, TRACE_PAST)
    log(f"loaded {hf_dir}: {num_layers} layers, {config.num_key_value_heads} kv heads, "
        f"head_dim {head_dim}, vocab {config.vocab_size}; tracing with batch {TRACE_BATCH}, "
        f"sequence {TRACE_SEQ}, past {TRACE_PAST}; peak RSS {peak_rss_text()}")
    cases = reference_cases(wrapper, config, inputs) if check else None

    # Everything is written into a private folder inside --out and moved into place at the
    # end, external data first and model.onnx last (its presence marks a complete export).
    stage = out / f".export-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    traced = stage / "traced"
    traced.mkdir(parents=True)
    try:
        with torch.no_grad():
            torch.onnx.export(
                wrapper, args, str(traced / MODEL_NAME),
                dynamo=False,
                opset_version=opset,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=dynamic_axes(num_layers),
                do_constant_folding=True,
                export_params=True,
            )
        del wrapper, model, args
        gc.collect()
        # Over protobuf's 2 GB limit the exporter writes every tensor to a file of its own
        # beside model.onnx; those are gathered into one model.onnx.data.
        split = len(os.listdir(traced)) > 1
        log(f"exported {sum(p.stat().st_size for p in traced.iterdir()):,} bytes in "
            f"{len(os.listdir(traced))} file(s) (opset {opset}, TorchScript exporter); peak RSS {peak_rss_text()}")
        if split and external_data == "never":
            raise ExportError("the model is over protobuf's 2 GB limit and needs external data "
                              "(--external-data auto)")
        final = traced
        if external_data == "always" or split:
            final = stage / "final"
            final.mkdir()
            to_one_data_file(traced / MODEL_NAME, final)
            shutil.rmtree(traced)
        graph_io = check_model(final / MODEL_NAME, cases, inputs, outputs) if check else None
        produced = sorted(os.listdir(final), key=lambda name: name == MODEL_NAME)
        for name in produced:
            os.chmod(final / name, 0o644)
            os.replace(final / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    has_data = DATA_NAME in produced

    description = {
        "schema": ONNX_IO_SCHEMA,
        "model": MODEL_NAME,
        "sha256": sha256_file(out / MODEL_NAME),
        "bytes": (out / MODEL_NAME).stat().st_size,
        "external_data": {"path": DATA_NAME, "sha256": sha256_file(out / DATA_NAME),
                          "bytes": (out / DATA_NAME).stat().st_size} if has_data else None,
        "dtype": "float32",
        "opset": opset,
        "exporter": {"tool": "torch.onnx.export", "mode": "torchscript (dynamo=False)",
                     "torch": torch.__version__, "transformers": transformers.__version__,
                     "attn_implementation": "eager"},
        "architecture": "LlamaForCausalLM",
        "num_layers": num_layers,
        "num_attention_heads": config.num_attention_heads,
        "num_kv_heads": config.num_key_value_heads,
        "head_dim": head_dim,
        "hidden_size": config.hidden_size,
        "vocab_size": config.vocab_size,
        "context_length": config.max_position_embeddings,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "tied_output_duplicated": bool(config.tie_word_embeddings),
        "inputs": inputs,
        "outputs": outputs,
        "logits": "last position only: [batch, 1, vocab]",
        "past_shape": ["batch", config.num_key_value_heads, "past_sequence", head_dim],
        "empty_past": f"float32 zeros of shape [batch, {config.num_key_value_heads}, 0, {head_dim}] "
                      "for every past_key_values.N.key/value",
        "attention_mask": "int64 [batch, past_sequence + sequence], 1 = attend",
        "position_ids": "int64 [batch, sequence], past_sequence + 0..sequence-1 without padding",
        "cache_feedback": "present.N.key/value become past_key_values.N.key/value of the next call",
        "graph_io": graph_io,
        "checked": check,
    }
    if check:
        description["check"] = {"atol": CHECK_ATOL, "cases": "prefill (past 0) and decode (past 4)",
                                "how": "onnx.checker + onnx.reference.ReferenceEvaluator vs PyTorch"}
    io_path = out / IO_NAME
    io_partial = out / f".{IO_NAME}.partial"
    io_partial.write_text(json.dumps(description, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.chmod(io_partial, 0o644)
    os.replace(io_partial, io_path)
    return description


def to_one_data_file(source: Path, dest_dir: Path) -> None:
    """Rewrite source (with or without external tensors) as dest_dir/model.onnx whose
    tensors of 1 KiB or more live in dest_dir/model.onnx.data, in graph order."""
    import onnx

    proto = onnx.load(str(source), load_external_data=True)
    onnx.save_model(proto, str(dest_dir / MODEL_NAME), save_as_external_data=True,
                    all_tensors_to_one_file=True, location=DATA_NAME, size_threshold=1024)
    del proto
    log(f"tensors gathered into {DATA_NAME} ({(dest_dir / DATA_NAME).stat().st_size:,} bytes); "
        f"peak RSS {peak_rss_text()}")


def check_model(path: Path, cases: list, inputs: list[str], outputs: list[str]) -> dict:
    """onnx.checker, the graph's declared inputs/outputs, and numbers against PyTorch."""
    import numpy as np
    import onnx
    from onnx.reference import ReferenceEvaluator

    onnx.checker.check_model(str(path), full_check=True)  # by path: works past 2 GB
    proto = onnx.load(str(path), load_external_data=False)
    got_in = [i.name for i in proto.graph.input]
    got_out = [o.name for o in proto.graph.output]
    if got_in != inputs or got_out != outputs:
        raise ExportError(f"graph inputs/outputs differ from the plan: {got_in} -> {got_out}")

    def describe(value) -> dict:
        tensor = value.type.tensor_type
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in tensor.shape.dim]
        return {"name": value.name, "type": onnx.TensorProto.DataType.Name(tensor.elem_type).lower(),
                "shape": dims}

    graph_io = {"inputs": [describe(v) for v in proto.graph.input],
                "outputs": [describe(v) for v in proto.graph.output]}
    del proto
    evaluator = ReferenceEvaluator(str(path))
    for case, feeds, expected in cases:
        got = evaluator.run(None, feeds)
        worst = 0.0
        for name, want, have in zip(outputs, expected, got):
            if want.shape != have.shape:
                raise ExportError(f"{case}: {name} has shape {have.shape}, PyTorch {want.shape}")
            worst = max(worst, float(np.max(np.abs(want - have))) if want.size else 0.0)
        if not worst <= CHECK_ATOL:
            raise ExportError(f"{case}: ONNX differs from PyTorch by {worst:g} (> {CHECK_ATOL})")
        log(f"check {case}: {len(outputs)} outputs, shapes match, max |diff| {worst:.2e}")
    return graph_io


def peak_rss_text() -> str:
    """VmHWM of this process, for sizing exports of large models."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return f"{int(line.split()[1]) * 1024 / 2**30:.2f} GiB"
    except (OSError, ValueError):
        pass
    return "unknown"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hf", type=Path, required=True, help="Hugging Face model folder (DIR/hf)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (DIR/onnx)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--force", action="store_true", help="replace an existing export in --out")
    parser.add_argument("--no-check", dest="check", action="store_false",
                        help="skip onnx.checker and the comparison with PyTorch")
    parser.add_argument("--external-data", choices=("auto", "always", "never"), default="auto",
                        help=f"tensors in {DATA_NAME}: auto = only past protobuf's 2 GB limit (default)")
    args = parser.parse_args(argv)
    if not (args.hf / "config.json").is_file():
        print(f"error: {args.hf}/config.json not found", file=sys.stderr)
        return 2
    try:
        prepare_out(args.out, args.force)
        description = export(args.hf, args.out, args.opset, args.check, args.external_data)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    log(f"done in {time.monotonic() - _START:.1f}s, peak RSS {peak_rss_text()}")
    print(json.dumps({"model": str(args.out / MODEL_NAME), "sha256": description["sha256"],
                      "bytes": description["bytes"], "external_data": description["external_data"],
                      "num_layers": description["num_layers"], "onnx_io": str(args.out / IO_NAME)},
                     sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
