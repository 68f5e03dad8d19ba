"""gpudoctor's training smoke test, run inside the judged interpreter by framework_probe.py.

`python framework_probe.py smoke torch DEVICE STEPS`: on every visible GPU (or the CPU), a tiny
conv + batch-norm + linear model trained with autograd and a hand-written SGD step (the first
`torch.optim` optimizer imports torch._dynamo: seconds, more than the whole test), in float32
against a float64 CPU reference of the same run (silent data corruption is real), then with mixed
precision; a memory pattern check; matmul, copy and pinned-transfer rates; with several GPUs,
peer access and an NCCL all-reduce, which runs first, in rank processes, while this process holds no
CUDA context (Exclusive_Process mode admits one process per GPU). Standard library and torch only,
Python 3.8+.
"""

import os
import time

BATCH, CHANNELS, SIZE, CLASSES = 64, 16, 16, 10
FP32_STEPS = 8  # the reference run is float64 on the CPU: short is enough to see a wrong number


def _timed(func):
    start = time.perf_counter()
    try:
        answer = {"value": func()}
    except Exception as exc:  # a failing step is a finding, and must not hide the others
        answer = {"error": "%s: %s" % (type(exc).__name__, str(exc).strip().splitlines()[0][:300] if str(exc).strip() else "")}
    answer["s"] = round(time.perf_counter() - start, 4)
    return answer


def _data(torch):
    """Synthetic, learnable data: labels are a fixed random projection of the inputs."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, 3, SIZE, SIZE, generator=gen)
    teacher = torch.randn(3 * SIZE * SIZE, CLASSES, generator=gen)
    return x, (x.flatten(1) @ teacher).argmax(1)


def _weights(torch):
    gen = torch.Generator().manual_seed(1)
    return {
        "conv": torch.randn(CHANNELS, 3, 3, 3, generator=gen) * 0.2,
        "bn_w": torch.ones(CHANNELS), "bn_b": torch.zeros(CHANNELS),
        "fc1": torch.randn(CHANNELS * 16, 64, generator=gen) * 0.05, "fc1_b": torch.zeros(64),
        "fc2": torch.randn(64, CLASSES, generator=gen) * 0.1, "fc2_b": torch.zeros(CLASSES),
    }


def _forward(torch, w, x):
    F = torch.nn.functional
    h = F.conv2d(x, w["conv"], padding=1)  # cuDNN
    h = F.batch_norm(h, None, None, w["bn_w"], w["bn_b"], training=True)
    h = F.adaptive_avg_pool2d(F.relu(h), 4).flatten(1)
    h = F.relu(h @ w["fc1"] + w["fc1_b"])  # cuBLAS
    return h @ w["fc2"] + w["fc2_b"]


def train(torch, device, dtype, steps, autocast=None, lr=0.3):
    """Losses of `steps` SGD steps; `autocast` is (dtype, loss scale or None) for mixed precision.

    float16 gets dynamic loss scaling by hand (halve and skip on an overflow), as GradScaler
    would, without the optimizer it needs.
    """
    x, y = _data(torch)
    x = x.to(device=device, dtype=dtype)
    y = y.to(device)
    w = {k: v.to(device=device, dtype=dtype).requires_grad_() for k, v in _weights(torch).items()}
    losses = []
    scale = autocast[1] if autocast else None
    for _ in range(steps):
        if autocast:
            with torch.autocast(device_type=torch.device(device).type, dtype=autocast[0]):
                loss = torch.nn.functional.cross_entropy(_forward(torch, w, x), y)
        else:
            loss = torch.nn.functional.cross_entropy(_forward(torch, w, x), y)
        (loss * scale if scale else loss).backward()
        with torch.no_grad():
            finite = not scale or all(bool(torch.isfinite(p.grad).all()) for p in w.values())
            for p in w.values():
                if finite:
                    p -= lr / (scale or 1.0) * p.grad
                p.grad = None
        if not finite:
            scale /= 2
        losses.append(loss.item())
    return losses


def _sync(torch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def _rate(torch, device, work, repeat):
    """Seconds per call of `work`, after one warm-up; device events on a GPU."""
    work()
    _sync(torch, device)
    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeat):
            work()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0 / repeat
    begin = time.perf_counter()
    for _ in range(repeat):
        work()
    return (time.perf_counter() - begin) / repeat


def matmul_tflops(torch, device, dtype, n, repeat):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    seconds = _rate(torch, device, lambda: a @ b, repeat)
    return round(2 * n ** 3 / seconds / 1e12, 3)


def copy_gbps(torch, device, nbytes, repeat):
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    seconds = _rate(torch, device, lambda: dst.copy_(src), repeat)
    return round(2 * nbytes / seconds / 1e9, 2)  # bytes read + written


def pinned_gbps(torch, device, nbytes, repeat):
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(nbytes, dtype=torch.uint8, device=device)
    return {"h2d": round(nbytes / _rate(torch, device, lambda: dev.copy_(host, non_blocking=True), repeat) / 1e9, 2),
            "d2h": round(nbytes / _rate(torch, device, lambda: host.copy_(dev, non_blocking=True), repeat) / 1e9, 2)}


def memory_pattern(torch, device, fraction=0.8, chunk=1 << 30):
    """Fill most of the free memory with a pattern and read it back; the mismatching bytes."""
    free, total = torch.cuda.mem_get_info(device)
    chunks, bad = [], 0
    want = int(free * fraction)
    while want >= chunk // 4:
        size = min(chunk, want)
        block = torch.empty(size // 4, dtype=torch.int32, device=device)
        chunks.append(block)
        want -= size
    for i, block in enumerate(chunks):
        block.copy_(torch.arange(block.numel(), dtype=torch.int32, device=device).bitwise_xor_(0x5A5A5A5A + i))
    for i, block in enumerate(chunks):
        expected = torch.arange(block.numel(), dtype=torch.int32, device=device).bitwise_xor_(0x5A5A5A5A + i)
        bad += int((block != expected).sum().item())
    tested = sum(b.numel() * 4 for b in chunks)
    del chunks
    torch.cuda.empty_cache()
    return {"tested_bytes": tested, "free_bytes": free, "total_bytes": total, "mismatches": bad}


def _identity(props):
    """The GPU's PCI bus id and UUID: CUDA's ordinal follows CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, nvidia-smi's
    index the PCI order, so fixes name a GPU by these, never by cuda:N."""
    found = {}
    if getattr(props, "pci_bus_id", None) is not None:
        found["pci_bus"] = "%04x:%02x:%02x.0" % (getattr(props, "pci_domain_id", 0), props.pci_bus_id, getattr(props, "pci_device_id", 0))
    uuid = getattr(props, "uuid", None)
    if uuid is not None:
        found["uuid"] = "GPU-" + str(uuid)
    return found


def speed_reference(name):
    """The model's row of gpudoctor/knowledge/speed.json (beside this probe's folder) with its warning floor, or None."""
    import json
    import re

    try:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "knowledge", "speed.json")) as handle:
            table = json.load(handle)
    except (OSError, ValueError):
        return None
    row = next((r for r in table.get("models", []) if re.search(r["match"], name or "")), None)
    return dict(row, floor=table.get("warn_below", 0.7)) if row else None


def second_look(facts, key, floor, measure):
    """Measure again when the first figure is below `floor`; keep the better one, and the first beside it."""
    first = facts.get(key) or {}
    if not isinstance(first.get("value"), (int, float)) or first["value"] >= floor:
        return
    again = _timed(measure)
    if isinstance(again.get("value"), (int, float)) and again["value"] > first["value"]:
        facts[key] = dict(again, first=first["value"])
    else:
        facts[key] = dict(first, again=again.get("value"))


def one_device(torch, device, steps):
    """Train, compare with the CPU reference, and measure, on one device."""
    facts = {"device": device}
    gpu = device.startswith("cuda")
    if gpu:
        torch.cuda.set_device(device)
        props = torch.cuda.get_device_properties(device)
        facts["name"] = props.name
        facts["capability"] = [props.major, props.minor]
        facts["memory_total"] = props.total_memory
        facts.update(_identity(props))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    fp32 = _timed(lambda: train(torch, device, torch.float32, FP32_STEPS))
    reference = train(torch, "cpu", torch.float64, FP32_STEPS)
    facts["fp32"] = fp32
    _compare(fp32, reference)
    if gpu and not torch.cuda.is_bf16_supported():
        amp = ("float16", (torch.float16, 1024.0))
    else:
        amp = ("bfloat16", (torch.bfloat16, None))
    facts["mixed"] = _timed(lambda: train(torch, device, torch.float32, steps, autocast=amp[1]))
    facts["mixed"]["dtype"] = amp[0]
    if gpu:
        facts["memory"] = _timed(lambda: memory_pattern(torch, device))
        n, repeat, nbytes = 8192, 10, 1 << 30
    else:
        n, repeat, nbytes = 512, 3, 64 << 20
    low = torch.bfloat16 if amp[0] == "bfloat16" else torch.float16
    facts["matmul_tflops_" + amp[0]] = _timed(lambda: matmul_tflops(torch, device, low, n, repeat))
    torch.backends.cuda.matmul.allow_tf32 = True
    facts["matmul_tflops_tf32" if gpu else "matmul_tflops_float32"] = _timed(lambda: matmul_tflops(torch, device, torch.float32, n // 2, repeat))
    torch.backends.cuda.matmul.allow_tf32 = False
    facts["matmul_n"] = n
    facts["copy_gbps"] = _timed(lambda: copy_gbps(torch, device, nbytes, repeat))
    if gpu:  # a low figure is measured once more before it can warn: a clock ramping up, a neighbour's burst
        ref = speed_reference(facts.get("name"))
        if ref:
            second_look(facts, "matmul_tflops_" + amp[0], ref["floor"] * ref["bf16_tflops"], lambda: matmul_tflops(torch, device, low, n, repeat))
            second_look(facts, "copy_gbps", ref["floor"] * ref["copy_gbps"], lambda: copy_gbps(torch, device, nbytes, repeat))
    if gpu:
        facts["pinned_gbps"] = _timed(lambda: pinned_gbps(torch, device, 256 << 20, 5))
    return facts


def peers(torch, count):
    return [[i == j or bool(torch.cuda.can_device_access_peer(i, j)) for j in range(count)] for i in range(count)]


def allreduce(count, timeout_s=60, backend="nccl"):
    """An all-reduce across `count` ranks, one process each (NCCL over the local GPUs; gloo on the
    CPU runs the same code in CI); each rank's sum check and bus bandwidth."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = 29500 + os.getpid() % 1000
    procs = [ctx.Process(target=_allreduce_rank, args=(rank, count, port, queue, backend)) for rank in range(count)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
    answers = []
    while not queue.empty() and len(answers) < count:
        answers.append(queue.get())
    return sorted(answers, key=lambda a: a.get("rank", -1))


def _allreduce_rank(rank, world, port, queue, backend):
    import torch
    import torch.distributed as dist

    answer = {"rank": rank}
    try:
        device = "cuda:%d" % rank if backend == "nccl" else "cpu"
        if backend == "nccl":
            torch.cuda.set_device(rank)
        dist.init_process_group(backend, init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=world)
        data = torch.full(((64 if backend == "nccl" else 1) << 20,), float(rank + 1), device=device)  # 256 MiB on GPUs
        dist.all_reduce(data)
        _sync(torch, device)
        answer["sum_ok"] = bool((data == world * (world + 1) / 2).all().item())
        start = time.perf_counter()
        for _ in range(5):
            dist.all_reduce(data)
        _sync(torch, device)
        seconds = (time.perf_counter() - start) / 5
        answer["busbw_gbps"] = round(data.numel() * 4 / seconds * 2 * (world - 1) / world / 1e9, 2)
        dist.destroy_process_group()
    except Exception as exc:
        answer["error"] = "%s: %s" % (type(exc).__name__, exc)
    queue.put(answer)


def smoke_torch(device, steps):
    start = time.perf_counter()
    import torch

    facts = {"framework": "torch", "import_s": round(time.perf_counter() - start, 4), "version": torch.__version__,
             "device": device, "steps": steps}
    if device == "cuda":
        if not torch.cuda.is_available():
            facts["unavailable"] = "torch.cuda.is_available() is False (torch %s, CUDA %s; see torch.cuda_available)" % (
                torch.__version__, torch.version.cuda)
            return facts
        targets = ["cuda:%d" % i for i in range(torch.cuda.device_count())]
    else:
        targets = ["cpu"]
    begin = time.perf_counter()
    if len(targets) > 1:  # first: a rank meeting this process's CUDA contexts on a GPU that admits one process is turned away
        facts["allreduce"] = _timed(lambda: allreduce(len(targets)))
        facts["peer_access"] = _timed(lambda: peers(torch, len(targets)))
    facts["devices"] = [one_device(torch, target, steps) for target in targets]
    facts["smoke_s"] = round(time.perf_counter() - begin, 4)
    return facts


def _numpy_data():
    """The same learnable data for JAX and TensorFlow: a small MLP's worth, in numpy."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 32)).astype("float32")
    y = (x @ rng.standard_normal((32, CLASSES))).argmax(1)
    w1 = (rng.standard_normal((32, 64)) * 0.2).astype("float32")
    w2 = (rng.standard_normal((64, CLASSES)) * 0.2).astype("float32")
    return x, y, w1, w2


def _compare(facts, reference):
    if "value" in facts:
        facts["reference"] = reference
        facts["max_rel_diff"] = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(facts["value"], reference))


def _train_on(label, name, losses_on, target, cpu, precisions, steps):
    """One device's float32 run against the CPU's, then its bfloat16 run: the JAX and TensorFlow shape."""
    one = {"device": label, "name": name}
    one["fp32"] = _timed(lambda: losses_on(target, precisions[0], FP32_STEPS))
    _compare(one["fp32"], losses_on(cpu, precisions[0], FP32_STEPS))
    one["mixed"] = _timed(lambda: losses_on(target, precisions[1], steps))
    one["mixed"]["dtype"] = "bfloat16"
    return one


def smoke_jax(device, steps):
    """A jax.grad loop on a small MLP, float32 against the CPU, then bfloat16."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # the torch test may still hold memory
    start = time.perf_counter()
    import jax
    import jax.numpy as jnp

    facts = {"framework": "jax", "import_s": round(time.perf_counter() - start, 4), "version": jax.__version__,
             "device": device, "steps": steps}
    try:
        targets = jax.devices("gpu") if device == "cuda" else jax.devices("cpu")
    except RuntimeError as exc:
        facts["unavailable"] = "jax has no GPU backend: %s" % str(exc).splitlines()[0][:300]
        return facts
    x, y, w1, w2 = _numpy_data()

    def losses_on(target, dtype, n):
        def loss(params, xb, yb):
            h = jnp.tanh(xb.astype(dtype) @ params[0].astype(dtype))
            logits = (h @ params[1].astype(dtype)).astype(jnp.float32)
            return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(BATCH), yb])

        step = jax.jit(jax.value_and_grad(loss))
        params = [jax.device_put(w1, target), jax.device_put(w2, target)]
        xb, yb = jax.device_put(x, target), jax.device_put(y, target)
        out = []
        for _ in range(n):
            value, grads = step(params, xb, yb)
            params = [p - 0.3 * g for p, g in zip(params, grads)]
            out.append(float(value))
        return out

    cpu = jax.devices("cpu")[0]
    begin = time.perf_counter()
    facts["devices"] = []
    for target in targets:
        label = "cuda:%d" % target.id if device == "cuda" else "cpu"
        facts["devices"].append(_train_on(label, getattr(target, "device_kind", str(target)), losses_on, target, cpu,
                                          (jnp.float32, jnp.bfloat16), steps))
    facts["smoke_s"] = round(time.perf_counter() - begin, 4)
    return facts


def smoke_tensorflow(device, steps):
    """A few Keras steps on a small MLP on each device, float32 against the CPU, then mixed bfloat16."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # never grab the whole GPU
    start = time.perf_counter()
    import tensorflow as tf

    facts = {"framework": "tensorflow", "import_s": round(time.perf_counter() - start, 4), "version": tf.__version__,
             "device": device, "steps": steps}
    gpus = tf.config.list_logical_devices("GPU")
    if device == "cuda" and not gpus:
        facts["unavailable"] = "TensorFlow lists no GPU (see tensorflow.gpus)"
        return facts
    x, y, w1, w2 = _numpy_data()

    def losses_on(name, policy, n):
        tf.keras.mixed_precision.set_global_policy(policy)
        with tf.device(name):
            model = tf.keras.Sequential([tf.keras.Input((32,)), tf.keras.layers.Dense(64, activation="tanh", use_bias=False),
                                         tf.keras.layers.Dense(CLASSES, use_bias=False, dtype="float32")])
            model.set_weights([w1, w2])
            model.compile(optimizer=tf.keras.optimizers.SGD(0.3),
                          loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            history = model.fit(x, y, batch_size=BATCH, epochs=n, verbose=0, shuffle=False)
        tf.keras.mixed_precision.set_global_policy("float32")
        return [float(v) for v in history.history["loss"]]

    targets = [d.name for d in gpus] if device == "cuda" else ["/CPU:0"]
    begin = time.perf_counter()
    facts["devices"] = []
    for index, name in enumerate(targets):
        label = "cuda:%d" % index if device == "cuda" else "cpu"
        facts["devices"].append(_train_on(label, name, losses_on, name, "/CPU:0", ("float32", "mixed_bfloat16"), steps))
    facts["smoke_s"] = round(time.perf_counter() - begin, 4)
    return facts


SMOKES = {"torch": smoke_torch, "jax": smoke_jax, "tensorflow": smoke_tensorflow}


def run(args):
    framework = args[0] if args else "torch"
    device = args[1] if len(args) > 1 else "cuda"
    steps = int(args[2]) if len(args) > 2 else 30
    return SMOKES[framework](device, steps)


if __name__ == "__main__":  # for a person timing it by hand: python smoke_probe.py torch cpu 30
    import json
    import sys

    print(json.dumps(run(sys.argv[1:]), default=str))
