#!/usr/bin/env python3
"""Instructions per request by stage, from `callgrind_annotate --inclusive=yes` output (see bench/callgrind).

    python3 bench/callgrind_stages.py --requests N --name passthrough FILE [--top 40] [--tsv OUT]

A stage's figure is the largest inclusive cost among the functions matching its patterns (inclusive costs of
nested functions overlap, so they are not summed). In async Rust a future's poll includes the polls of the
futures it awaits, so the stages are chosen as leaves or self-contained steps (an HTTP/1 parse, a JSON
validation, a hash), and "other" is the total minus the listed stages — it is what the table does not explain.
"""
import argparse
import re
import sys

# stage -> regexes on the demangled function name; order = table order. Each pattern picks a self-contained
# step whose inclusive cost does not contain another stage's.
STAGES = [
    ("client side: HTTP/1 parse + encode (hyper server)", [r"<hyper::proto::h1::role::Server as .*>::parse$",
                                                           r"<hyper::proto::h1::role::Server as .*>::encode$"]),
    ("downstream: HTTP/1 encode + parse (hyper client)", [r"<hyper::proto::h1::role::Client as .*>::encode$",
                                                          r"<hyper::proto::h1::role::Client as .*>::parse$"]),
    # hyper-util's pool (TLS, HTTP/2), or the lean HTTP/1.1 pool of a plain instance (its checkout may be inlined)
    ("downstream: pool checkout", [r"<hyper_util::client::legacy::pool::Checkout<T,K> as .*>::poll$",
                                   r"^bff_core::downstream::h1pool::H1Pool::checkout"]),
    ("edge: request id, trace context", [r"^bff_core::trace::"]),
    ("edge: path and header hygiene", [r"^bff_core::hygiene::check_request"]),
    ("edge: connection protection, response pacing", [r"^bff_core::conn::"]),
    ("routing (axum Router::call_with_state)", [r"^axum::routing::Router<S>::call_with_state"]),
    # auth and rate limiting (jwt_rl scenario; 0 with auth off): their async fns are inlined into the edge's
    # future, so the stages are the named steps that stay functions in a build without LTO
    ("auth: bearer header read", [r"^bff_core::auth::single_header"]),
    ("auth: verified-token cache lookup", [r"^moka::sync::cache::Cache<K,V,S>::get$"]),
    ("auth: identity headers rendered", [r"^bff_core::auth::identity::IdentityHeaders::of",
                                         r"^bff_core::auth::identity::Verified::new"]),
    ("rate limiting: bucket keys (client IP, SHA-256, hex)", [r"^bff_core::ratelimit::client_ip::ClientIpResolver::bucket",
                                                             r"^bff_core::ratelimit::RateLimiter::policy_key",
                                                             r"^bff_core::ratelimit::RateLimiter::auth_failure_check"]),
    ("rate limiting: in-memory GCRA decision", [r"^bff_core::ratelimit::memory::MemoryStore::decide$"]),
    ("rate limiting: RateLimit headers", [r"^bff_core::ratelimit::(headers::)?rate_limit_headers"]),
    ("metrics + access line (observe::completed)", [r"^bff_core::observe::completed"]),
    ("cache bookkeeping (keys, flights, policy)", [r"^bff_core::cache::Keys::new",
                                                   r"^bff_core::cache::DownstreamCache::lookup",
                                                   r"^bff_core::cache::DownstreamCache::store_answer",
                                                   r"^bff_core::cache::DownstreamCache::freshness_of",
                                                   r"^bff_core::cache::DownstreamCache::policy_of"]),
    # each part's body validated on arrival: `aggregate::valid` since 2026-12-03 (fourth session); before,
    # serde_json's `from_slice` of a `RawValue` (still what a refused body's log line is written with)
    ("JSON: validate", [r"^bff_core::aggregate::valid::", r"^serde_json::de::from_slice"]),
    # the aggregation's merge of validated bodies by their top-level members (since 2026-12-03; before, a
    # second serde_json parse), flatten's keys decoded by serde_json (`from_trait`; counted in the stage above
    # until the fourth session of 2026-12-03) and written (`to_vec`)
    ("JSON: merge (top-level members)", [r"^bff_core::aggregate::members::", r"^serde_json::de::from_trait",
                                         r"^serde_json::ser::to_vec"]),
    ("ETag: tag of the body", [r"^bff_core::etag::tag_of"]),
    # the layer's own steps (its response future's poll includes everything inside the layer)
    ("compression layer", [r"^<tower_http::compression::service::Compression<S,P> as .*>::call$",
                           r"^<tower_http::compression::body::CompressionBody<B> as .*>::poll_frame$"]),
    ("memory allocation (malloc + free)", [r"^(__rustc::)?__rust_alloc$", r"^(__rustc::)?__rust_dealloc$",
                                           r"^(__rustc::)?__rust_realloc$"]),
    ("memcpy", [r"__memcpy_avx_unaligned_erms"]),
]

# The "file:" prefix is stripped only when it is a source path or "???" (a greedy prefix would also eat
# "<hyper::proto::h1::role::" of "<hyper::proto::h1::role::Client as …>::parse").
LINE = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(?:(?:\?\?\?|\S+?\.(?:rs|c|h|S|cc|cpp)):)?(.+?)\s*(?:\[.*\])?$")


def parse(path):
    total = None
    funcs = {}
    with open(path, errors="replace") as f:
        for line in f:
            if total is None and "PROGRAM TOTALS" in line:
                total = int(line.split()[0].replace(",", ""))
                continue
            m = LINE.match(line)
            if not m:
                continue
            ir = int(m.group(1).replace(",", ""))
            name = re.sub(r"\s*\([\d,]+x\)$", "", m.group(2))  # the call count callgrind_annotate appends
            # strip "file:" prefixes that callgrind_annotate prints as "???:" or "/path/file.rs:"
            if ":" in name and not name.startswith("<"):
                head, _, tail = name.partition(":")
                if head.startswith("/") or head == "???" or head.endswith(".rs") or head.endswith(".c"):
                    name = tail
            funcs[name] = max(ir, funcs.get(name, 0))
    return total, funcs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--name", default="")
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--tsv")
    a = ap.parse_args()
    total, funcs = parse(a.file)
    if not total:
        sys.exit(f"{a.file}: no PROGRAM TOTALS")
    n = a.requests
    rows = []
    explained = 0
    for stage, pats in STAGES:
        best = 0
        res = [re.compile(p) for p in pats]
        # sum over patterns (each names a distinct step), max over functions within a pattern
        for r in res:
            best += max((ir for name, ir in funcs.items() if r.search(name)), default=0)
        rows.append((stage, best / n))
        explained += best
    print(f"\n{a.name}: {total / n:,.0f} instructions per request ({total:,} over {n} requests)")
    print(f"| stage | instructions / request | share |")
    print(f"|---|---|---|")
    for stage, v in rows:
        print(f"| {stage} | {v:,.0f} | {v / (total / n) * 100:.1f} % |")
    other = (total - explained) / n
    print(f"| rest: futures and layers (axum, tower, hyper dispatch), tokio scheduling, header maps | {other:,.0f} | {other / (total / n) * 100:.1f} % |")
    if a.tsv:
        with open(a.tsv, "w") as f:
            f.write("stage\tir_per_request\n")
            for stage, v in rows:
                f.write(f"{stage}\t{v:.0f}\n")
            f.write(f"other\t{other:.0f}\ntotal\t{total / n:.0f}\n")
    if a.top:
        print(f"\ntop {a.top} functions by inclusive instructions per request:")
        for name, ir in sorted(funcs.items(), key=lambda kv: -kv[1])[: a.top]:
            print(f"{ir / n:12,.0f}  {name[:150]}")


if __name__ == "__main__":
    main()
