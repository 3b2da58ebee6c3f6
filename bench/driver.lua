-- wrk driver shared by every protocol. The runner prepends the run's settings (MODE, CODES,
-- PREFIX, HOT, RETRY_SHARE, TWO_PHASE) and one protocol's request builder, which defines:
--   b_check(n, code, amount)    a check request
--   b_pay(n, code, amount)      a one-phase pay (protocols without a second step)
--   b_reserve(n, code, amount)  the first step of a two-phase pay
--   b_commit(n, code, amount)   the second step; sent only after the first step's answer arrived
--   b_parse(status, body)       -> n, step ("check" | "pay" | "reserve" | "commit"), ok
-- `n` is the request's sequence number; the protocol must echo it (a JSON-RPC id, a query
-- parameter) so that an answer can be paired with its request on any connection.

local threads = {}
local next_tid = 0

function setup(thread)
   next_tid = next_tid + 1
   thread:set("tid", next_tid)
   table.insert(threads, thread)
end

local RING = 4096

function init(_args)
   seq = tid * 100000000
   ready, ready_head, ready_tail = {}, 1, 0
   finished, finished_n = {}, 0
   ok, failed, committed, replays = 0, 0, 0, 0
   first_error = ""
   math.randomseed(os.time() + tid)
end

function txn(n)
   return PREFIX .. n
end

function code_of(n)
   if HOT then
      return CODES[1]
   end
   return CODES[(n % #CODES) + 1]
end

-- Deterministic per id, so that a resent request is byte-for-byte the first one.
function amount_of(n)
   return 10000 + (n % 90) * 100
end

function request()
   if MODE == "check" then
      seq = seq + 1
      return b_check(seq, code_of(seq), amount_of(seq))
   end
   if RETRY_SHARE > 0 and finished_n > 0 and math.random() < RETRY_SHARE then
      local n = finished[math.random(math.min(finished_n, RING))]
      replays = replays + 1
      if TWO_PHASE then
         return b_commit(n, code_of(n), amount_of(n))
      end
      return b_pay(n, code_of(n), amount_of(n))
   end
   if TWO_PHASE then
      if ready_head <= ready_tail then
         local n = ready[ready_head]
         ready[ready_head] = nil
         ready_head = ready_head + 1
         return b_commit(n, code_of(n), amount_of(n))
      end
      seq = seq + 1
      return b_reserve(seq, code_of(seq), amount_of(seq))
   end
   seq = seq + 1
   return b_pay(seq, code_of(seq), amount_of(seq))
end

function response(status, _headers, body)
   local n, step, good = b_parse(status, body or "")
   if not good or n == nil then
      failed = failed + 1
      if first_error == "" then
         first_error = tostring(status) .. " " .. string.sub(body or "", 1, 200)
      end
      return
   end
   ok = ok + 1
   if step == "reserve" then
      ready_tail = ready_tail + 1
      ready[ready_tail] = n
   elseif step == "commit" or step == "pay" then
      committed = committed + 1
      finished_n = finished_n + 1
      finished[((finished_n - 1) % RING) + 1] = n
   end
end

function done(summary, latency, _requests)
   local totals = { ok = 0, failed = 0, committed = 0, replays = 0 }
   local sample = ""
   for _, thread in ipairs(threads) do
      for key, _ in pairs(totals) do
         totals[key] = totals[key] + (thread:get(key) or 0)
      end
      local e = thread:get("first_error")
      if sample == "" and e ~= nil then
         sample = e
      end
   end
   local errors = summary.errors
   io.write(string.format(
      "BENCH_RESULT {\"requests\":%d,\"duration_us\":%d,\"ok\":%d,\"failed\":%d,\"committed\":%d,"
         .. "\"replays\":%d,\"socket_errors\":%d,\"status_errors\":%d,\"timeouts\":%d,"
         .. "\"p50_us\":%d,\"p90_us\":%d,\"p99_us\":%d,\"max_us\":%d}\n",
      summary.requests, summary.duration, totals.ok, totals.failed, totals.committed,
      totals.replays, errors.connect + errors.read + errors.write, errors.status, errors.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
   if sample ~= "" then
      io.write("BENCH_ERROR " .. string.gsub(sample, "\n", " ") .. "\n")
   end
end
