-- Managed by aistack.fleet (role nginx_lb). The members of every pool and their state
-- (weight, backup, down, drain lease) live in a shared dictionary, loaded from the run-time
-- file that aistack.fleet.lb_member writes. A change is applied without reloading nginx:
-- lb_member POSTs to the loopback control location, which reads and checks the file and
-- swaps it in only when all of it is valid. The file is read again when nginx starts or
-- reloads, so the state survives both.
--
-- Run-time file, one record per line (fields separated by spaces, '#' starts a comment):
--   pool   NAME METHOD MAX_FAILS FAIL_TIMEOUT HEALTH_PATH [SCHEME]
--   member POOL NAME IP:PORT WEIGHT BACKUP DOWN LEASE_EXPIRES
-- METHOD: round_robin (smooth weighted round robin: a member's share of the requests is
-- its share of the weights, exactly), least_conn, ip_hash or random. BACKUP, DOWN: 0 or 1.
-- LEASE_EXPIRES: the epoch second a drain's lease ends (0: no lease). Once it has passed,
-- the health checker probes the member's HEALTH_PATH and puts it back after two answers.
-- SCHEME: http (the default) or https: TLS to the members, whose certificates must name
-- them (nginx's proxy_ssl_name is set to the member's name for each try; the health
-- checker verifies the same way and presents the load balancer's client certificate).
local balancer = require("ngx.balancer")

local M = {}
local dict = ngx.shared.aistack_lb
local runtime_path
-- PEM text of the client certificate and key for the health checks of https pools: read
-- by init (in the master, which can read the key) and parsed once per worker.
local client_pem, client_tls = {}, nil
local cache = { version = nil, pools = {} }
local PROBE_INTERVAL = 2
local PROBE_SUCCESSES = 2
local NAME = "^[%w._:-]+$"

local function numeric(value, low, high)
    local n = tonumber(value)
    if not n or n ~= math.floor(n) or n < low or n > high then
        return nil
    end
    return n
end

local function split_address(address)
    local host, port = address:match("^%[([%x:]+)%]:(%d+)$")
    if not host then
        host, port = address:match("^(%d+%.%d+%.%d+%.%d+):(%d+)$")
    end
    port = port and numeric(port, 1, 65535)
    if not host or not port then
        return nil
    end
    return host, port
end

-- Parse the run-time file; return the pools, or nil and a message naming the line.
function M.parse(text)
    local pools, line_no = {}, 0
    for line in (text .. "\n"):gmatch("([^\n]*)\n") do
        line_no = line_no + 1
        local words = {}
        for word in line:gsub("#.*", ""):gmatch("%S+") do
            words[#words + 1] = word
        end
        local kind = words[1]
        local function bad(why)
            return nil, string.format("line %d: %s", line_no, why)
        end
        if kind == "pool" then
            if #words ~= 6 and #words ~= 7 then
                return bad("a pool record has 6 or 7 fields")
            end
            local scheme = words[7] or "http"
            if scheme ~= "http" and scheme ~= "https" then
                return bad("unknown scheme '" .. scheme .. "'")
            end
            local name, method = words[2], words[3]
            if not name:match(NAME) or pools[name] then
                return bad("pool name '" .. name .. "' is invalid or repeated")
            end
            if method ~= "round_robin" and method ~= "least_conn" and method ~= "ip_hash" and method ~= "random" then
                return bad("unknown method '" .. method .. "'")
            end
            local max_fails, fail_timeout = numeric(words[4], 0, 1000), numeric(words[5], 1, 86400)
            if not max_fails or not fail_timeout or words[6]:sub(1, 1) ~= "/" then
                return bad("max_fails, fail_timeout or health path is invalid")
            end
            pools[name] = { name = name, method = method, max_fails = max_fails, fail_timeout = fail_timeout,
                            health_path = words[6], tls = scheme == "https", members = {} }
        elseif kind == "member" then
            if #words ~= 8 then
                return bad("a member record has 8 fields")
            end
            local pool = pools[words[2]]
            if not pool then
                return bad("member of undeclared pool '" .. words[2] .. "'")
            end
            local host, port = split_address(words[4])
            local weight, backup = numeric(words[5], 1, 1000), numeric(words[6], 0, 1)
            local down, lease = numeric(words[7], 0, 1), numeric(words[8], 0, 4102444800)
            if not words[3]:match(NAME) or not host or not weight or not backup or not down or not lease then
                return bad("member '" .. words[3] .. "' has an invalid field (name, IP:port, weight 1-1000, 0/1, lease)")
            end
            for _, other in ipairs(pool.members) do
                if other.name == words[3] or other.address == words[4] then
                    return bad("member '" .. words[3] .. "' is repeated")
                end
            end
            pool.members[#pool.members + 1] = { name = words[3], address = words[4], host = host, port = port,
                                                 weight = weight, backup = backup == 1, down = down == 1,
                                                 lease = lease }
        elseif kind then
            return bad("unknown record '" .. kind .. "'")
        end
    end
    return pools
end

local function read_file(path)
    local handle, err = io.open(path, "r")
    if not handle then
        return nil, err
    end
    local text = handle:read("*a")
    handle:close()
    return text
end

-- Swap in a checked text; note when each member left and came back into rotation.
local function store(text, pools)
    local now = ngx.now()
    local old_text = dict:get("runtime")
    local old = old_text and M.parse(old_text) or {}
    for name, pool in pairs(pools) do
        local before = {}
        for _, member in ipairs(old[name] and old[name].members or {}) do
            before[member.name] = member.down
        end
        for _, member in ipairs(pool.members) do
            local key = name .. "/" .. member.name
            if member.down and before[member.name] == false then
                dict:set("since:" .. key, now)
                -- How long the member still had requests in flight after it left (0: none).
                if (dict:get("inflight:" .. key) or 0) <= 0 then
                    dict:set("idle:" .. key, 0)
                else
                    dict:delete("idle:" .. key)
                end
            elseif not member.down and before[member.name] then
                local since = dict:get("since:" .. key)
                if since then
                    dict:set("out:" .. key, now - since)
                    dict:set("wait:" .. key, dict:get("idle:" .. key) or now - since)
                    dict:delete("since:" .. key)
                end
            end
        end
    end
    dict:set("runtime", text)
    dict:set("version", ngx.md5(text))
    dict:set("loaded_at", now)
end

-- Read the run-time file; keep what is loaded when it is missing or invalid.
function M.load_file()
    local text, err = read_file(runtime_path)
    if not text then
        return nil, "cannot read " .. runtime_path .. ": " .. tostring(err)
    end
    local pools, why = M.parse(text)
    if not pools then
        return nil, runtime_path .. " " .. why
    end
    store(text, pools)
    return true
end

function M.init(path, tls)
    -- The nginx sandbox denies writable and executable memory (MemoryDenyWriteExecute), which
    -- LuaJIT's compiler needs; the interpreter is ample for this much code.
    if jit then
        jit.off()
    end
    runtime_path = path
    for _, part in ipairs({ "certificate", "key" }) do
        if tls and tls[part] and tls[part] ~= "" then
            local text, err = read_file(tls[part])
            if not text then
                ngx.log(ngx.ERR, "aistack_balancer: cannot read ", tls[part], ": ", err)
            end
            client_pem[part] = text
        end
    end
    local ok, err = M.load_file()
    if not ok then
        ngx.log(ngx.ERR, "aistack_balancer: ", err, "; no member state loaded")
    end
end

local function current_pools()
    local version = dict:get("version")
    if version ~= cache.version then
        local pools = M.parse(dict:get("runtime") or "") or {}
        -- Per-worker balancing state starts again with each version.
        for _, pool in pairs(pools) do
            pool.current = {}
            pool.rotation = 0
        end
        cache.pools, cache.version = pools, version
    end
    return cache.pools
end

local function in_rotation(pool, member, now)
    if not member.down then
        return true
    end
    return member.lease > 0 and member.lease <= now
        and dict:get("healed:" .. pool.name .. "/" .. member.name) == member.lease
end

local function failing(pool, member)
    return pool.max_fails > 0 and (dict:get("fails:" .. pool.name .. "/" .. member.name) or 0) >= pool.max_fails
end

local function candidates(pool, tried)
    local now = ngx.now()
    local groups = { { {}, 0 }, { {}, 0 } }  -- primary, backup: members and weight sum
    local fallback = { {}, 0 }
    for _, member in ipairs(pool.members) do
        if in_rotation(pool, member, now) and not tried[member.address] then
            local group = member.backup and groups[2] or groups[1]
            if not failing(pool, member) then
                group[1][#group[1] + 1] = member
                group[2] = group[2] + member.weight
            elseif not member.backup then
                fallback[1][#fallback[1] + 1] = member
                fallback[2] = fallback[2] + member.weight
            end
        end
    end
    if #groups[1][1] > 0 then
        return groups[1][1], groups[1][2]
    elseif #groups[2][1] > 0 then
        return groups[2][1], groups[2][2]
    end
    -- Every member failed lately: like nginx, try them anyway rather than answer nothing.
    return fallback[1], fallback[2]
end

-- The member whose share of the weights holds point (0 <= point < total).
local function by_weight(members, point)
    for _, member in ipairs(members) do
        point = point - member.weight
        if point < 0 then
            return member
        end
    end
    return members[#members]
end

local function pick(pool, members, total)
    if pool.method == "round_robin" then
        local best
        for _, member in ipairs(members) do
            local value = (pool.current[member.address] or 0) + member.weight
            pool.current[member.address] = value
            if not best or value > pool.current[best.address] then
                best = member
            end
        end
        pool.current[best.address] = pool.current[best.address] - total
        return best
    elseif pool.method == "ip_hash" then
        return by_weight(members, ngx.crc32_short(ngx.var.binary_remote_addr or "") % total)
    elseif pool.method == "random" then
        return by_weight(members, math.random() * total)
    end
    -- least_conn: the fewest requests in flight per weight, ties taken in turn.
    pool.rotation = pool.rotation + 1
    local best, best_score
    for index = 1, #members do
        local member = members[(index + pool.rotation) % #members + 1]
        local score = (dict:get("inflight:" .. pool.name .. "/" .. member.name) or 0) / member.weight
        if not best or score < best_score then
            best, best_score = member, score
        end
    end
    return best
end

-- balancer_by_lua: choose the member for this try of the request.
function M.balance(pool_name)
    local pool = current_pools()[pool_name]
    local ctx = ngx.ctx
    if not pool then
        ngx.log(ngx.ERR, "aistack_balancer: pool '", pool_name, "' has no run-time state")
        return ngx.exit(502)
    end
    if balancer.get_last_failure() then
        ctx.aistack_tried[ctx.aistack_peer.address] = true
    else
        ctx.aistack_tried = {}
        ctx.aistack_pool = pool
        ctx.aistack_peers = {}
        balancer.set_more_tries(math.max(#pool.members - 1, 0))
    end
    local members, total = candidates(pool, ctx.aistack_tried)
    if #members == 0 then
        return ngx.exit(502)
    end
    local member = pick(pool, members, total)
    ctx.aistack_peer = member
    ctx.aistack_peers[#ctx.aistack_peers + 1] = member
    dict:incr("requests:" .. pool.name .. "/" .. member.name, 1, 0)
    dict:incr("inflight:" .. pool.name .. "/" .. member.name, 1, 0)
    if pool.tls then
        -- The name the member's certificate must have (proxy_ssl_name $aistack_peer_name).
        ngx.var.aistack_peer_name = member.name
    end
    local ok, err = balancer.set_current_peer(member.host, member.port)
    if not ok then
        ngx.log(ngx.ERR, "aistack_balancer: cannot use ", member.address, ": ", err)
        return ngx.exit(502)
    end
end

-- log_by_lua: count failed tries (like max_fails) and end the tries in flight. The count of
-- tries in flight per member is what a drain waits for (idle upstream keep-alive
-- connections are not requests) and what least_conn compares.
function M.log()
    local ctx = ngx.ctx
    local pool = ctx.aistack_pool
    if not pool then
        return
    end
    local statuses = {}
    for status in (ngx.var.upstream_status or ""):gmatch("[^,%s]+") do
        statuses[#statuses + 1] = status
    end
    for index, member in ipairs(ctx.aistack_peers) do
        local status = statuses[index]
        local key = pool.name .. "/" .. member.name
        if status == "502" or status == "504" or status == "-" then
            dict:incr("fails:" .. key, 1, 0, pool.fail_timeout)
        end
        local left = dict:incr("inflight:" .. key, -1, 0)
        local since = dict:get("since:" .. key)
        if left and left <= 0 and since and not dict:get("idle:" .. key) then
            dict:set("idle:" .. key, ngx.now() - since)
        end
    end
end

local function client_certificate()
    if client_tls == nil then
        client_tls = false
        if client_pem.certificate and client_pem.key then
            local ssl = require("ngx.ssl")
            local cert, cert_err = ssl.parse_pem_cert(client_pem.certificate)
            local key, key_err = ssl.parse_pem_priv_key(client_pem.key)
            if cert and key then
                client_tls = { cert = cert, key = key }
            else
                ngx.log(ngx.ERR, "aistack_balancer: the client certificate does not parse: ", cert_err or key_err)
            end
        end
    end
    return client_tls
end

-- Health checks of members whose drain lease has passed (one worker runs them).
local function probe(pool, member)
    local sock = ngx.socket.tcp()
    sock:settimeout(1000)
    local ok = sock:connect(member.host, member.port)
    if not ok then
        return false
    end
    if pool.tls then
        local client = client_certificate()
        if client then
            sock:setclientcert(client.cert, client.key)
        end
        -- Verified against lua_ssl_trusted_certificate, for the member's name.
        local session, err = sock:sslhandshake(nil, member.name, true)
        if not session then
            ngx.log(ngx.WARN, "aistack_balancer: TLS to ", pool.name, "/", member.name, " failed: ", err)
            sock:close()
            return false
        end
    end
    sock:send("GET " .. pool.health_path .. " HTTP/1.0\r\nHost: " .. member.name .. "\r\nUser-Agent: aistack-lb-health\r\n\r\n")
    local line = sock:receive("*l")
    sock:close()
    return line ~= nil and line:match("^HTTP/1%.%d 200") ~= nil
end

local function check_leases(premature)
    if premature then
        return
    end
    local now = ngx.now()
    for _, pool in pairs(current_pools()) do
        for _, member in ipairs(pool.members) do
            local key = pool.name .. "/" .. member.name
            if member.down and member.lease > 0 and member.lease <= now
                and dict:get("healed:" .. key) ~= member.lease then
                if probe(pool, member) then
                    if dict:incr("probes:" .. key, 1, 0, 60) >= PROBE_SUCCESSES then
                        dict:set("healed:" .. key, member.lease, 86400)
                        ngx.log(ngx.WARN, "aistack_balancer: ", key, " is back in rotation: its drain lease ",
                                "expired and it answers ", pool.health_path)
                    end
                else
                    dict:delete("probes:" .. key)
                end
            end
        end
    end
end

function M.init_worker()
    if ngx.worker.id() == 0 then
        ngx.timer.every(PROBE_INTERVAL, check_leases)
    end
end

local function quote(value)
    return '"' .. tostring(value):gsub('[%c"\\]', "") .. '"'
end

local function report()
    local now = ngx.now()
    local parts = {}
    for name, pool in pairs(current_pools()) do
        local members = {}
        for _, member in ipairs(pool.members) do
            local key = name .. "/" .. member.name
            local since = dict:get("since:" .. key)
            members[#members + 1] = string.format(
                '{"name":%s,"address":%s,"weight":%d,"backup":%s,"down":%s,"lease_expires":%d,'
                    .. '"in_rotation":%s,"failing":%s,"requests":%d,"in_flight":%d,"out_of_rotation_last_seconds":%s,'
                    .. '"drain_wait_last_seconds":%s,"out_of_rotation_seconds":%s}',
                quote(member.name), quote(member.address), member.weight, tostring(member.backup),
                tostring(member.down), member.lease, tostring(in_rotation(pool, member, now)),
                tostring(failing(pool, member)), dict:get("requests:" .. key) or 0,
                math.max(dict:get("inflight:" .. key) or 0, 0),
                tostring(dict:get("out:" .. key) or "null"), tostring(dict:get("wait:" .. key) or "null"),
                since and not in_rotation(pool, member, now) and string.format("%.3f", now - since) or "null")
        end
        parts[#parts + 1] = string.format('%s:{"method":%s,"members":[%s]}', quote(name), quote(pool.method),
                                          table.concat(members, ","))
    end
    return string.format('{"version":%s,"loaded_at":%.3f,"pools":{%s}}\n', quote(dict:get("version") or ""),
                         dict:get("loaded_at") or 0, table.concat(parts, ","))
end

-- content_by_lua of the loopback control location: GET reports, POST loads the file.
function M.control()
    ngx.header["Content-Type"] = "application/json"
    if ngx.req.get_method() == "POST" then
        local ok, err = M.load_file()
        if not ok then
            ngx.status = 422
            ngx.say('{"error":', quote(err), "}")
            return
        end
    elseif ngx.req.get_method() ~= "GET" then
        ngx.status = 405
        ngx.say('{"error":"use GET or POST"}')
        return
    end
    ngx.print(report())
end

return M
