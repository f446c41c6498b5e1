"""The benchmark suite: `python -m bench.run --full` writes BENCHMARKS.md whole; `python -m bench.run`, a subset.

Runs every benchmark in its own process, prints their JSON lines and writes the report from this run's records alone
(machine, tables, the exact commands): nothing of an earlier report is carried over, so every section is from one run
on one machine. Without --full the paper-width steps, the serving latency and the paper-scale memory are left out,
so the quick report goes to build/BENCHMARKS_quick.md unless --out says otherwise, and a quick rerun never replaces
the whole BENCHMARKS.md with a part of it. Benchmarks are not tests: nothing here asserts a timing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys

from bench import common
from bench.common import ROOT

# The CPU sections describe the CPU even on a GPU host (each benchmark would otherwise take the first GPU,
# `bench.common.bench_device`); the GPU section runs with the caller's environment.
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": "-1"}
PAPER = ("--config", "moving_mnist_paper", "--batch", "1", "--frames", "3", "--context_frames", "2")
SERVING_BATCHES = (1, 16)
SERVING_FRAMES = (1, 10)
SERVING = (
    "--serving",
    "--batches",
    *map(str, SERVING_BATCHES),
    "--frames",
    *map(str, SERVING_FRAMES),
    "--repeats",
    "2",
)
# The machine fields every record carries (`bench.common.machine`) that must agree with the header's: one report
# is one machine and one environment. GPUs are left out: the CPU sections hide them on purpose.
SAME_MACHINE = ("cpu", "cores", "cores_usable", "memory_gib", "tensorflow", "python", "onednn", "tf_enable_onednn_opts")


def _run(module: str, *args: str, env: dict | None = None) -> list[dict]:
    """Runs one benchmark in its own process (no state carried between them); returns its JSON lines."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    cmd = [sys.executable, "-m", f"bench.{module}", *args]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=7200)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    for r in records:
        print(json.dumps(r, sort_keys=True), flush=True)
    return records


def _command(module: str, args) -> str:
    return " ".join(["python -m", f"bench.{module}", *args])


def _measure(commands: list, module: str, *args: str, env: dict | None = None) -> list[dict]:
    """`_run`, remembering the command for its section; a benchmark that printed no record is an error naming it
    (a table silently missing its rows would read as a complete report)."""
    records = _run(module, *args, env=env)
    if not records:
        raise RuntimeError(f"`{_command(module, args)}` printed no records")
    commands.append(_command(module, args))
    return records


def _only(records: list[dict], bench: str, command: str) -> list[dict]:
    rows = [r for r in records if r.get("bench") == bench]
    if not rows:
        raise RuntimeError(f"`{command}` printed no {bench} record")
    return rows


def _find(records: list[dict], **fields) -> dict | None:
    return next((r for r in records if all(r.get(k) == v for k, v in fields.items())), None)


def _train_steps(full: bool, commands: list, env: dict | None) -> list[dict]:
    runs = [(), ("--precision", "bfloat16")]
    if full:
        runs += [
            ("--xla", "--repeats", "1"),
            (*PAPER, "--repeats", "4"),
            (*PAPER, "--repeats", "4", "--precision", "bfloat16"),
            (*PAPER, "--repeats", "1", "--xla"),
        ]
    return [r for args in runs for r in _measure(commands, "train_step", *args, env=env)]


def _table(rows, columns):
    out = ["| " + " | ".join(c for c, _ in columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(k, "")) for _, k in columns) + " |")
    return "\n".join(out)


def _commands(commands: list) -> str:
    return "```bash\n" + "\n".join(commands) + "\n```"


STEP_COLUMNS = [
    ("config", "bench"),
    ("batch", "batch"),
    ("frames", "frames"),
    ("precision", "precision"),
    ("XLA step", "xla"),
    ("s/step", "seconds_per_step"),
    ("seq/s", "sequences_per_second"),
    ("TFLOP/step", "tflop_per_step"),
    ("achieved GFLOP/s", "achieved_gflops"),
    ("conv micro GFLOP/s", "conv3x3_c_to_4c_microbenchmark_gflops"),
    ("utilisation", "utilisation"),
]


def _header(m: dict, command: str, full: bool) -> str:
    env = m.get("tf_enable_onednn_opts")
    onednn = ("on" if m["onednn"] else "off") + (
        f" (TF_ENABLE_ONEDNN_OPTS={env})" if env is not None else " (TF_ENABLE_ONEDNN_OPTS unset: TensorFlow's choice)"
    )
    cores = f"{m['cores']} cores"
    if m.get("cores_usable") not in (None, m["cores"]):
        cores += f", {m['cores_usable']} of them usable by this run (CPU affinity)"
    gpus = ", ".join(m.get("gpu_models") or m["gpus"]) or "none"
    title = "# Benchmarks" if full else "# Benchmarks (quick subset: no paper widths, serving or paper-scale memory)"
    hidden = ",\nwith GPUs hidden (`CUDA_VISIBLE_DEVICES=-1`)" if m["gpus"] else ""
    return f"""{title}

Measured by `{command}` on {datetime.date.today().isoformat()}, one run on one machine:

| | |
|---|---|
| CPU | {m["cpu"]}, {cores} |
| memory | {m["memory_gib"]} GiB |
| oneDNN | {onednn} |
| TensorFlow | {m["tensorflow"]} |
| Python | {m["python"]} |
| GPUs | {gpus} |

Every figure is from that run; ratios compare quantities measured side by side in the same process. On a shared
machine absolute times vary between runs. Every section but the GPU one ran on the CPU{hidden}."""


def _step_text(steps: list[dict], commands: list) -> str:
    reached = []
    for name, c in (("cpu_moving_mnist", 16), ("moving_mnist_paper", 128)):
        r = _find(steps, bench=f"train_step/{name}", precision="float32", xla=False)
        if r:
            reached.append(f"{r['utilisation']} at c = {c}")
    if reached:
        reached = f"In this run the float32 step without XLA reaches {' and '.join(reached)}."
    else:
        reached = ""
    return f"""## Training step: FLOP utilisation

Achieved GFLOP/s = analytic training FLOPs per step (convolutions, forward x 3; formula in `bench/train_step.py`
and `vpn_tf/cost.py`) / step time. The reference is a 3x3 convolution c -> 4c (the multiplicative unit's fused
gates), forward + backward, on the same number of frames and in the same precision, timed in the same process in
alternation with the step (rounds of equal length, fastest round of each).
Reference points: a utilisation of 0.80 at the paper's widths (c = 128) and 0.60 at `cpu_moving_mnist`'s (c = 16).
{reached}

{_table(steps, STEP_COLUMNS)}

{_commands(commands)}"""


def _sampling_text(samp: list[dict], commands: list) -> str:
    table = _table(
        samp,
        [
            ("batch", "batch"),
            ("XLA pixel loop", "xla"),
            ("batch groups", "groups"),
            ("XLA_FLAGS", "xla_flags"),
            ("cached s/frame", "cached_seconds_per_frame"),
            ("naive s/frame (scaled)", "naive_seconds_per_frame_scaled"),
            ("teacher-forced decoder s", "teacher_forced_decoder_seconds"),
            ("naive / cached", "naive_over_cached"),
            ("cached / teacher-forced", "cached_over_teacher_forced"),
        ],
    )
    return f"""## Sampling (`cpu_moving_mnist`, 64 x 64)

{table}

Reference points: naive / cached 1000; cached / teacher-forced 5 (1 is the floor: a cached frame does one
teacher-forced decoder pass's arithmetic).

{_commands(commands)}"""


def _serving_text(records: list[dict], commands: list) -> str:
    from bench.sampling import WAYS, serving_table

    ways = [w for w in WAYS if w != "export_compared"]  # that way needs an earlier export (--compare_export)
    have = {(r.get("way"), r.get("batch"), r.get("frames")): r["seconds"] for r in records}
    cells = [(w, b, f) for w in ways for b in SERVING_BATCHES for f in SERVING_FRAMES]
    missing = [c for c in cells if c not in have]
    if missing:
        raise RuntimeError(f"`{_command('sampling', SERVING)}` printed no record for (way, batch, frames) {missing}")
    lo, hi = min(SERVING_FRAMES), max(SERVING_FRAMES)

    def ratios(way, reference):
        out = []
        for b in SERVING_BATCHES:
            added = [(have[w, b, hi] - have[w, b, lo]) / (hi - lo) for w in (way, reference)]
            out.append(f"{added[0] / added[1]:.1f}x (batch {b})")
        return " and ".join(out)

    return f"""## Served sampling latency (`cpu_moving_mnist`: exported SavedModels vs in-process)

The shipped `pretrained/cpu_moving_mnist` model continues 10 context frames of the test split four ways, each in its
own fresh process: the in-process `Sampler` with and without XLA, and the `sample` signature of a default and of an
`--xla` export (`python export.py [--xla]`) loaded with `tf.saved_model.load`. Seconds per request for every batch
and number of generated frames: the fastest of 2 calls after the first (which traces and compiles; in the records as
`first_call_seconds`). Per added frame = the difference of the two frame counts' times over the frames added.

{serving_table(records, list(SERVING_BATCHES), list(SERVING_FRAMES))}

Reference point: per added frame, the `--xla` export within 1.5x of the in-process XLA sampler's time; in this run
it takes {ratios("export_xla", "in_process_xla")} that time. Per added frame the default export (XLA-free, which
TF Serving's CPU default requires) takes {ratios("export_default", "in_process")} the time of the in-process sampler
without XLA.

{_commands(commands)}"""


def _data_text(dat: list[dict], commands: list) -> str:
    command = commands[-1]
    stream = _table(
        _only(dat, "data/moving_mnist_stream", command),
        [
            ("stream seq/s", "stream_sequences_per_s"),
            ("training consumes seq/s", "training_consumes_sequences_per_s"),
            ("ratio", "ratio"),
            ("reference ratio", "reference_ratio"),
        ],
    )
    sim = _table(
        _only(dat, "data/pushing_sim", command),
        [
            ("pushing simulator frames/s (one core)", "frames_per_second_one_core"),
            ("reference frames/s", "reference_frames_per_second_per_core"),
        ],
    )
    return f"## Data\n\n{stream}\n\n{sim}\n\n{_commands(commands)}"


def _memory_text(mem: list[dict], commands: list) -> str:
    table = _table(
        mem,
        [
            ("config", "bench"),
            ("batch", "batch"),
            ("frames", "frames"),
            ("context", "context_frames"),
            ("peak RSS MB", "peak_rss_mb"),
        ],
    )
    return (
        "## Memory: peak resident memory of a float32 training step (fresh process each)\n\n"
        f"{table}\n\n{_commands(commands)}"
    )


def _memory_paper_text(records: list[dict], commands: list, m: dict) -> str:
    from bench.memory import gpu_table

    _only(records, "memory_paper/moving_mnist_paper", commands[-1])
    n = m.get("cores_usable") or m["cores"]
    return (
        "## Memory at paper scale (`moving_mnist_paper`, one 20-frame sequence)\n\n"
        "Peak resident memory, a fresh process for each point; the derivation is in `bench/memory.py`.\n\n"
        f"{gpu_table(records, cores=f'{n} core' + ('s' if n != 1 else ''))}\n\n{_commands(commands)}"
    )


def _gpu_text(m: dict, steps: list[dict], commands: list) -> str:
    if not m["gpus"]:
        return "## GPU\n\nGPUs were not measured: TensorFlow saw none on this machine."
    models = m.get("gpu_models") or m["gpus"]
    names = ", ".join(f"{name} ({model})" for name, model in zip(m["gpus"], models, strict=True))
    columns = STEP_COLUMNS + [("device", "device"), ("peak MB", "peak_memory_mb")]
    return f"""## GPU: training step

GPUs present: {names}. The training-step benchmark ran on the first of them (GPUs visible as in the caller's
environment), in the configurations of the CPU table, its convolution micro-benchmark there too; peak MB is the GPU
allocator's peak.

{_table(steps, columns)}

{_commands(commands)}"""


def _check_one_machine(m: dict, records: list[dict]) -> None:
    for key in SAME_MACHINE:
        seen = {json.dumps(r[key]) for r in records if key in r} - {json.dumps(m.get(key))}
        if seen:
            raise RuntimeError(f"the records disagree with this machine on {key}: {sorted(seen)} vs {m.get(key)!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--full",
        action="store_true",
        help="every section: adds paper widths, XLA steps, serving latency, memory sweeps and paper scale",
    )
    parser.add_argument(
        "--out", default=None, help="report path (default: BENCHMARKS.md with --full, else build/BENCHMARKS_quick.md)"
    )
    args = parser.parse_args(argv)
    out = args.out or os.path.join(ROOT, *(["BENCHMARKS.md"] if args.full else ["build", "BENCHMARKS_quick.md"]))

    cmds = {k: [] for k in ("steps", "sampling", "serving", "data", "memory", "memory_paper", "gpu")}
    steps = _train_steps(args.full, cmds["steps"], CPU_ONLY)
    samp = _measure(cmds["sampling"], "sampling", "--batch", "16", env=CPU_ONLY)
    serving = _measure(cmds["serving"], "sampling", *SERVING, env=CPU_ONLY) if args.full else []
    dat = _measure(cmds["data"], "data", "--batches", "20", env=CPU_ONLY)
    mem = _measure(cmds["memory"], "memory", *(["--full"] if args.full else []), env=CPU_ONLY)
    mem_paper = _measure(cmds["memory_paper"], "memory", "--paper", env=CPU_ONLY) if args.full else []
    # Read after the CPU benchmarks, so this process holds no TensorFlow while they measure memory; in this
    # process's environment, which is theirs (TF_ENABLE_ONEDNN_OPTS included).
    m = common.machine()
    cpu_records = steps + samp + serving + dat + mem + mem_paper
    gpu_steps = _train_steps(args.full, cmds["gpu"], None) if m["gpus"] else []
    _check_one_machine(m, cpu_records + gpu_steps)

    sections = [
        _header(m, "python -m bench.run" + (" --full" if args.full else ""), args.full),
        _step_text(steps, cmds["steps"]),
        _gpu_text(m, gpu_steps, cmds["gpu"]),
        _sampling_text(samp, cmds["sampling"]),
        *([_serving_text(serving, cmds["serving"])] if args.full else []),
        _data_text(dat, cmds["data"]),
        _memory_text(mem, cmds["memory"]),
        *([_memory_paper_text(mem_paper, cmds["memory_paper"], m)] if args.full else []),
    ]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n\n".join(sections) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
