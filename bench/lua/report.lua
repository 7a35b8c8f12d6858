-- Prints one machine-readable line after the run: rate, latency percentiles, errors.
function done(summary, latency, requests)
   local errors = summary.errors.connect + summary.errors.read + summary.errors.write +
                  summary.errors.status + summary.errors.timeout
   io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d errors=%d\n",
      summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
      latency:percentile(99) / 1000, summary.requests, errors))
end
