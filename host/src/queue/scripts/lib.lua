-- lib: helpers shared by the scripts. scripts.rs puts this file before each script's own
-- text, so one piece of Lua serves every script that hands out a job or reads the clock.

-- Redis's clock in milliseconds, and the microseconds of the current second (for jitter).
-- Leases, backoffs and heartbeats are measured on this clock only, never on a host's.
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), tonumber(t[2])
end

-- Hands the job of a waiting item ("id|attempts" or "id|attempts|max") to request `seq` of
-- `worker`: the attempt goes up by one, the lease (token "id|attempt|max") is scored by its
-- deadline, and {"r":seq,"t":token,"d":data} goes to the worker's inbox. Returns false, and
-- drops the item, when the job's data is gone (a purged job).
-- `q`: {jobs = key, leases = key, base = "p:{q}:", deadline = ms, default_max = n,
-- inbox_ttl = ms, out = table or nil}. With `q.out`, the delivery is appended to it (the
-- caller returns it to the worker in its reply) instead of going through the inbox.
local function hand_out(q, item, worker, seq)
  local id, attempt, max = string.match(item, '^([^|]+)|(%d+)|?(%d*)$')
  local data = id and redis.call('HGET', q.jobs, id)
  if not data then return false end
  if max == '' then max = q.default_max end
  local token = id .. '|' .. (tonumber(attempt) + 1) .. '|' .. max
  redis.call('ZADD', q.leases, q.deadline, token)
  local delivery = '{"r":"' .. seq .. '","t":"' .. token .. '","d":' .. data .. '}'
  if q.out then
    q.out[#q.out + 1] = delivery
  else
    local inbox = q.base .. 'inbox:' .. worker
    redis.call('RPUSH', inbox, delivery)
    redis.call('PEXPIRE', inbox, q.inbox_ttl)
  end
  return true
end

-- Gives out waiting jobs to `requests` ({worker, seq} pairs, in order) while jobs wait.
-- Returns how many requests were served; the rest are left to the caller.
local function serve(q, waiting, requests)
  local served = 0
  while served < #requests do
    local item = redis.call('LPOP', waiting)
    if not item then break end
    local r = requests[served + 1]
    if hand_out(q, item, r[1], r[2]) then served = served + 1 end
  end
  return served
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
