"""The bundled demo: a small service to attach to (``flight_profiler demo``)."""
