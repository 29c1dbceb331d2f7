-- lib: helpers shared by the scripts. scripts/mod.rs puts this file before each script's own
-- text, so one piece of Lua serves every script that opens a call, hands out a job or reads
-- the clock.
--
-- Every script takes the queue's meta as KEYS[1] and the caller's protocol version as ARGV[1].
-- The queue's other keys start like its meta key ("P:{Q}:"), and so do its wake channel
-- ("P:{Q}:wake") and its workers' inboxes ("P:{Q}:inbox:W"), which the scripts name themselves.

-- Redis's clock in milliseconds, and the microseconds of the current second (for jitter).
-- Leases, backoffs and heartbeats are measured on this clock only, never on a host's.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[2])
end

-- "P:{Q}:" from "P:{Q}:meta".
local function key_base(meta)
  return string.sub(meta, 1, -5)
end

local function queue_name(meta)
  return string.match(meta, '{(.*)}') or meta
end

local function major(version)
  return string.match(version, '^(%d+)')
end

-- Opens a call on the queue whose meta is `meta`: refuses a caller of another protocol major
-- version and a queue nobody opened, and returns the queue's settings named in `fields`
-- (numbers), by name.
local function open_call(meta, caller, fields)
  local values = redis.call('HMGET', meta, 'protocol', unpack(fields))
  if not values[1] then
    error({err = 'SQUE_NOQUEUE ' .. queue_name(meta)})
  end
  if major(values[1]) ~= major(caller) then
    error({err = 'SQUE_PROTOCOL ' .. values[1] .. ' ' .. queue_name(meta)})
  end
  local settings = {}
  for i, field in ipairs(fields) do
    local value = tonumber(values[i + 1])
    if not value then
      error({err = 'SQUE_NOQUEUE ' .. queue_name(meta) .. ' has no setting ' .. field .. '; open the queue first'})
    end
    settings[field] = value
  end
  return settings
end

-- The settings a script that hands out jobs needs.
local SERVE_SETTINGS = {'lease', 'inbox_ttl', 'max_attempts'}

-- Gives out waiting jobs to `requests` ({worker, seq} pairs, in order), oldest job to
-- oldest request, while jobs wait. Each waiting item ("id|attempts" or "id|attempts|max")
-- becomes a delivery: the attempt goes up by one, the lease (token "id|attempt|max") is
-- scored by its deadline, and {"r":seq,"t":token,"d":data} goes to the worker's inbox, or,
-- with `q.out`, is appended to it (the caller returns it in its reply). An item whose data
-- is gone (a purged job) is dropped. Batched: one LPOP, one HMGET and one ZADD serve all the
-- requests that jobs are left for. Returns how many requests were served; the rest are left
-- to the caller.
-- `q`: {jobs = key, leases = key, base = "P:{Q}:", deadline = ms, default_max = n,
-- inbox_ttl = ms, out = table or nil}
local function serve(q, waiting, requests)
  local served = 0
  while served < #requests do
    local wanted = #requests - served
    local items = redis.call('LPOP', waiting, wanted)
    if not items then break end
    local parsed, ids = {}, {}
    for i, item in ipairs(items) do
      local id, attempt, max = string.match(item, '^([^|]+)|(%d+)|?(%d*)$')
      parsed[i] = {id, attempt, max}
      ids[i] = id or ''
    end
    local data = redis.call('HMGET', q.jobs, unpack(ids))
    local leases = {}
    for i, p in ipairs(parsed) do
      if p[1] and data[i] then
        served = served + 1
        local worker, seq = requests[served][1], requests[served][2]
        local max = p[3] == '' and q.default_max or p[3]
        local token = p[1] .. '|' .. (tonumber(p[2]) + 1) .. '|' .. max
        leases[#leases + 1] = q.deadline
        leases[#leases + 1] = token
        local delivery = '{"r":"' .. seq .. '","t":"' .. token .. '","d":' .. data[i] .. '}'
        if q.out then
          q.out[#q.out + 1] = delivery
        else
          local inbox = q.base .. 'inbox:' .. worker
          redis.call('RPUSH', inbox, delivery)
          redis.call('PEXPIRE', inbox, q.inbox_ttl)
        end
      end
    end
    if #leases > 0 then redis.call('ZADD', q.leases, unpack(leases)) end
    if #items < wanted then break end
  end
  return served
end

-- The `q` of `serve` for the queue whose keys start with `base`, with its settings `s`.
local function serving(base, s, now, out)
  return {jobs = base .. 'jobs', leases = base .. 'leases', base = base,
          deadline = now + s.lease, default_max = s.max_attempts, inbox_ttl = s.inbox_ttl,
          out = out}
end

-- Serves stored requests ("worker:seq" in `keys.requests`, oldest first) with waiting jobs,
-- oldest with oldest, up to `max_pairs`. A request of a worker whose heartbeat ran out is
-- dropped. Returns how many were served (and counts them as dispatched).
-- `keys`: {waiting, requests, workers, stats}
local function dispatch_stored(q, keys, max_pairs, now)
  local alive = {}
  local n = 0
  while n < max_pairs and redis.call('LLEN', keys.waiting) > 0 do
    local req = redis.call('LPOP', keys.requests)
    if not req then break end
    local worker, seq = string.match(req, '^([^:]+):(.+)$')
    if worker then
      if alive[worker] == nil then
        local until_ms = redis.call('ZSCORE', keys.workers, worker)
        alive[worker] = until_ms and tonumber(until_ms) > now or false
      end
      if alive[worker] then
        if serve(q, keys.waiting, {{worker, seq}}) == 1 then
          n = n + 1
        else
          -- No job left after all (purged data): the request keeps its place.
          redis.call('LPUSH', keys.requests, req)
          break
        end
      end
    end
  end
  if n > 0 then redis.call('HINCRBY', keys.stats, 'dispatched', n) end
  return n
end
