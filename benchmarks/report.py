"""The markdown table of a benchmark run, as README "Performance" shows it."""

from __future__ import annotations

from stats import fmt

TRAINERS = {
    "tutorial": "the tutorials' loop",
    "lightning": "Lightning, its docs' DataLoader",
    "lightning-tensors": "Lightning, in-memory TensorDataset",
    "mnist train": "`mnist train`",
}


def table(results: dict) -> str:
    """The markdown table README "Performance" shows."""
    lines = ["| measurement | median (min-max) | notes |", "|---|---|---|"]
    for recipe, r in results.get("peers", {}).items():
        head = f"{recipe} ({r['model']}, batch {r['batch_size']})"
        for trainer, t in r["trainers"].items():
            ratio = "" if trainer == "mnist train" else f"; `mnist train` {t['mnist_speedup_per_sample']:.1f}x per sample"
            lines.append(
                f"| {head}, {TRAINERS[trainer]}, s/epoch | {fmt(t['seconds_per_epoch'])} | {t['samples_per_epoch']} "
                f"samples/epoch; {t['fraction_of_matmul']:.0%} of the matmul rate{ratio}; "
                f"test acc after {r['epochs']} epochs {t['test_accuracy']:.2%} |"
            )
        lines.append(
            f"| {head}, the arithmetic alone, s/epoch | {r['arithmetic_seconds_per_epoch']:.2f} | 6 x parameters x 55,000 "
            f"images at {fmt(r['matmul_gflops'], 1)} GFLOP/s, this run's fp32 matmul rate on the recipe's matmuls |"
        )
        if r["lightning"] != "measured" and recipe == "classic-256":
            lines.append(f"| {head}, Lightning | - | {r['lightning']} |")
    for batch, p in results.get("profile", {}).items():
        cells = ", ".join(f"{k} {v['median']:.0f}" for k, v in p.items() if k != "loop")
        lines.append(
            f"| a step at batch {batch}, us (the real loop) | {fmt(p['loop'], 0)} | {cells} (medians of {p['data']['n']}) |"
        )
    for recipe, r in results.get("loaded", {}).items():
        lines.append(
            f"| configs/{recipe}.yaml s/epoch, quiet / with two busy loops | {fmt(r['quiet'])} / {fmt(r['loaded'])} | "
            f"loaded/quiet {r['ratio']:.1f}x (target at most 3x) |"
        )
    eff = results.get("efficiency")
    if eff:
        sps = fmt(eff["samples_per_second"], 0)
        lines.append(f"| 784-512-512-10 batch 256 training, samples/s | {sps} | {eff['threads']} threads |")
        lines.append(
            f"| ... achieved GFLOP/s (6 x params/sample) | {fmt(eff['achieved_gflops'], 1)} | "
            f"{eff['fraction_of_matmul']:.0%} of the matmul figure below |"
        )
        lines.append(f"| fp32 matmul GFLOP/s, same sizes (fwd+bwd) | {fmt(eff['matmul_gflops'], 1)} | measured in this run |")
    for recipe, r in results.get("time_to_accuracy", {}).items():
        accs = r["test_accuracy"]
        lines.append(
            f"| time to {r['target']:.1%}: configs/{recipe}.yaml, whole command s | {fmt(r['wall_seconds'], 1)} | "
            f"test acc {fmt(accs, 2, 100)}%; {'reached' if r['reached'] else 'NOT reached'}; "
            f"peak RSS {r['peak_rss_mib']['median']:.0f} MiB |"
        )
    s = results.get("startup")
    if s:
        lines.append(f"| `mnist --help` wall s | {fmt(s['help_wall_seconds'], 3)} | |")
        lines.append(f"| `mnist predict` one image, wall s | {fmt(s['predict_one_wall_seconds'], 2)} | |")
        lines.append(f"| `mnist eval` 10k test images, wall s | {fmt(s['eval_10k_wall_seconds'], 2)} | whole command |")
        lines.append(f"| ... of which compute s | {fmt(s['eval_10k_compute_seconds'], 3)} | evaluate() in process |")
    sw = results.get("sweep_vs_loop")
    if sw:
        shape = "x".join(str(len(v)) for v in sw["grid"].values())
        what = f"{sw['runs']} runs: {shape} grid x {sw['seeds']} seeds, {sw['epochs']} epochs, tiny nets"
        n = sw["threads"]
        lines.append(f"| `mnist sweep`, {what}, wall s | {fmt(sw['sweep_wall_seconds'], 1)} | {n} workers x 1 thread |")
        lines.append(
            f"| shell loop of `mnist train`, same runs, wall s | {fmt(sw['loop_wall_seconds'], 1)} | "
            f"one after another, {n} threads each |"
        )
        lines.append(
            f"| sweep speed-up | {sw['speedup']:.1f}x | mean test acc {sw['sweep_mean_test_accuracy']:.2%} (sweep), "
            f"{sw['loop_mean_test_accuracy']:.2%} (loop) |"
        )
    v = results.get("serve")
    if v:
        lines.append(
            f"| `mnist serve`, {v['requests']} POST /api/predict from {v['clients']} clients, req/s | "
            f"{v['requests_per_second']:.0f} | p50 {v['p50_ms']:.1f} ms, p95 {v['p95_ms']:.1f} ms, p99 {v['p99_ms']:.1f} ms, "
            f"max {v['max_ms']:.0f} ms, "
            f"server CPU {v['server_cpu_ms_per_request']:.1f} ms a request, "
            f"{v['errors']} errors; target {v['target']}: {'met' if v['met'] else 'NOT met'} |"
        )
        if "one_client_p50_ms" in v:  # results recorded before it was measured lack it
            lines.append(
                f"| ... one client, one request at a time, p50 ms | {v['one_client_p50_ms']:.1f} | "
                f"p99 {v['one_client_p99_ms']:.1f} ms |"
            )
    h = results.get("health")
    if h:
        lines.append(
            f"| configs/default.yaml s/epoch, train.health on | {fmt(h['seconds_per_epoch_on'])} | "
            f"{h['seconds_per_epoch_on']['n']} epochs, runs alternating with off |"
        )
        lines.append(
            f"| ... train.health off | {fmt(h['seconds_per_epoch_off'])} | "
            f"overhead {h['overhead_of_medians']:+.1%} of medians, {fmt(h['overhead_paired_runs'], 1, 100)}% per run pair |"
        )
        lines.append(
            f"| ... one probe, in process, ms | {h['probe_seconds'] * 1000:.1f} | {h['probes_per_epoch']} per epoch, a step "
            f"{h['step_seconds'] * 1000:.1f} ms: {h['overhead_estimated']:.1%} of an epoch |"
        )
    m = results["machine"]
    gpu = m["cuda"] or "none lent to this run"
    mode = " (quick mode)" if results["quick"] else ""
    head = f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, GPU: {gpu}; {results['date']}{mode}"
    return head + "\n\n" + "\n".join(lines) + "\n"
