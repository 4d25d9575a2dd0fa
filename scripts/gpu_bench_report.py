"""The table, summary line and JSON of `just gpu-bench` (scripts/gpu_bench.py), from its results."""

import json


def get(results, name, key):
    value = results.get(name, {})
    return value.get(key) if isinstance(value, dict) else None


def report(r):
    def fmt(x, spec):
        return format(x, spec) if isinstance(x, (int, float)) else "—"

    def ratio(quill, torch):
        q, t = get(r, *quill), get(r, *torch)
        return round(q / t, 3) if isinstance(q, (int, float)) and isinstance(t, (int, float)) and t else None

    rows = [
        ("quill-cuda f32 (warm)", "cuda_f32_warm"),
        ("quill-cuda f32 (cold cache; partly warm after --cublas-first)", "cuda_f32_cold"),
        ("quill-cuda f32, weight gradients as 1 product", "cuda_f32_split1"),
        ("quill-cuda f32, burn's AdamW and clipping", "cuda_f32_burn_adamw"),
        ("quill-cuda f32, burn's layer norm", "cuda_f32_burn_layer_norm"),
        ("quill-cuda f32, burn's head split", "cuda_f32_burn_split_heads"),
        ("quill-cuda f32, burn's dropout", "cuda_f32_burn_dropout"),
        ("quill-cuda f32, cuBLAS products", "cuda_f32_cublas"),
        ("quill-cuda bf16-mixed", "cuda_bf16_mixed"),
        ("quill-cuda bf16-mixed, cuBLAS products", "cuda_bf16_cublas"),
        ("quill-cuda f32, burn's softmax", "cuda_f32_burn_softmax"),
        ("quill-cuda bf16-mixed, burn's softmax", "cuda_bf16_burn_softmax"),
        ("PyTorch eager f32 (strict f32 products, PyTorch's default)", "torch_f32"),
        ("PyTorch eager f32, TF32 products (as quill's)", "torch_f32_tf32"),
        ("PyTorch eager --amp bf16", "torch_bf16"),
        ("PyTorch --compile --amp bf16", "torch_compile_bf16"),
        ("quill-wgpu f32 (Vulkan)", "wgpu_f32"),
        ("quill-wgpu f32 (Vulkan), burn's softmax", "wgpu_f32_burn_softmax"),
        ("quill-cuda f32, dropout 0", "cuda_f32_dropout0"),
        ("PyTorch eager f32, dropout 0", "torch_f32_dropout0"),
    ]
    if isinstance(r.get("cuda_generate"), dict) and "generate_tokens_per_s" in r["cuda_generate"]:
        g = r["cuda_generate"]
        print(f"\nquill-cuda sampling: {g['generate_tokens_per_s']:.0f} chars/s cached, "
              f"{g['generate_tokens_per_s_uncached']:.0f} uncached, {g['wall_s']:.0f} s in all")
    print(f"\nGPU: {r.get('gpu')}\n")
    print("| what | ms/step | tokens/s | first step s | start to first step s | kernels compiled |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, key in rows:
        if key not in r:
            continue
        if "error" in r[key] or "skipped" in r[key]:
            print(f"| {label} | {(r[key].get('error') or r[key].get('skipped'))[-90:]} | | | | |")
            continue
        print(f"| {label} | {fmt(get(r, key, 'ms_per_step'), '.1f')} | {fmt(get(r, key, 'tokens_per_s'), '.0f')} "
              f"| {fmt(get(r, key, 'first_step_s'), '.1f')} | {fmt(get(r, key, 'startup_s'), '.1f')} "
              f"| {fmt(get(r, key, 'kernels_compiled'), 'd')} |")
    summary = {
        "gpu": r.get("gpu"),
        "quill_f32_over_torch_f32": ratio(("cuda_f32_warm", "tokens_per_s"), ("torch_f32", "tokens_per_s")),
        "quill_f32_over_torch_f32_tf32": ratio(("cuda_f32_warm", "tokens_per_s"),
                                               ("torch_f32_tf32", "tokens_per_s")),
        "cublas_f32_over_torch_f32_tf32": ratio(("cuda_f32_cublas", "tokens_per_s"),
                                                ("torch_f32_tf32", "tokens_per_s")),
        "weight_grad_split8_over_split1": ratio(("cuda_f32_warm", "tokens_per_s"),
                                                ("cuda_f32_split1", "tokens_per_s")),
        "memory_check": get(r, "cuda_memory_check", "error"),
        "cublas_f32_over_torch_f32": ratio(("cuda_f32_cublas", "tokens_per_s"), ("torch_f32", "tokens_per_s")),
        "cublas_bf16_over_torch_bf16": ratio(("cuda_bf16_cublas", "tokens_per_s"), ("torch_bf16", "tokens_per_s")),
        "cublas_f32_over_burn_f32": ratio(("cuda_f32_cublas", "tokens_per_s"), ("cuda_f32_warm", "tokens_per_s")),
        "adamw_kernels_over_burn_adamw_f32": ratio(("cuda_f32_warm", "tokens_per_s"),
                                                   ("cuda_f32_burn_adamw", "tokens_per_s")),
        "layer_norm_kernels_over_burn_layer_norm_f32": ratio(("cuda_f32_warm", "tokens_per_s"),
                                                             ("cuda_f32_burn_layer_norm", "tokens_per_s")),
        "split_heads_kernels_over_burn_split_heads_f32": ratio(("cuda_f32_warm", "tokens_per_s"),
                                                               ("cuda_f32_burn_split_heads", "tokens_per_s")),
        "cublas_bf16_over_burn_bf16": ratio(("cuda_bf16_cublas", "tokens_per_s"), ("cuda_bf16_mixed", "tokens_per_s")),
        "dropout_kernels_over_burn_dropout_f32": ratio(("cuda_f32_warm", "tokens_per_s"),
                                                       ("cuda_f32_burn_dropout", "tokens_per_s")),
        "softmax_kernels_over_burn_softmax_f32": ratio(("cuda_f32_warm", "tokens_per_s"),
                                                       ("cuda_f32_burn_softmax", "tokens_per_s")),
        "softmax_kernels_over_burn_softmax_bf16": ratio(("cuda_bf16_mixed", "tokens_per_s"),
                                                        ("cuda_bf16_burn_softmax", "tokens_per_s")),
        "wgpu_softmax_kernels_over_burn_softmax": ratio(("wgpu_f32", "tokens_per_s"),
                                                        ("wgpu_f32_burn_softmax", "tokens_per_s")),
        "eval_cuda_burn_softmax": get(r, "cuda_eval_burn_softmax", "loss"),
        "eval_wgpu_burn_softmax": get(r, "wgpu_eval_burn_softmax", "loss"),
        "cuda_tests_passed": get(r, "cuda_tests", "passed"),
        "cuda_tests_cublas_passed": get(r, "cuda_tests_cublas", "passed"),
        "host_f32": get(r, "cuda_f32_warm", "host"),
        "host_bf16_mixed": get(r, "cuda_bf16_mixed", "host"),
        "host_f32_cublas": get(r, "cuda_f32_cublas", "host"),
        "host_bf16_cublas": get(r, "cuda_bf16_cublas", "host"),
        "eval_cuda_cublas": get(r, "cuda_eval_cublas", "loss"),
        "quill_bf16_mixed_over_torch_bf16": ratio(("cuda_bf16_mixed", "tokens_per_s"), ("torch_bf16", "tokens_per_s")),
        "quill_bf16_mixed_over_torch_compile_bf16": ratio(("cuda_bf16_mixed", "tokens_per_s"),
                                                          ("torch_compile_bf16", "tokens_per_s")),
        # With --cublas-first, cuda_f32_cold found quill's own kernels cached: not a cold start.
        "cold_start_s": None if r.get("cublas_first") else get(r, "cuda_f32_cold", "startup_s"),
        # With --cublas-first, cuda_f32_cublas ran on the empty cache: the cold start with cuBLAS.
        "cublas_first": r.get("cublas_first"),
        "cublas_f32_start_s": get(r, "cuda_f32_cublas", "startup_s"),
        "cublas_f32_kernels_compiled": get(r, "cuda_f32_cublas", "kernels_compiled"),
        "warm_start_s": get(r, "cuda_f32_warm", "startup_s"),
        "warm_kernels_compiled": get(r, "cuda_f32_warm", "kernels_compiled"),
        "train_steps": get(r, "cuda_train", "steps"),
        "train_best_val_loss": get(r, "cuda_train", "best_val_loss"),
        "train_wall_s": get(r, "cuda_train", "wall_s"),
        "train_process_wall_s": get(r, "cuda_train", "process_wall_s"),
        "eval_cuda": get(r, "cuda_eval", "loss"),
        "eval_wgpu": get(r, "wgpu_eval", "loss"),
        "eval_cpu": get(r, "cpu_eval", "loss"),
        "wgpu_ms_per_step": get(r, "wgpu_f32", "ms_per_step"),
        "quill_f32_dropout0_over_torch": ratio(("cuda_f32_dropout0", "tokens_per_s"),
                                               ("torch_f32_dropout0", "tokens_per_s")),
        "devices_00_scaling": get(r, "cuda_devices_00", "scaling"),
        "one_process_tokens_per_s": get(r, "cuda_one_process", "tokens_per_s"),
        "two_nodes_tokens_per_s": get(r, "cuda_nodes_2", "tokens_per_s"),
        "two_nodes_over_one_process": ratio(("cuda_nodes_2", "tokens_per_s"),
                                            ("cuda_one_process", "tokens_per_s")),
        "two_nodes_best_val": get(r, "cuda_nodes_2", "best_val_loss"),
        "one_process_best_val": get(r, "cuda_one_process", "best_val_loss"),
    }
    print()
    for key in ("quill_f32_over_torch_f32", "quill_f32_over_torch_f32_tf32", "quill_bf16_mixed_over_torch_bf16",
                "quill_bf16_mixed_over_torch_compile_bf16", "cublas_f32_over_torch_f32",
                "cublas_f32_over_torch_f32_tf32", "cublas_bf16_over_torch_bf16",
                "softmax_kernels_over_burn_softmax_f32", "softmax_kernels_over_burn_softmax_bf16",
                "cuda_tests_cublas_passed", "cuda_tests_passed"):
        print(f"{key}: {summary[key]}")
    print(f"train: {summary['train_steps']} steps bf16-mixed, best val {summary['train_best_val_loss']}, "
          f"{fmt(summary['train_wall_s'], '.0f')} s; eval cuda {summary['eval_cuda']}, wgpu {summary['eval_wgpu']}, "
          f"cpu {summary['eval_cpu']}, cuda with cuBLAS {summary['eval_cuda_cublas']}, "
          f"with burn's softmax {summary['eval_cuda_burn_softmax']}, wgpu with burn's softmax "
          f"{summary['eval_wgpu_burn_softmax']}")
    print(json.dumps(summary))
