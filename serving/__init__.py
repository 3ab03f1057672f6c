"""The reference serving stack: an OpenAI-compatible server over a small torch model.

Modules, one concept each:
- `tokenizer` (bytes <-> ids), `model` (the transformer, its KV cache, cost accounting),
  `sampling` (logit mask and token choice), `stops` (stop strings over a stream),
- `generation` (the contract between backends and the HTTP layer), `engine` (the worker
  that runs generations), `calibration` (a model-free backend with exact timings) and
  `timer` (the precise deadline sleeps it uses),
- `schemas` and `errors` (request validation), `prompts` (request -> GenRequest, limits),
  `responses` and `stream` (OpenAI objects and the timestamped SSE transport),
  `metrics` (Prometheus), `api` (the FastAPI app),
- `server` (the process: bind, announce, serve), `__main__` (`python -m serving`),
  `launch` (start one as a child process and wait for it).

Heavy imports (torch, fastapi) live in the submodules, so `import serving` is cheap.
"""
