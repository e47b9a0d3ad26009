-- wrk reporter for bench/run.sh: one machine-readable line with exact percentiles (microseconds)
-- instead of wrk's rounded human-readable output.
-- BENCH_BODY_BYTES=N makes every request a POST with an N-byte body (the big-upload rows).
local body_bytes = tonumber(os.getenv("BENCH_BODY_BYTES") or "")
if body_bytes and body_bytes > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("u", body_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d status_errors=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
