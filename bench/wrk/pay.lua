-- pay.lua: wrk sends mapfront's legacy pays (/front/offline/pay) from ready
-- bodies, as bench/compare.sh -tool wrk runs it:
--
--   loadgen bodies -customers N -files T -n B -out DIR
--   wrk -t T -c C -d 30s -s bench/wrk/pay.lua http://127.0.0.1:18080 -- DIR
--
-- wrk's Lua cannot build PIN blocks, so loadgen writes the bodies (real PIN
-- blocks under the bench TPK, a terminal key of its own each): thread i sends
-- DIR/bodies.<i>, line by line, each body once. A thread whose file runs out
-- stops sending (it would otherwise repeat a key) and the run reports it:
-- the figures of such a run are not a full-length run's.
--
-- Every answer is checked: HTTP 200, errcode 0 and, being a pay, an orderId.
-- done() prints key=value lines (prefix "wrk_") that compare.sh reads:
-- answers ok and not ok, the first unexpected answer, whether bodies ran out,
-- requests and approved pays per second over wrk's run time, and latency
-- percentiles from wrk's own histogram (ms).

local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

local file
ok, bad, exhausted, sample = 0, 0, false, ""

function init(args)
   local dir = args[1] or error("pay.lua: give the bodies directory after --")
   file = assert(io.open(dir .. "/bodies." .. id, "r"))
   wrk.method = "POST"
   wrk.path = "/front/offline/pay"
   wrk.headers["Content-Type"] = "application/json"
end

function request()
   local body = file:read("*l")
   if body == nil then
      exhausted = true
      wrk.thread:stop()
      -- wrk wants a request even now; this one changes nothing (404) and
      -- its answer is not counted.
      return wrk.format("GET", "/front/offline/exhausted", {}, nil)
   end
   return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
   if exhausted then
      return
   end
   local code = status == 200 and body:match('^{"errcode":(%-?%d+)')
   if code == "0" and body:find('"orderId":"[^"]', 1) then
      ok = ok + 1
   else
      bad = bad + 1
      if sample == "" then
         sample = "HTTP " .. status .. " " .. body:sub(1, 200)
      end
   end
end

function done(summary, latency, requests)
   local okAll, badAll, out, first = 0, 0, 0, ""
   for _, t in ipairs(threads) do
      okAll = okAll + t:get("ok")
      badAll = badAll + t:get("bad")
      if t:get("exhausted") then
         out = out + 1
      end
      if first == "" then
         first = t:get("sample")
      end
   end
   local secs = summary.duration / 1e6
   local e = summary.errors
   io.write(string.format("wrk_ok=%d\nwrk_bad=%d\nwrk_exhausted_threads=%d\n", okAll, badAll, out))
   io.write(string.format("wrk_requests=%d\nwrk_elapsed_s=%.3f\n", summary.requests, secs))
   io.write(string.format("wrk_rps=%.1f\nwrk_pay_tps=%.1f\n", summary.requests / secs, okAll / secs))
   io.write(string.format("wrk_socket_errors=%d\nwrk_timeouts=%d\n", e.connect + e.read + e.write, e.timeout))
   io.write(string.format("wrk_p50_ms=%.3f\nwrk_p95_ms=%.3f\nwrk_p99_ms=%.3f\nwrk_max_ms=%.3f\n",
      latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
   io.write("wrk_first_unexpected=" .. first:gsub("\n", " ") .. "\n")
end
