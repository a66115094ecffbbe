"""Edge sensing (module 03): the compiled model against scikit-learn, its size, the gateway.

Prints ``BENCH <name> <value> <unit>`` lines:

- per-sample inference of the forest compiled to C (timed inside a C program over many
  rows, so process start and I/O are not counted) and of scikit-learn's ``predict`` on one
  sample (the call an edge device would make per reading), and their ratio (goal >= 100x);
- the model's flash and RAM footprint on x86-64 and, with ``arm-none-eabi-gcc``, on a
  Cortex-M4 (goal <= 32 KB flash);
- gateway throughput from frames to stored NGSI-LD entities on the embedded broker
  (goal >= 2,000 messages/s; MQTT transport not included yet).

    python benchmarks/bench_sensing.py
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sscity.sensing.embedded import HOST_CFLAGS, compile_model, find_compiler, footprint

SEED = 13

_TIMING_HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

int32_t model_predict(const float *features, int32_t features_length);

int main(int argc, char **argv) {
    const int n = atoi(argv[2]), rows = atoi(argv[3]), repeats = atoi(argv[4]);
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)rows);
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL || fread(x, sizeof(float), (size_t)n * rows, f) != (size_t)n * rows) return 2;
    volatile int32_t sink = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int r = 0; r < repeats; r++)
        for (int i = 0; i < rows; i++) sink += model_predict(x + (size_t)i * n, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("%.9f %d\n", seconds / ((double)rows * repeats), (int)sink);
    return 0;
}
"""


def bench(name: str, value: float, unit: str) -> None:
    print(f"BENCH {name} {value:.3f} {unit}", flush=True)


def model_and_rows():
    X, y = make_classification(n_samples=3000, n_features=6, n_informative=4, n_classes=3,
                               random_state=SEED)
    model = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0).fit(X[:2000], y[:2000])
    return model, X[2000:]


def c_seconds_per_sample(model, X, folder: Path) -> float:
    obj = compile_model(model, "model", folder)
    harness = folder / "timing.c"
    harness.write_text(_TIMING_HARNESS, encoding="utf-8")
    program = folder / "timing"
    subprocess.run([find_compiler("host"), *HOST_CFLAGS, str(harness), str(obj),
                    "-o", str(program)], check=True, capture_output=True)
    rows = folder / "rows.f32"
    np.ascontiguousarray(X, dtype=np.float32).tofile(rows)
    out = subprocess.run([str(program), str(rows), str(X.shape[1]), str(len(X)), "200"],
                         check=True, capture_output=True, text=True).stdout
    return float(out.split()[0])


def sklearn_seconds_per_sample(model, X, calls: int = 300) -> float:
    one = X[:1]
    model.predict(one)  # warm
    started = time.perf_counter()
    for i in range(calls):
        model.predict(X[i % len(X): i % len(X) + 1])
    return (time.perf_counter() - started) / calls


def gateway_throughput(messages: int = 2000) -> float:
    """Frames per second from ``Gateway.handle`` to entities stored in a file database."""
    from sscity.platform.client import Client
    from sscity.sensing.gateway import Gateway
    from sscity.sensing.payload import pack_reading

    stations = {i: (140.10 + 0.001 * i, 36.10 + 0.001 * i) for i in range(1, 41)}
    frames = []
    for k in range(messages):
        station = 1 + k % 40
        reading = {"station_id": station, "timestamp": 1_750_000_000 + 600 * (k // 40),
                   "temperature_c": 21.5, "humidity_pct": 60.0, "pm25_ugm3": 9.5,
                   "noise_dba": 55.0, "people_count": k % 50}
        frames.append((f"city/tsukuba/sensors/{station}", pack_reading(reading)))
    with tempfile.TemporaryDirectory(prefix="sscity-bench-gateway-") as tmp, \
            Client(db=Path(tmp) / "city.db") as client:
        gateway = Gateway(client, stations=stations)
        started = time.perf_counter()
        stored = sum(gateway.handle(topic, payload).status == "stored" for topic, payload in frames)
        seconds = time.perf_counter() - started
    if stored != messages:
        raise RuntimeError(f"only {stored} of {messages} frames were stored: {gateway.stats}")
    return messages / seconds


def main() -> None:
    model, X = model_and_rows()
    folder = Path(tempfile.mkdtemp(prefix="sscity-bench-sensing-"))
    try:
        c = c_seconds_per_sample(model, X, folder)
        py = sklearn_seconds_per_sample(model, X)
        bench("sensing_c_predict_per_sample", c * 1e6, "us")
        bench("sensing_sklearn_predict_one_sample", py * 1e6, "us")
        bench("sensing_c_vs_sklearn_per_sample_speedup", py / c, "x")
        host = footprint(folder / "model.o")
        bench("sensing_model_flash_x86_64", host["flash"], "bytes")
        bench("sensing_model_ram_x86_64", host["ram"], "bytes")
        if shutil.which("arm-none-eabi-gcc"):
            arm = footprint(compile_model(model, "model", folder, toolchain="arm"), toolchain="arm")
            bench("sensing_model_flash_cortex_m4", arm["flash"], "bytes")
            bench("sensing_model_ram_cortex_m4", arm["ram"], "bytes")
        else:
            print("note: arm-none-eabi-gcc not found; no Cortex-M4 figures", flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    bench("sensing_gateway_throughput", gateway_throughput(), "messages/s")


if __name__ == "__main__":
    main()
