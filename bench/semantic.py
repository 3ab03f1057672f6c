"""What the semantic cache buys, and what it gets wrong, on the paraphrase set.

1. Offline accuracy, per threshold (0.80 to 0.95), with the real embedding model through
   `serving.semantic.SemanticIndex`:
   - paraphrases: the index holds every group's base; each paraphrase is looked up.
     hit = nearest base is its own and similarity >= threshold; wrong = a hit on another
     group's base (a wrong answer served).
   - hard negatives: same index; any hit is a false hit (a wrong answer served).
   - unrelated: the index holds the bases of the even-numbered groups; the bases and
     paraphrases of the odd-numbered ones are looked up; any hit is a false hit.
2. End to end against the real server (`python -m serving`, model `--model`, batching
   none, exact cache on): one client sends `--requests` questions in sequence from
   `loadtest.paraphrases.QuestionStream` at `--paraphrase-rate` (non-streaming, so E2E is
   request sent to body received), with the semantic cache off and then on at
   `--threshold`, the same questions both times. Truth comes from the bench's own list:
   a semantic hit is right when the matched prompt (its `semantic_match` hash) has the
   same meaning as the question. Per setup: hits, right and wrong ones, hit rate over the
   paraphrases sent, false-hit rate over the other questions, p50 E2E of hits and of the
   rest, embedding time per lookup, and the generations the server ran; each wrong hit
   is listed (question, and the question whose answer it got).

    python bench/semantic.py --model small --requests 150 --paraphrase-rate 0.3 --threshold 0.9
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loadtest.paraphrases import QuestionStream, load_groups  # noqa: E402
from servelab.config import ServerConfig  # noqa: E402
from serving.semantic import Embedder, SemanticIndex, prompt_hash  # noqa: E402

PARAMS = ("completions", 32)  # one parameter set: every lookup may match every entry
THRESHOLDS = (0.80, 0.825, 0.85, 0.875, 0.90, 0.925, 0.95)


def _index(embedder: Embedder, texts: list[str]) -> SemanticIndex:
    index = SemanticIndex(size=len(texts), ttl_s=1e9)
    for text, vec in zip(texts, embedder.embed(texts)):
        index.put(PARAMS, prompt_hash(text), vec, None)
    return index


def _nearest(index: SemanticIndex, embedder: Embedder, queries: list[str]) -> list[tuple[float, str]]:
    """(similarity, matched prompt hash) of each query's nearest entry."""
    out = []
    for vec in embedder.embed(queries):
        m = index.nearest(PARAMS, vec)
        out.append((m.similarity, m.prompt_hash))
    return out


def offline_table(embedder: Embedder) -> None:
    groups = load_groups()
    meaning = {prompt_hash(g.base): g.id for g in groups}
    full = _index(embedder, [g.base for g in groups])
    paras = [(g.id, p) for g in groups for p in g.paraphrases]
    para_hits = _nearest(full, embedder, [p for _, p in paras])
    negs = [n for g in groups for n in g.negatives]
    neg_hits = _nearest(full, embedder, negs)
    even = _index(embedder, [g.base for g in groups[::2]])
    unrelated = [t for g in groups[1::2] for t in (g.base, *g.paraphrases)]
    unrel_hits = _nearest(even, embedder, unrelated)
    t0 = time.perf_counter()
    for q in negs[:50]:
        embedder.embed([q])
    embed_ms = (time.perf_counter() - t0) / 50 * 1e3
    print(f"offline: {len(groups)} groups; {len(paras)} paraphrases, {len(negs)} hard negatives, "
          f"{len(unrelated)} unrelated questions; one embedding {embed_ms:.1f} ms (1 thread)")
    print(f"{'threshold':>9}{'para hit %':>12}{'para wrong %':>14}{'neg false %':>13}{'unrel false %':>15}")
    for th in THRESHOLDS:
        right = np.mean([s >= th and meaning[h] == gid for (gid, _), (s, h) in zip(paras, para_hits)]) * 100
        wrong = np.mean([s >= th and meaning[h] != gid for (gid, _), (s, h) in zip(paras, para_hits)]) * 100
        neg = np.mean([s >= th for s, _ in neg_hits]) * 100
        unrel = np.mean([s >= th for s, _ in unrel_hits]) * 100
        print(f"{th:>9.3f}{right:>12.1f}{wrong:>14.1f}{neg:>13.1f}{unrel:>15.1f}")
    sims = lambda xs: np.percentile([s for s, _ in xs], [5, 50, 95])  # noqa: E731
    print("similarity to the nearest base, p5/p50/p95: paraphrases %.3f/%.3f/%.3f, negatives %.3f/%.3f/%.3f, "
          "unrelated %.3f/%.3f/%.3f" % (*sims(para_hits), *sims(neg_hits), *sims(unrel_hits)))


def post(url: str, body: dict) -> tuple[float, dict]:
    """(E2E ms, JSON body) of one non-streaming request, head and body in one write as the
    load generator sends them (httpx writes them apart, and Nagle then adds ~40 ms)."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body).encode()
    head = (f"POST /v1/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode()
    t0 = time.perf_counter()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + data)
        reply = b"".join(iter(lambda: sock.recv(65536), b""))
    e2e_ms = (time.perf_counter() - t0) * 1e3
    status, _, rest = reply.partition(b"\r\n")
    if b" 200 " not in status:
        raise RuntimeError(f"server answered {status.decode()}: {rest[-300:]!r}")
    return e2e_ms, json.loads(rest.partition(b"\r\n\r\n")[2])


def e2e_run(semantic: bool, questions: list, args) -> dict:
    import httpx

    from serving.launch import launch

    cfg = ServerConfig(model=args.model, exact_cache=True, semantic_cache=semantic,
                       semantic_threshold=args.threshold, seed=args.seed)
    hash_text = {prompt_hash(q.text): q.text for q in questions}
    hash_meaning = {prompt_hash(q.text): q.meaning for q in questions}
    rows = []
    with launch(cfg, timeout_s=300) as server:
        for q in questions:
            e2e_ms, reply = post(server.url, {"prompt": q.text, "max_tokens": args.max_tokens,
                                              "temperature": 0, "ignore_eos": True})
            t = reply["servelab"]
            right = t["cache"] == "semantic" and hash_meaning.get(t["semantic_match"]) == q.meaning
            rows.append((q, t, e2e_ms, right))
        gens = sum(float(line.rpartition(" ")[2]) for line in httpx.get(server.url + "/metrics").text.splitlines()
                   if line.startswith("servelab_generations_total"))
    for q, t, _, right in rows:
        if t["cache"] == "semantic" and not right:
            print(f"  wrong hit ({t['semantic_similarity']:.3f}): {q.text!r} got the answer to "
                  f"{hash_text.get(t['semantic_match'], '?')!r}")
    return _figures(rows, gens)


def _figures(rows: list, generations: float) -> dict:
    hits = [r for r in rows if r[1]["cache"] == "semantic"]
    paras = [r for r in rows if r[0].kind == "paraphrase"]
    others = [r for r in rows if r[0].kind != "paraphrase"]
    p50 = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    embeds = [r[1]["embed_ms"] for r in rows if "embed_ms" in r[1]]
    return {
        "requests": len(rows), "paraphrases": len(paras), "hits": len(hits),
        "right": sum(r[3] for r in hits), "wrong": sum(not r[3] for r in hits),
        "exact": sum(r[1]["cache"] == "exact" for r in rows),
        "para_hit_pct": 100 * sum(r[3] for r in paras) / len(paras) if paras else None,
        "false_hit_pct": 100 * sum(r[1]["cache"] == "semantic" for r in others) / len(others) if others else None,
        "hit_p50": p50([r[2] for r in hits]), "rest_p50": p50([r[2] for r in rows if r[1]["cache"] != "semantic"]),
        "all_p50": p50([r[2] for r in rows]), "embed_p50": p50(embeds),
        "embed_mean": statistics.fmean(embeds) if embeds else None, "generations": generations,
    }


def e2e_table(args) -> None:
    stream = QuestionStream(load_groups(), args.paraphrase_rate, np.random.default_rng(args.seed))
    questions = [stream.next() for _ in range(args.requests)]
    print(f"end to end: model={args.model} batching=none exact cache on, {args.requests} sequential "
          f"non-streaming requests, paraphrase_rate={args.paraphrase_rate} "
          f"({stream.paraphrases} paraphrases), max_tokens={args.max_tokens}, threshold={args.threshold}")
    print(f"{'semantic':<9}{'hits':>5}{'right':>6}{'wrong':>6}{'exact':>6}{'para hit %':>11}{'false hit %':>12}"
          f"{'hit p50 ms':>11}{'miss p50 ms':>12}{'all p50 ms':>11}{'embed p50/mean ms':>19}{'gens':>6}")
    fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
    for semantic in (False, True):
        r = e2e_run(semantic, questions, args)
        embed = f"{fmt(r['embed_p50'], '.1f')}/{fmt(r['embed_mean'], '.1f')}"
        print(f"{'on' if semantic else 'off':<9}{r['hits']:>5}{r['right']:>6}{r['wrong']:>6}{r['exact']:>6}"
              f"{fmt(r['para_hit_pct'], '.1f'):>11}{fmt(r['false_hit_pct'], '.1f'):>12}{fmt(r['hit_p50'], '.1f'):>11}"
              f"{fmt(r['rest_p50'], '.1f'):>12}{fmt(r['all_p50'], '.1f'):>11}{embed:>19}{r['generations']:>6.0f}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="small")
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--paraphrase-rate", type=float, default=0.3)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-e2e", action="store_true")
    args = parser.parse_args()
    print("load average at start (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())
    embedder = Embedder()
    offline_table(embedder)
    embedder.close()
    if not args.skip_e2e:
        print()
        e2e_table(args)
    print("load average at end (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())


if __name__ == "__main__":
    main()
