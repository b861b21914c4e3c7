"""Inference speed of the surrogate beside the Monte Carlo pricer, written to benchmarks/results/.

    python benchmarks/bench_inference.py [--surrogate models/<artifact>] [--n-batch 100000] [--mc-samples 2]

Measures surfaces per second for a batch through the ``tf.function`` path, ``keras.Model.predict``
and the NumPy forward pass, single-surface latency (NumPy and ``tf.function``), and the Monte Carlo
engine's seconds per surface (``qrh_lib.pricer.pricing.mc_iv_surface`` at its default accuracy) in the same
run. Without ``--surrogate`` a smoke surrogate is trained on synthetic data (timings only).
"""

from __future__ import annotations

import numpy as np
from _common import common_parser, get_surrogate, machine, model_summary, timeit, write_result


def main(argv=None) -> dict:
    p = common_parser(__doc__, "inference")
    p.add_argument("--n-batch", type=int, default=100_000, help="surfaces in the batched timing")
    p.add_argument("--n-single", type=int, default=2000, help="repetitions of the single-surface timing")
    p.add_argument("--mc-samples", type=int, default=2, help="surfaces priced by Monte Carlo (0 skips)")
    a = p.parse_args(argv)

    sur, origin = get_surrogate(a.surrogate, a.seed)
    box = sur.box
    rng = np.random.default_rng(a.seed)
    X = box.lo + (box.hi - box.lo) * rng.random((a.n_batch, box.lo.size))
    X = np.resize(X[sur.domain.contains(X)], X.shape)  # inputs of the surrogate's domain (the stable part)
    x1 = X[:1]
    sur.predict(X[:1000]), sur.predict_keras(X[:1000]), sur.predict_numpy(X[:1000])  # warm-up / tracing

    batched = {}
    for name, fn in (("tf_function", sur.predict), ("keras_predict", sur.predict_keras), ("numpy", sur.predict_numpy)):
        t = timeit(lambda fn=fn: fn(X), repeat=3)
        batched[name] = {"seconds_best": float(t.min()), "surfaces_per_second": float(a.n_batch / t.min())}
    single = {}
    for name, fn in (("numpy", sur.predict_numpy), ("tf_function", sur.predict)):
        t = timeit(lambda fn=fn: fn(x1), repeat=a.n_single)
        single[name] = {"median_us": 1e6 * float(np.median(t)), "p90_us": 1e6 * float(np.percentile(t, 90))}
    # The bare forward pass, without the input-box check and scaling (what a calibrator calls).
    xs1 = sur.scale_inputs(x1)
    t = timeit(lambda: sur.numpy_net.forward(xs1), repeat=a.n_single)
    single["numpy_forward_only"] = {"median_us": 1e6 * float(np.median(t)), "p90_us": 1e6 * float(np.percentile(t, 90))}

    mc = {"skipped": True}
    if a.mc_samples > 0:
        try:
            from qrh_lib.pricer.pricing import mc_iv_surface
        except ImportError as err:
            mc = {"skipped": True, "note": f"qrh_lib.pricer.pricing not importable: {err}"}
        else:
            Xm = X[: a.mc_samples]
            mc_iv_surface(Xm[:1], seed=a.seed)  # warm-up (graph tracing)
            t = timeit(lambda: mc_iv_surface(Xm, seed=a.seed), repeat=1)[0]
            mc = {
                "skipped": False,
                "n_surfaces": int(a.mc_samples),
                "seconds_per_surface": float(t / a.mc_samples),
                "settings": "mc_iv_surface defaults (MCConfig)",
            }
    result = {
        "benchmark": "inference",
        "surrogate": origin,
        "model": model_summary(sur),
        "machine": machine(),
        "n_batch": a.n_batch,
        "batched": batched,
        "single_surface": single,
        "monte_carlo": mc,
    }
    if not mc["skipped"]:
        best = max(v["surfaces_per_second"] for v in batched.values())
        result["speedup_vs_mc"] = {
            "batched": best * mc["seconds_per_surface"],
            "single_numpy": mc["seconds_per_surface"] / (1e-6 * single["numpy"]["median_us"]),
        }
    path = write_result("inference", result, a.out)
    print(f"wrote {path}")
    for k, v in batched.items():
        print(f"  batched {k:14s} {v['surfaces_per_second']:12,.0f} surfaces/s")
    for k, v in single.items():
        print(f"  single  {k:20s} {v['median_us']:8.1f} us median")
    if not mc["skipped"]:
        print(f"  Monte Carlo {mc['seconds_per_surface']:.3f} s/surface")
    return result


if __name__ == "__main__":
    main()
