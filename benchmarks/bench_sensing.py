"""Edge sensing (module 03): the compiled model against scikit-learn, its size, the gateway.

Prints ``BENCH <name> <value> <unit>`` lines:

- per-sample inference of the forest compiled to C (timed inside a C program over many
  rows, so process start and I/O are not counted) and of scikit-learn's ``predict`` on one
  sample (the call an edge device would make per reading), and their ratio (goal >= 100x);
- the model's flash and RAM footprint on x86-64 and, with ``arm-none-eabi-gcc``, on a
  Cortex-M4 (goal <= 32 KB flash);
- gateway throughput from frames to stored NGSI-LD entities on the embedded platform:
  ``Gateway.handle`` one frame at a time (the baseline), ``Gateway.handle_many`` in batches
  of 500 (no MQTT), the MQTT transport alone (broker and clients, nothing stored), and the
  whole path -- stations publish over MQTT, ``MqttGateway`` stores -- on the embedded amqtt
  broker in this process (``gateway_mqtt_embedded_msgs_per_s``; goal >= 2,000 messages/s),
  on it in a child process, and on Debian's mosquitto when installed. The stations publish
  from a child process (devices are not the gateway); the clock runs from their first
  publish to the last message handled. 40 stations, as the campus network.

    python benchmarks/bench_sensing.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
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


STATIONS = {i: (140.10 + 0.001 * i, 36.10 + 0.001 * i) for i in range(1, 41)}
MQTT_MESSAGES = 20_000


def station_frames(messages: int) -> list[tuple[int, bytes]]:
    """``(station, frame)`` pairs: the 40 stations in turn, 10 minutes apart (deterministic)."""
    from sscity.sensing.payload import pack_reading

    frames = []
    for k in range(messages):
        station = 1 + k % len(STATIONS)
        reading = {"station_id": station, "timestamp": 1_750_000_000 + 600 * (k // len(STATIONS)),
                   "temperature_c": 21.5, "humidity_pct": 60.0, "pm25_ugm3": 9.5,
                   "noise_dba": 55.0, "people_count": k % 50}
        frames.append((station, pack_reading(reading)))
    return frames


def gateway_throughput(messages: int = 2000, batch: int | None = None) -> float:
    """Frames per second from the gateway to entities stored in a file database (no MQTT).

    ``batch=None``: ``Gateway.handle`` per frame; else ``Gateway.handle_many`` per ``batch``.
    """
    from sscity.platform.client import Client
    from sscity.sensing.gateway import Gateway

    frames = [(f"city/tsukuba/sensors/{station}", frame) for station, frame in station_frames(messages)]
    with tempfile.TemporaryDirectory(prefix="sscity-bench-gateway-") as tmp, \
            Client(db=Path(tmp) / "city.db") as client:
        gateway = Gateway(client, stations=STATIONS)
        started = time.perf_counter()
        if batch is None:
            for topic, payload in frames:
                gateway.handle(topic, payload)
        else:
            for start in range(0, messages, batch):
                gateway.handle_many(frames[start:start + batch])
        seconds = time.perf_counter() - started
    if gateway.stats["stored"] != messages:
        raise RuntimeError(f"only {gateway.stats['stored']} of {messages} frames were stored: "
                           f"{gateway.stats}")
    return messages / seconds


def _publish_from_child(url: str, messages: int) -> float:
    """Publish from a child process (the stations); return the epoch time of its first publish."""
    done = subprocess.run([sys.executable, __file__, "--publish", url, str(messages)], check=True,
                          capture_output=True, text=True)
    return float(done.stdout.split()[0])


def _publish_main(url: str, messages: int) -> None:
    from sscity.sensing.mqtt import publish

    frames = station_frames(messages)
    print(time.time(), flush=True)
    publish(frames, url=url, progress=False, timeout_s=600)


def mqtt_path_throughput(url: str, messages: int = MQTT_MESSAGES) -> float:
    """Messages per second from the stations' first publish to the last one stored."""
    from sscity.platform.client import Client
    from sscity.sensing.gateway import Gateway
    from sscity.sensing.mqtt import MqttGateway

    with tempfile.TemporaryDirectory(prefix="sscity-bench-mqtt-") as tmp, \
            Client(db=Path(tmp) / "city.db") as client:
        gateway = Gateway(client, stations=STATIONS)
        with MqttGateway(gateway, url=url) as receiver:
            started = _publish_from_child(url, messages)
            receiver.wait_until(messages, timeout_s=600, progress=False)
            finished = time.time()
    if gateway.stats["stored"] != messages:
        raise RuntimeError(f"only {gateway.stats['stored']} of {messages} messages were stored: "
                           f"{gateway.stats}")
    return messages / (finished - started)


def mqtt_transport_throughput(url: str, messages: int = MQTT_MESSAGES) -> float:
    """The same publish, to a subscriber that only counts: what the broker and clients cost."""
    import paho.mqtt.client as paho
    from sscity.sensing.mqtt import parse_mqtt_url

    address = parse_mqtt_url(url)
    arrived, everything = [0], threading.Event()

    def count(client, userdata, message):
        arrived[0] += 1
        if arrived[0] == messages:
            everything.set()

    subscribed = threading.Event()
    counter = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-counter")
    counter.on_message = count
    counter.on_subscribe = lambda *args: subscribed.set()
    counter.connect(address.host, address.port)
    counter.loop_start()
    counter.subscribe("city/tsukuba/sensors/+", qos=1)
    subscribed.wait(10)
    try:
        started = _publish_from_child(url, messages)
        if not everything.wait(600):
            raise RuntimeError(f"only {arrived[0]} of {messages} messages arrived")
        return messages / (time.time() - started)
    finally:
        counter.disconnect()
        counter.loop_stop()


def mosquitto_throughput(messages: int = MQTT_MESSAGES) -> float:
    """The whole path on a Mosquitto started here (queue sized for the whole burst: with its
    default of 1000 it drops the rest)."""
    from sscity.sensing.mqtt import LocalMosquitto

    with LocalMosquitto(max_queued_messages=2 * messages) as url:
        return mqtt_path_throughput(url, messages)


def gateway_benchmarks() -> None:
    from sscity.sensing.mqtt import EmbeddedBroker

    per_frame = gateway_throughput()
    bench("sensing_gateway_throughput", per_frame, "messages/s")  # Gateway.handle, one per frame
    batched = gateway_throughput(10_000, batch=500)
    bench("sensing_gateway_handle_many_msgs_per_s", batched, "msg/s")
    bench("sensing_gateway_handle_many_vs_per_frame", batched / per_frame, "x")
    with EmbeddedBroker() as url:
        bench("gateway_mqtt_embedded_transport_only_msgs_per_s", mqtt_transport_throughput(url), "msg/s")
    with EmbeddedBroker() as url:
        embedded = mqtt_path_throughput(url)
    bench("gateway_mqtt_embedded_msgs_per_s", embedded, "msg/s")
    bench("gateway_mqtt_embedded_vs_per_frame", embedded / per_frame, "x")
    with EmbeddedBroker(separate_process=True) as url:
        bench("gateway_mqtt_embedded_child_process_msgs_per_s", mqtt_path_throughput(url), "msg/s")
    from sscity.sensing.mqtt import find_mosquitto

    binary = find_mosquitto()
    if binary:
        bench("gateway_mqtt_mosquitto_msgs_per_s", mosquitto_throughput(), "msg/s")
    else:
        print("note: mosquitto not found; no mosquitto figure", flush=True)


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
    gateway_benchmarks()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--publish"]:  # the stations of mqtt_path_throughput, in a child process
        _publish_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
