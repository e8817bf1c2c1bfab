-- stream.lua: long-lived server-sent-event streams for tests/perf/load/load.py (wrk 4.x).
--
-- Each connection loops over GET /v1/stream?seconds=S&interval=I: the app answers with one
-- `event: tick` per interval, then a final `event: done` whose data is
-- {"events": N, "version": "..."}. A stream is checked when its response has fully arrived:
--   completed  2xx, the `done` event is there, and it and the ticks both count N events
--   truncated  2xx, but no `done` event or fewer ticks (the body ended early, cleanly)
--   broken     the request was written but the connection failed before the response was
--              complete (a reset or an early close: wrk counts that as a read error)
-- Streams still open when the run stops are `in_flight`, neither completed nor failed.
--
-- Run it with ONE CONNECTION PER THREAD (wrk -t N -c N), so each response() belongs to the
-- last request() of its Lua state. Set wrk --timeout above S, or wrk drops the sample.
--
-- Script arguments (after `--` on wrk's command line):
--   1: seconds     stream length S
--   2: interval    seconds between ticks I
--   3: expected    events per stream, N = max(1, round(S / I)) as the app computes it
--   4: timeout_ms  a stream slower than this counts as slow (same value as wrk --timeout)
--   5: prefix      path prefix of the service (empty when it sits at the root)
--
-- done() prints one line, `AISTACK_LOAD_JSON {...}`, that load.py reads.

-- The clock, back-off, JSON and counter helpers shared with the other script.
local common = require("load_common")
local now_ms, back_off, json, serialize, merge, status_class =
  common.now_ms, common.back_off, common.json, common.serialize, common.merge, common.status_class

-- ---------------------------------------------------------------------------------------
-- Main state: remember the threads so done() can read their counters.
-- ---------------------------------------------------------------------------------------
local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  threads[#threads + 1] = thread
end

-- ---------------------------------------------------------------------------------------
-- Thread state.
-- ---------------------------------------------------------------------------------------
local stream_request
local expected, timeout_ms
local sent_at = 0

-- True while this thread's connection waits for a stream it asked for.
outstanding = false

local counts = {
  sent = 0,
  status = { ["2xx"] = 0, ["3xx"] = 0, ["4xx"] = 0, ["5xx"] = 0, other = 0 },
  versions = {}, -- `done` events by the version they name
  completed = 0,
  truncated = 0,
  broken = 0,
  slow = 0, -- streams slower than timeout_ms (wrk counts these as errors.timeout)
  slow_ok = 0, -- ... of which the status was 2xx/3xx
  ticks = 0, -- tick events received in completed and truncated streams
}

-- The counters as done() will read them (see serialize); refreshed after every change.
snapshot = "{}"
local function publish()
  snapshot = serialize(counts)
end

function init(args)
  local seconds = args[1] or "10"
  local interval = args[2] or "0.5"
  expected = tonumber(args[3]) or 1
  timeout_ms = tonumber(args[4]) or 60000
  local prefix = args[5] or ""
  local path = string.format("%s/v1/stream?seconds=%s&interval=%s", prefix, seconds, interval)
  local headers = { ["Accept"] = "text/event-stream" }
  -- Headers given on wrk's command line (-H) go on every request, this one too.
  for name, value in pairs(wrk.headers) do
    headers[name] = headers[name] or value
  end
  stream_request = wrk.format("GET", path, headers)
  publish()
end

-- wrk calls request() once in the first thread before the run, only to check that it
-- returns a valid HTTP request (script_verify_request); that call sends nothing.
local verified = false

function request()
  if thread_index == 0 and not verified then
    verified = true
    return stream_request
  end
  if outstanding then
    -- The previous stream got no complete response: the connection failed under it.
    counts.broken = counts.broken + 1
    back_off()
  end
  counts.sent = counts.sent + 1
  outstanding = true
  sent_at = now_ms()
  publish()
  return stream_request
end

function response(status, headers, body)
  outstanding = false
  common.reset_back_off()
  local class = status_class(status)
  local ok = class == "2xx" or class == "3xx"
  counts.status[class] = counts.status[class] + 1
  if now_ms() - sent_at > timeout_ms then
    counts.slow = counts.slow + 1
    if ok then
      counts.slow_ok = counts.slow_ok + 1
    end
  end
  if class ~= "2xx" then
    publish()
    return -- a failed status, counted above; not a stream
  end

  local ticks = common.count_plain(body, "event: tick")
  counts.ticks = counts.ticks + ticks
  local done_at = body:find("event: done", 1, true)
  local done_events
  if done_at then
    local data = body:sub(done_at)
    done_events = tonumber(data:match('"events"%s*:%s*(%d+)'))
    local version = data:match('"version"%s*:%s*"([^"]*)"') or "unknown"
    counts.versions[version] = (counts.versions[version] or 0) + 1
  end
  if done_at and ticks >= expected and done_events == expected then
    counts.completed = counts.completed + 1
  else
    counts.truncated = counts.truncated + 1
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
      in_flight = in_flight + 1 -- a stream still open when the run stopped
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
    versions = total.versions,
    sent = total.sent,
    streams_completed = total.completed,
    streams_truncated = total.truncated,
    streams_broken = total.broken,
    ticks = total.ticks,
    slow = total.slow,
    slow_ok = total.slow_ok,
    in_flight = in_flight,
    threads = #threads,
    clock = common.has_ffi and "monotonic" or "seconds",
  }
  io.write("AISTACK_LOAD_JSON ", json(result), "\n")
end
