"""Load generation: arrival schedules, workloads, traces, prompts, SSE parsing, the worker.

Pure, importable anywhere: `schedules`, `arrivals`, `workload`, `traces`, `prompts`, `sse`,
`spool`, `record`, `spec`.
Gevent-only (imported inside the load-generator process): `client`, `step`.
Locust (monkey-patches the process on import): `user`, `worker`; run the worker as
`python -m loadtest.worker --spec SPEC.json`.
"""
