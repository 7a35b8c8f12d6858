-- Shared by the wrk scripts: a per-thread starting point for the id walk, optional pacing, and
-- one machine-readable RESULT line after the run.
local counter = 0
function setup(thread)
   thread:set("id", counter)
   counter = counter + 1
end
function init(args)
   u = id * 7919
end
-- Think time (ms) per request and connection, to hold a target rate (GNNREC_DELAY_MS).
local d = tonumber(os.getenv("GNNREC_DELAY_MS") or "0")
if d > 0 then
   function delay() return d end
end
function done(summary, latency, requests)
   local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                  summary.errors.status + summary.errors.timeout
   io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d\n",
      summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
      latency:percentile(99) / 1000, summary.requests, errors))
end
