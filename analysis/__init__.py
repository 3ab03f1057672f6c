"""Pure metric functions over request records: metrics, percentiles, SLOs, windows, summaries.

Imports numpy and pandas only (plus the pydantic config model), never duckdb, locust,
gevent, torch, streamlit, fastapi, pynvml or httpx; tests/test_analysis_imports.py
keeps it so.
"""
