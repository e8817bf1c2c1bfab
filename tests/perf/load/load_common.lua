-- load_common.lua: what mixed.lua and stream.lua share (wrk 4.x, LuaJIT). load.py puts this
-- directory on LUA_PATH, so the scripts `require "load_common"`. Each wrk thread has its own
-- Lua state and so its own copy, back-off state included.
local M = {}

-- ---------------------------------------------------------------------------------------
-- A monotonic clock in milliseconds (LuaJIT FFI); os.time() (whole seconds) without FFI.
-- ---------------------------------------------------------------------------------------
local has_ffi, ffi = pcall(require, "ffi")
M.has_ffi = has_ffi
if has_ffi then
  ffi.cdef([[
    typedef struct { long tv_sec; long tv_nsec; } aistack_timespec;
    int clock_gettime(int clock_id, aistack_timespec *tp);
    int poll(void *fds, unsigned long nfds, int timeout);
  ]])
  local ts = ffi.new("aistack_timespec")
  local CLOCK_MONOTONIC = 1
  M.now_ms = function()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, ts)
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
else
  M.now_ms = function()
    return os.time() * 1000
  end
end

-- Block this thread for `ms` milliseconds (poll(2) with no descriptors). Used only as a
-- back-off after a failed attempt: the thread owns a single connection, so nothing else
-- waits. Without FFI there is no back-off.
local function sleep_ms(ms)
  if has_ffi then
    ffi.C.poll(nil, 0, math.floor(ms))
  end
end

-- After a failed attempt (no answer: wrk reconnected at once), wait 10 ms, doubling up to
-- 500 ms while attempts keep failing, as a client would; a dead target then costs a few
-- attempts per second per connection instead of a busy loop of thousands. An answer
-- (reset_back_off) starts over.
local failures_in_row = 0
function M.back_off()
  failures_in_row = failures_in_row + 1
  sleep_ms(math.min(500, 10 * 2 ^ (failures_in_row - 1)))
end

function M.reset_back_off()
  failures_in_row = 0
end

-- ---------------------------------------------------------------------------------------
-- JSON by hand (LuaJIT has no json module). Tables with string keys become objects, keys
-- sorted so the output is stable; integral numbers print without a fraction.
-- ---------------------------------------------------------------------------------------
local function json_string(s)
  s = s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or string.format("\\u%04x", c:byte())
  end)
  return '"' .. s .. '"'
end

function M.json(value)
  local kind = type(value)
  if kind == "table" then
    local keys = {}
    for key in pairs(value) do
      keys[#keys + 1] = tostring(key)
    end
    table.sort(keys)
    local parts = {}
    for _, key in ipairs(keys) do
      parts[#parts + 1] = json_string(key) .. ":" .. M.json(value[key])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      return "null"
    elseif value == math.floor(value) and math.abs(value) < 2 ^ 53 then
      return string.format("%.0f", value)
    end
    return string.format("%.3f", value)
  elseif kind == "string" then
    return json_string(value)
  elseif kind == "boolean" then
    return tostring(value)
  end
  return "null"
end

-- A table of numbers (nested) as Lua source, so done() can read a thread's counters: wrk's
-- thread:get() copies numbers and strings safely, but not nested tables (wrk 4.1 crashes).
function M.serialize(value)
  if type(value) ~= "table" then
    return string.format("%.17g", value)
  end
  local parts = {}
  for key, item in pairs(value) do
    parts[#parts + 1] = "[" .. string.format("%q", key) .. "]=" .. M.serialize(item)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- Add the numbers of table `from` into table `into`, recursively (used to merge threads).
function M.merge(into, from)
  for key, value in pairs(from) do
    if type(value) == "table" then
      into[key] = into[key] or {}
      M.merge(into[key], value)
    else
      into[key] = (into[key] or 0) + value
    end
  end
end

function M.status_class(status)
  if status >= 200 and status < 600 then
    return string.format("%dxx", math.floor(status / 100))
  end
  return "other"
end

-- Occurrences of a plain (non-pattern) string in text.
function M.count_plain(text, needle)
  local count, from = 0, 1
  while true do
    local at = text:find(needle, from, true)
    if not at then
      return count
    end
    count = count + 1
    from = at + #needle
  end
end

return M
