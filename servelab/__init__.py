"""servelab: measure what each LLM-serving lever buys on your own traffic and hardware."""

__version__ = "0.1.0"
