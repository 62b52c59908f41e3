-- wrk script: RFC 8693 token exchanges over keep-alive connections. The
-- subject token and the exchanging service's credentials come from the
-- environment (set by exchange.sh).
local id = os.getenv("BENCH_CLIENT_ID")
local secret = os.getenv("BENCH_CLIENT_SECRET")
local subject = os.getenv("BENCH_SUBJECT_TOKEN")
local b64 = dofile("bench/b64.lua")
wrk.method = "POST"
wrk.body = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange"
  .. "&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token"
  .. "&audience=inventory&subject_token=" .. subject
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. b64(id .. ":" .. secret)

done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("requests=%d errors_status=%d\n", summary.requests, summary.errors.status))
end
