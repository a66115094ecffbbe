"""Edge sensing (module 03): from raw signal to city entity under radio, energy and privacy limits.

One idea per file:

- ``lora``     LoRa time on air (Semtech's formula), AS923 payload limits, ARIB STD-T108
               transmission rules, battery life of a duty-cycled station.
- ``mesh``     JIS X 0410 grid-square (mesh) codes and k-suppressed aggregation to cells.
- ``filters``  smoothing and despiking filters, fault detectors and their evaluation
               against labels (precision, recall, detection delay).
- ``features`` windowed features of a stream (mean, std, RMS, peak-to-peak, band power) that
               never cross a run, and IsolationForest flags on them.
- ``payload``  packing readings into compact binary frames and decoding them with clear
               errors on truncated or corrupt frames.
- ``privacy``  why hashed MAC addresses are not anonymous, and counting without identifiers.
- ``embedded`` scikit-learn tree models exported to C with emlearn, compiled and run; their
               agreement with scikit-learn and their flash and RAM footprint (host, Cortex-M4).
- ``gateway``  decoding frames into NGSI-LD entities for the city platform, with bad frames
               counted and dead-lettered, never half-stored.
- ``mqtt``     the message path: stations publish over MQTT (embedded amqtt broker, or the
               broker ``SSCITY_MQTT_URL`` names, e.g. mosquitto), :class:`MqttGateway`
               subscribes and feeds the gateway in batches.

The data these work on (both SYNTHETIC): ``sscity.data.load_campus_sensors()`` (stations with
labelled faults) and ``sscity.data.load_ride_imu()`` (IMU streams recorded from the simulated
Qolo of :mod:`sscity.mobility` over five surfaces).

Import from the submodules, e.g. ``from sscity.sensing.lora import time_on_air``.
"""
