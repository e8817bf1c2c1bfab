-- mixed.lua: paced, mixed request traffic for tests/perf/load/load.py (wrk 4.x, LuaJIT).
--
-- Sends GET /v1/infer, POST /v1/infer (JSON body) and GET /version in a fixed rotation,
-- paced so the whole run makes about `rate` requests per second, and counts every answer.
--
-- Run it with ONE CONNECTION PER THREAD (wrk -t N -c N): a wrk thread owns one Lua state,
-- so with a single connection each response() belongs to the last request() of that state.
-- That is what makes the counts exact: the kind of each answer, its own latency, and the
-- requests that were written but never answered (the connection failed under them).
--
-- Script arguments (after `--` on wrk's command line):
--   1: period_ms   time between two requests on one connection (connections * 1000 / rate)
--   2: timeout_ms  an answer slower than this counts as slow (same value as wrk --timeout)
--   3: threads     how many threads (= connections) the run has, to stagger their starts
--   4: prefix      path prefix of the service (empty when it sits at the root)
--
-- done() prints one line, `AISTACK_LOAD_JSON {...}`, that load.py reads.

-- The clock, back-off, JSON and counter helpers shared with the other script.
local common = require("load_common")
local now_ms, back_off, json, serialize, merge, status_class =
  common.now_ms, common.back_off, common.json, common.serialize, common.merge, common.status_class

-- ---------------------------------------------------------------------------------------
-- Main state: remember the threads, give each an index (used to stagger and rotate).
-- ---------------------------------------------------------------------------------------
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end

-- ---------------------------------------------------------------------------------------
-- Thread state: the requests and the counters (globals, so done() can thread:get them).
-- ---------------------------------------------------------------------------------------
local KINDS = { "infer_get", "infer_post", "version" }
local requests = {}
local period_ms, timeout_ms, thread_count
local turn = 0 -- position in the rotation
local next_at = nil -- when the next request is due (ms, monotonic clock)
local sent_at = 0

-- What this thread's connection is waiting for: the kind of the request written last,
-- or nil when its answer has arrived.
outstanding = nil

local counts = {
  sent = { infer_get = 0, infer_post = 0, version = 0 },
  status = { ["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["5xx"] = 0, other = 0 },
  by_kind = {},
  versions = {}, -- GET /version answers (2xx) by the version they name
  lost = 0, -- requests written whose connection failed before an answer came
  slow = 0, -- answers slower than timeout_ms (wrk counts these as errors.timeout)
  slow_ok = 0, -- ... of which the status was 2xx/3xx (not already failed by status)
}

-- The counters as done() will read them (see serialize); refreshed after every change.
snapshot = "{}"
local function publish()
  snapshot = serialize(counts)
end

function init(args)
  period_ms = tonumber(args[1]) or 100
  timeout_ms = tonumber(args[2]) or 10000
  thread_count = math.max(tonumber(args[3]) or 1, 1)
  local prefix = args[4] or ""
  thread_index = thread_index or 0

  local json_headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }
  -- Headers given on wrk's command line (-H) go on every request, this one too.
  for name, value in pairs(wrk.headers) do
    json_headers[name] = json_headers[name] or value
  end
  requests.infer_get = wrk.format("GET", prefix .. "/v1/infer?text=load%20test%20infer%20get")
  requests.infer_post = wrk.format("POST", prefix .. "/v1/infer", json_headers, '{"text": "load test infer post"}')
  requests.version = wrk.format("GET", prefix .. "/version")
  for _, kind in ipairs(KINDS) do
    counts.by_kind[kind] = { ["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["5xx"] = 0, other = 0 }
  end
  turn = thread_index -- threads start at different points of the rotation
  publish()
end

-- Milliseconds to wait before the next request. Requests follow a fixed schedule (one per
-- period, threads staggered), so the latency of an answer does not lower the rate; a thread
-- that fell more than a period behind (slow answers) restarts its schedule instead of
-- bursting to catch up.
function delay()
  local now = now_ms()
  if next_at == nil then
    next_at = now + period_ms * (thread_index % thread_count) / thread_count
  elseif now - next_at > period_ms then
    next_at = now
  end
  local wait = next_at - now
  next_at = next_at + period_ms
  return wait > 0 and wait or 0
end

-- wrk calls request() once in the first thread before the run, only to check that it
-- returns a valid HTTP request (script_verify_request); that call sends nothing.
local verified = false

function request()
  if thread_index == 0 and not verified then
    verified = true
    return requests[KINDS[turn % #KINDS + 1]]
  end
  if outstanding then
    -- The previous request got no answer: wrk reconnected after a socket error.
    counts.lost = counts.lost + 1
    back_off()
  end
  local kind = KINDS[turn % #KINDS + 1]
  turn = turn + 1
  counts.sent[kind] = counts.sent[kind] + 1
  outstanding = kind
  sent_at = now_ms()
  publish()
  return requests[kind]
end

-- Only called because it is defined: then wrk keeps headers and body for it (cheap here).
function response(status, headers, body)
  local kind = outstanding or "version"
  outstanding = nil
  common.reset_back_off()
  local class = status_class(status)
  local ok = class == "2xx" or class == "3xx"
  counts.status[class] = counts.status[class] + 1
  counts.by_kind[kind][class] = counts.by_kind[kind][class] + 1
  if now_ms() - sent_at > timeout_ms then
    counts.slow = counts.slow + 1
    if ok then
      counts.slow_ok = counts.slow_ok + 1
    end
  end
  if kind == "version" and class == "2xx" then
    local version = body:match('"version"%s*:%s*"([^"]*)"') or "unknown"
    counts.versions[version] = (counts.versions[version] or 0) + 1
  end
  publish()
end

-- ---------------------------------------------------------------------------------------
-- Main state, after the run: merge the threads' counters and print one JSON line.
-- ---------------------------------------------------------------------------------------
function done(summary, latency, _requests)
  local total = {}
  local in_flight = 0
  for _, thread in ipairs(threads) do
    merge(total, loadstring("return " .. thread:get("snapshot"))())
    if thread:get("outstanding") then
      in_flight = in_flight + 1 -- written, unanswered when the run stopped
    end
  end
  local result = {
    requests = summary.requests,
    duration_us = summary.duration,
    bytes = summary.bytes,
    errors = summary.errors,
    latency_ms = {
      p50 = latency:percentile(50) / 1000,
      p90 = latency:percentile(90) / 1000,
      p99 = latency:percentile(99) / 1000,
      max = latency.max / 1000,
      mean = latency.mean / 1000,
    },
    status = total.status,
    by_kind = total.by_kind,
    sent = total.sent,
    versions = total.versions,
    lost = total.lost,
    slow = total.slow,
    slow_ok = total.slow_ok,
    in_flight = in_flight,
    threads = #threads,
    clock = common.has_ffi and "monotonic" or "seconds",
  }
  io.write("AISTACK_LOAD_JSON ", json(result), "\n")
end
