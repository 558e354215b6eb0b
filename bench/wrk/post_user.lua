-- wrk script for `POST /api/users`: every request carries a new, unique
-- email (run nonce, wrk thread, per-thread counter), so each one is a real
-- insert answered with 201, never a 409.
--
--   wrk -t2 -c32 -d3s -s bench/wrk/post_user.lua http://127.0.0.1:PORT/api/users -- <token> <nonce>
--
-- Prints one line `WRKJSON {...}` like get.lua.

local next_thread = 0

function setup(thread)
   next_thread = next_thread + 1
   thread:set("tid", next_thread)
end

local counter = 0
local prefix

function init(args)
   wrk.method = "POST"
   wrk.headers["Authorization"] = "Bearer " .. args[1]
   wrk.headers["Content-Type"] = "application/json"
   prefix = string.format("wrk-%s-%d-", args[2], tid)
end

function request()
   counter = counter + 1
   local body = string.format('{"name":"Bench %d","email":"%s%d@bench.example"}', counter, prefix, counter)
   return wrk.format(nil, nil, nil, body)
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
