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
-- inbox_ttl = ms}
local function hand_out(q, item, worker, seq)
  local id, attempt, max = string.match(item, '^([^|]+)|(%d+)|?(%d*)$')
  local data = id and redis.call('HGET', q.jobs, id)
  if not data then return false end
  if max == '' then max = q.default_max end
  local token = id .. '|' .. (tonumber(attempt) + 1) .. '|' .. max
  redis.call('ZADD', q.leases, q.deadline, token)
  local inbox = q.base .. 'inbox:' .. worker
  redis.call('RPUSH', inbox, '{"r":"' .. seq .. '","t":"' .. token .. '","d":' .. data .. '}')
  redis.call('PEXPIRE', inbox, q.inbox_ttl)
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
