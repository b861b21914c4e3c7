"""Inference speed of the surrogate beside the Monte Carlo pricer, written to benchmarks/results/.

    python benchmarks/bench_inference.py [--surrogate models/<artifact>] [--n-batch 100000] [--mc-samples 2]
    python benchmarks/bench_inference.py --quick --out /tmp/inference.json   # a check that it runs

Measures surfaces per second for a batch through the ``tf.function`` path, ``keras.Model.predict``
and the NumPy forward pass, single-surface latency (NumPy and ``tf.function``), and the Monte Carlo
engine's seconds per surface (``qrh_lib.pricer.pricing.mc_iv_surface`` at its default accuracy) in the same
run. Without ``--surrogate`` a smoke surrogate is trained on synthetic data (timings only). Inputs are the
first points of the Sobol design inside the surrogate's domain.
"""

from __future__ import annotations

from _common import (
    get_surrogate,
    model_summary,
    parse_args,
    parser,
    record,
    result_path,
    sample_domain,
    timed,
    write_result,
)

#: Sizes of ``--quick``.
QUICK = {"n_batch": 2000, "n_single": 50, "mc_samples": 1}


def main(argv=None) -> dict:
    p = parser(__doc__, "inference", surrogate=True)
    p.add_argument("--n-batch", type=int, default=100_000, help="surfaces in the batched timing")
    p.add_argument("--n-single", type=int, default=2000, help="repetitions of the single-surface timing")
    p.add_argument("--mc-samples", type=int, default=2, help="surfaces priced by Monte Carlo (0 skips)")
    a = parse_args(p, argv, quick=QUICK)
    out = result_path(a, "inference")

    sur, origin = get_surrogate(a.surrogate, a.seed)
    X = sample_domain(a.n_batch, sur.domain, seed=a.seed)  # inputs of the surrogate's domain (the stable part)
    x1 = X[:1]

    batched = {}
    for name, fn in (("tf_function", sur.predict), ("keras_predict", sur.predict_keras), ("numpy", sur.predict_numpy)):
        t = timed(lambda fn=fn: fn(X), repeat=3, warmup=1)  # the warm-up traces the graph
        batched[name] = {"seconds_best": t.best, "surfaces_per_second": a.n_batch / t.best}
    single = {name: timed(lambda fn=fn: fn(x1), repeat=a.n_single, warmup=1).us()
              for name, fn in (("numpy", sur.predict_numpy), ("tf_function", sur.predict))}
    # The bare forward pass, without the input-box check and scaling (what a calibrator calls).
    xs1 = sur.scale_inputs(x1)
    single["numpy_forward_only"] = timed(lambda: sur.numpy_net.forward(xs1), repeat=a.n_single, warmup=1).us()

    mc = {"skipped": True}
    if a.mc_samples > 0:
        try:
            from qrh_lib.pricer.pricing import mc_iv_surface
        except ImportError as err:
            mc = {"skipped": True, "note": f"qrh_lib.pricer.pricing not importable: {err}"}
        else:
            Xm = X[: a.mc_samples]
            t = timed(lambda: mc_iv_surface(Xm, seed=a.seed), warmup=1).best  # the warm-up compiles
            mc = {
                "skipped": False,
                "n_surfaces": int(a.mc_samples),
                "seconds_per_surface": float(t / a.mc_samples),
                "settings": "mc_iv_surface defaults (MCConfig)",
            }
    result = record("inference", surrogate=origin, model=model_summary(sur), n_batch=a.n_batch, batched=batched,
                    single_surface=single, monte_carlo=mc)
    if not mc["skipped"]:
        best = max(v["surfaces_per_second"] for v in batched.values())
        result["speedup_vs_mc"] = {
            "batched": best * mc["seconds_per_surface"],
            "single_numpy": mc["seconds_per_surface"] / (1e-6 * single["numpy"]["median_us"]),
        }
    write_result(out, result)
    for k, v in batched.items():
        print(f"  batched {k:14s} {v['surfaces_per_second']:12,.0f} surfaces/s")
    for k, v in single.items():
        print(f"  single  {k:20s} {v['median_us']:8.1f} us median")
    if not mc["skipped"]:
        print(f"  Monte Carlo {mc['seconds_per_surface']:.3f} s/surface")
    return result


if __name__ == "__main__":
    main()
