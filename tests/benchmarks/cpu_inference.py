"""CPU inference of PSPNet-50 against onnxruntime on the same model, in one run, alternated.

    python tests/benchmarks/cpu_inference.py                      # 2 and 1 threads, then the contention part
    python tests/benchmarks/cpu_inference.py --threads 2 --repeats 9 --no-contention
    python tests/benchmarks/cpu_inference.py --only contention    # 2 threads vs 1 with a busy process
    python tests/benchmarks/cpu_inference.py --jit --compile      # + torch.jit.freeze and torch.compile

PSPNet-50 with semseg's layout (``core.build_model(core.ModelConfig())``, 150 classes, random
weights with random BatchNorm statistics: timing does not depend on them), one 473x473 RGB
image, batch 1, float32. Every variant turns the same 0..255 image into logits (normalisation
included); "main + aux" variants return both heads' logits at the input size, "main" variants
only the main head's (onnxruntime then runs a graph exported without the aux head).

Variants: onnxruntime (``core.export_onnx``, CPU execution provider, same thread count); our
model as it is (``model.eval()``); BatchNorm folded (``fold_batchnorm``); + the main head split
by input group; + ReLU / residual sums fused into the convolutions; + the convolution weights
packed once into oneDNN's layout (= ``core.optimize_for_inference``, what the predictor runs); the same without the aux head and with channels_last; with ``--jit``
torch.jit.trace + freeze + optimize_for_inference; with ``--compile`` torch.compile (inductor,
freezing) of the folded model. Each round runs every variant once, in an order reversed every
other round; the table gives the median and the best of the rounds and the ratio of medians to
onnxruntime with the same heads (and, in brackets, the median of the ratios within
each round, less disturbed by a machine whose load changes). Outputs are checked against the model as it is.

Contention: a separate process keeps one core busy (a Python loop) while our default path runs
the full forward and a level switch (what ``core.inspect.LevelSwitch`` does once the head's
per-group convolutions are cached: small, memory-bound operations) with 2 threads and with 1
(and 2 with ``OMP_WAIT_POLICY=PASSIVE``), each in its own process, alternated over rounds; the
same without the busy process.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch import nn  # noqa: E402

import core  # noqa: E402
from core.model.inference import fold_batchnorm, optimize_for_inference  # noqa: E402

SIZE = 473


def build(seed: int = 0) -> core.PSPNet:
    torch.manual_seed(seed)
    model = core.build_model(core.ModelConfig())
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def torch_runner(net: nn.Module, image: torch.Tensor, channels_last: bool = False) -> Callable[[], tuple]:
    if channels_last:
        net = net.to(memory_format=torch.channels_last)

    def run() -> tuple:
        with torch.inference_mode():
            x = net.normalize(image)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out = net(x)
            return (out.main,) if out.aux is None else (out.main, out.aux)
    return run


class Heads(nn.Module):
    """image -> (main, aux) or (main,): a traceable / compilable view of a PSPNet."""

    def __init__(self, net: core.PSPNet):
        super().__init__()
        self.net = net

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.net(self.net.normalize(image))
        return (out.main,) if out.aux is None else (out.main, out.aux)


def module_runner(fn: Callable, image: torch.Tensor) -> Callable[[], tuple]:
    def run() -> tuple:
        with torch.inference_mode():
            return tuple(fn(image))
    return run


def ort_runner(path: Path, image: torch.Tensor, threads: int) -> Callable[[], tuple]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: image.numpy()}

    def run() -> tuple:
        return tuple(torch.from_numpy(a) for a in session.run(None, feed))
    return run


def export(model: core.PSPNet, folder: Path) -> dict[str, Path]:
    paths = {}
    main_only = copy.deepcopy(model)  # the same model without its aux head
    main_only.aux_head = None
    main_only.cfg = dataclasses.replace(main_only.cfg, aux=False)
    for name, net in (("main + aux", model), ("main", main_only)):
        path = folder / f"pspnet50_{'aux' if net.aux_head is not None else 'main'}.onnx"
        t = time.perf_counter()
        report = core.export_onnx(net, path, size=(SIZE, SIZE), check=False)
        print(f"exported {path.name} ({report.exporter} exporter, {time.perf_counter() - t:.0f} s)", flush=True)
        paths[name] = path
    return paths


def variants(model: core.PSPNet, image: torch.Tensor, onnx: dict[str, Path], threads: int,
             args: argparse.Namespace) -> dict[str, tuple[str, Callable[[], tuple]]]:
    """name -> (heads, runner)."""
    v: dict[str, tuple[str, Callable[[], tuple]]] = {}
    if onnx:
        v["onnxruntime"] = ("main + aux", ort_runner(onnx["main + aux"], image, threads))
        v["onnxruntime, main only"] = ("main", ort_runner(onnx["main"], image, threads))
    v["PyTorch, model as it is"] = ("main + aux", torch_runner(model, image))
    v["+ BatchNorm folded"] = ("main + aux", torch_runner(fold_batchnorm(model), image))
    v["+ main head split by input group"] = ("main + aux", torch_runner(
        optimize_for_inference(model, fuse=False), image))
    v["+ ReLU/sum fused into the convolutions"] = ("main + aux", torch_runner(
        optimize_for_inference(model, pack_weights=False), image))
    v["+ weights packed = optimize_for_inference"] = ("main + aux", torch_runner(optimize_for_inference(model), image))
    v["optimize_for_inference(aux=False)"] = ("main", torch_runner(optimize_for_inference(model, aux=False), image))
    if args.channels_last:
        v["optimize_for_inference, channels_last"] = ("main + aux", torch_runner(
            optimize_for_inference(model), image, channels_last=True))
    if args.jit:
        t = time.perf_counter()
        with torch.no_grad():
            traced = torch.jit.trace(Heads(model).eval(), image, check_trace=False)
            frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
        print(f"torch.jit trace + freeze + optimize_for_inference: {time.perf_counter() - t:.0f} s", flush=True)
        v["torch.jit freeze + optimize_for_inference"] = ("main + aux", module_runner(frozen, image))
    if args.compile:
        import torch._inductor.config as inductor

        inductor.freezing = True
        compiled = torch.compile(Heads(fold_batchnorm(model)).eval())
        t = time.perf_counter()
        with torch.inference_mode():
            compiled(image)
        print(f"torch.compile (inductor, freezing): first call {time.perf_counter() - t:.0f} s", flush=True)
        v["torch.compile (inductor, freezing), BN folded"] = ("main + aux", module_runner(compiled, image))
    return v


def rel_diff(ref: tuple, got: tuple) -> float:
    return max(float((a - b).abs().max() / a.abs().max()) for a, b in zip(ref, got))


def measure(v: dict[str, tuple[str, Callable[[], tuple]]], repeats: int) -> dict[str, list[float]]:
    names = list(v)
    for n in names:  # warm-up (and first-call costs) outside the timing
        v[n][1]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for n in (names if r % 2 == 0 else names[::-1]):
            t = time.perf_counter()
            v[n][1]()
            times[n].append(time.perf_counter() - t)
    return times


def speed_part(args: argparse.Namespace) -> list[dict]:
    model = build()
    image = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 255
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export(model, Path(tmp)) if not args.no_onnx else {}
        for threads in args.threads:
            torch.set_num_threads(threads)
            v = variants(model, image, onnx, threads, args)
            ref = v["PyTorch, model as it is"][1]()
            checks = {n: rel_diff(ref, run()) for n, (_, run) in v.items()}
            times = measure(v, args.repeats)
            base = {heads: statistics.median(times[n]) for n, (heads, _) in v.items()
                    if n.startswith("onnxruntime")}
            ort_name = {heads: n for n, (heads, _) in v.items() if n.startswith("onnxruntime")}
            for n, (heads, _) in v.items():
                med = statistics.median(times[n])
                # the ratio within each round (neighbours in time), then the median over rounds
                paired = (statistics.median(a / b for a, b in zip(times[n], times[ort_name[heads]]))
                          if heads in ort_name else None)
                rows.append({"threads": threads, "variant": n, "heads": heads, "median_s": med, "best_s": min(times[n]),
                             "vs_onnxruntime": med / base[heads] if heads in base else None,
                             "vs_onnxruntime_paired": paired, "max_rel_diff": checks[n], "times": times[n]})
            print_speed([r for r in rows if r["threads"] == threads])
    return rows


def print_speed(rows: list[dict]) -> None:
    t = rows[0]["threads"]
    print(f"\n{SIZE}x{SIZE}, batch 1, fp32, {t} thread(s), {len(rows[0]['times'])} alternated rounds "
          f"(torch {torch.__version__})")
    print("| variant | heads | median s | best s | / onnxruntime, same heads: medians (per round) "
          "| max rel. diff to the model |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ratio = (f"{r['vs_onnxruntime']:.2f} ({r['vs_onnxruntime_paired']:.2f})" if r["vs_onnxruntime"] is not None
                 else "-")
        print(f"| {r['variant']} | {r['heads']} | {r['median_s']:.3f} | {r['best_s']:.3f} | {ratio} | "
              f"{r['max_rel_diff']:.1e} |", flush=True)


# --- threads under contention ----------------------------------------------------------------

CHILD_REPEATS = 3  # full forwards per child; level switches: 5x as many


def child(threads: int) -> None:
    """Run in a subprocess: time our default path with ``threads`` threads; print JSON.

    "switch": what a pyramid-level switch costs once the head's per-group convolutions are cached
    (core.inspect.LevelSwitch): a sum of cached maps, shift, ReLU, the classifier, the upsampling
    to the image and the softmax: small, memory-bound operations."""
    torch.set_num_threads(threads)
    net = optimize_for_inference(build())
    image = torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 255
    head = net.head
    with torch.inference_mode():
        out = net(net.normalize(image), internals=True)
        groups = [out.internals.layer4] + [lv.upsampled for lv in out.internals.levels]
        parts, start = [], 0
        for g in groups:
            w = head.conv.weight[:, start:start + g.shape[1]]
            parts.append(torch.nn.functional.conv2d(g, w, None, head.conv.stride, head.conv.padding))
            start += g.shape[1]

        def switch() -> None:
            acc = parts[0].clone()
            for part in parts[1:3] + parts[4:]:  # the third level off
                acc += part
            logits = head.classifier(head.relu(head.bn(acc)))
            net.upsample(logits, (SIZE, SIZE)).softmax(1)

        switch()
        full, small = [], []
        for _ in range(CHILD_REPEATS):
            t = time.perf_counter()
            net(net.normalize(image))
            full.append(time.perf_counter() - t)
            for _ in range(5):
                t = time.perf_counter()
                switch()
                small.append(time.perf_counter() - t)
    print(json.dumps({"full": full, "heads": small}))


@contextlib.contextmanager
def busy_core():
    """Another process keeping one core busy (a pure Python loop), for the duration."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        proc.kill()
        proc.wait()


def contention_part(args: argparse.Namespace) -> list[dict]:
    settings = [("2 threads", 2, {}), ("1 thread", 1, {}),
                ("2 threads, OMP_WAIT_POLICY=PASSIVE", 2, {"OMP_WAIT_POLICY": "PASSIVE"})]
    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    for load in ("no added load", "one core busy"):
        ctx = busy_core() if load == "one core busy" else contextlib.nullcontext()
        with ctx:
            for r in range(args.contention_rounds):
                for label, n, env in (settings if r % 2 == 0 else settings[::-1]):
                    out = subprocess.run([sys.executable, __file__, "--child", str(n)], capture_output=True, text=True,
                                         env={**os.environ, **env, "PYTHONWARNINGS": "ignore"}, check=True)
                    got = json.loads(out.stdout.strip().splitlines()[-1])
                    acc = results.setdefault((load, label), {"full": [], "heads": []})
                    acc["full"] += got["full"]
                    acc["heads"] += got["heads"]
    rows = []
    print(f"\nthreads under contention: optimize_for_inference, {SIZE}x{SIZE}; {args.contention_rounds} rounds of "
          f"{CHILD_REPEATS} forwards and {5 * CHILD_REPEATS} level switches per setting, alternated")
    print("| load | setting | forward median s (best) | level switch median ms (best) |")
    print("|---|---|---|---|")
    for (load, label), t in results.items():
        row = {"load": load, "setting": label, "full_median_s": statistics.median(t["full"]),
               "full_best_s": min(t["full"]), "heads_median_s": statistics.median(t["heads"]),
               "heads_best_s": min(t["heads"])}
        rows.append(row)
        print(f"| {load} | {label} | {row['full_median_s']:.2f} ({row['full_best_s']:.2f}) | "
              f"{1e3 * row['heads_median_s']:.0f} ({1e3 * row['heads_best_s']:.0f}) |", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=lambda s: [int(v) for v in s.split(",")], default=[2, 1],
                   help="thread counts for the speed table, comma-separated (default 2,1)")
    p.add_argument("--repeats", type=int, default=7, help="alternated rounds per thread count")
    p.add_argument("--only", choices=("speed", "contention"), help="run one part only")
    p.add_argument("--no-contention", action="store_true", help="skip the contention part")
    p.add_argument("--contention-rounds", type=int, default=3)
    p.add_argument("--no-onnx", action="store_true", help="without onnxruntime (not installed, or to save time)")
    p.add_argument("--channels-last", action="store_true", help="add optimize_for_inference with channels_last")
    p.add_argument("--jit", action="store_true", help="add torch.jit.freeze + optimize_for_inference")
    p.add_argument("--compile", action="store_true", help="add torch.compile (inductor, freezing; compiles for ~30 s)")
    p.add_argument("--json", type=Path, help="also write the figures to this file")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child)
        return
    out = {}
    if args.only != "contention":
        out["speed"] = speed_part(args)
    if args.only == "contention" or (args.only is None and not args.no_contention):
        out["contention"] = contention_part(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
