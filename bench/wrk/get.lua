-- wrk script for GET endpoints: a static request (built once per thread by
-- wrk, so the load generator spends nothing per request on Lua), with the
-- bearer token as `Authorization` when one is given.
--
--   wrk -t2 -c32 -d3s -s bench/wrk/get.lua http://127.0.0.1:PORT/api/users?limit=10 -- <token or ->
--
-- Prints one line `WRKJSON {...}` with the counts and latency percentiles
-- (microseconds) for bench-runner.

function init(args)
   local token = args[1]
   if token ~= nil and token ~= "-" then
      wrk.headers["Authorization"] = "Bearer " .. token
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,"errors_timeout":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.2f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
