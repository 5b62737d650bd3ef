-- wrk script for benchmarks/load.py: what benchmarks/loadgen.py does, for wrk.
-- Five real browsers' User-Agents over four pages; 70% of requests carry a returning visitor's
-- cookie (one of 1,000 codes) and, as a browser sends back what the site set, mostly the cookie
-- that dates it; the others come without one, as new visitors do.
local agents = {
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
  "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
}
local pages = {"/", "/products/42/", "/category/sale/", "/blog/our-story/"}
local n = 0

request = function()
  n = n + 1
  local headers = {
    ["Host"] = "shop.example.com",
    ["User-Agent"] = agents[n % 5 + 1],
    ["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ["Accept-Language"] = "en-US,en;q=0.9",
  }
  if n % 10 < 7 then
    headers["Cookie"] = string.format("kameleoonVisitorCode=benchvisitor%05d", n % 1000)
    -- A returning browser sends back the cookie that dates the code too, except on one request
    -- in twenty: a visit a day after the last renewal, whose cookie is renewed.
    if n % 20 ~= 0 then
      headers["Cookie"] = headers["Cookie"] .. "; kameleoonVisitorCodeRefreshed=1"
    end
  end
  return wrk.format("GET", pages[n % 4 + 1], headers)
end

done = function(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.6f, "p50_us": %d, "p99_us": %d, "errors": %d, "non2xx": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    errors.connect + errors.read + errors.write + errors.timeout, errors.status))
end
