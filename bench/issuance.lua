-- wrk script: client_credentials grants over keep-alive connections.
-- Credentials come from the environment (set by issuance.sh).
local id = os.getenv("BENCH_CLIENT_ID")
local secret = os.getenv("BENCH_CLIENT_SECRET")
local b64 = dofile("bench/b64.lua")
wrk.method = "POST"
wrk.body = "grant_type=client_credentials&scope=read"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. b64(id .. ":" .. secret)

local non200 = 0
response = function(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
  io.write(string.format("requests=%d errors_status=%d\n", summary.requests, summary.errors.status))
end
