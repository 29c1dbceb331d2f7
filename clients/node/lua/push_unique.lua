-- push_unique: push jobs that each carry a unique key (feature `unique`). While a job with
-- key K waits, is scheduled, runs, or is within its window after completing, a push with K
-- writes nothing and answers that job's id; otherwise the job is pushed (to the tail of
-- `waiting`, or to `scheduled` when it has a due time, as `schedule` does) and holds K. Keys
-- are per queue. Every job is checked first, as push checks: one bad job refuses the call.
-- Stored requests are served from the new ready jobs in the same call, as push serves them.
-- KEYS[1] meta  KEYS[2] waiting  KEYS[3] jobs  KEYS[4] stats  KEYS[5] requests  KEYS[6] leases
-- KEYS[7] workers  KEYS[8] scheduled
-- ARGV[1] the caller's protocol version, then for each job: its data (JSON), its attempt
-- limit (""), its due time ("", "+MS" or "@MS", as schedule takes it), its unique key (1 to
-- 1024 bytes) and the key's window after completion (ms, "0" for none).
-- Returns a flat list: for each job, its id (text) and 1 when it was pushed or 0 when its key
-- was held (the id is then the holder's).
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_TOOLARGE; SQUE_INVALID "job N: ...".
local s = open_call(KEYS[1], ARGV[1], 'max_job_bytes')
local count = (#ARGV - 1) / 5
if count < 1 or count ~= math.floor(count) then
  return redis.error_reply('SQUE_INVALID push_unique takes (data, max_attempts, due, key, window) for each job after the protocol version')
end
local now = now_ms()
local due = {}
local check = since_1_1().check_job
for i = 0, count - 1 do
  local a = 2 + 5 * i
  local key, window = ARGV[a + 3], ARGV[a + 4]
  due[i + 1] = check(i + 1, ARGV[a], ARGV[a + 1], ARGV[a + 2], s.max_job_bytes, now)
  if #key < 1 or #key > 1024 then
    return redis.error_reply('SQUE_INVALID job ' .. (i + 1) .. ': a unique key is 1 to 1024 bytes, not ' .. #key)
  end
  if not string.match(window, '^%d+$') or #window > 15 then
    return redis.error_reply('SQUE_INVALID job ' .. (i + 1) .. ': window ' ..
      string.format('%q', string.sub(window, 1, 20)) .. ' is not ms')
  end
end
since_1_1().require_feature(KEYS[1], s.requires, 'unique')
local base = key_base(KEYS[1])
local u = since_1_1().unique
local k = u.keys(base)
-- One read of every key's holder, then each write once for the whole call (a call costs
-- about as much as a job it writes): a key held, or named earlier in this call, keeps its
-- holder; the others get the ids that follow seq, in order.
local keys = {}
for i = 0, count - 1 do keys[i + 1] = ARGV[5 + 5 * i] end
local holders = redis.call('HMGET', k.held, unpack(keys))
-- fresh: the jobs to push; first_named[key]: the job of this call that takes the key.
local fresh, first_named = {}, {}
for i = 1, count do
  local key = keys[i]
  if not holders[i] and not first_named[key] then
    fresh[#fresh + 1] = i
    first_named[key] = i
  end
end
local out, ready, earliest, soonest = {}, 0, nil, nil
local first = #fresh > 0 and redis.call('HINCRBY', KEYS[1], 'seq', #fresh) - #fresh + 1
local data, items, held, of, members = {}, {}, {}, {}, {}
local id_of = {}
for n, i in ipairs(fresh) do
  local a = 2 + 5 * (i - 1)
  local id = string.format('%d', first + n - 1)
  id_of[keys[i]] = id
  data[#data + 1] = id
  data[#data + 1] = ARGV[a]
  held[#held + 1] = keys[i]
  held[#held + 1] = id
  of[#of + 1] = id
  of[#of + 1] = ARGV[a + 4] .. '|' .. keys[i]
  local max = ARGV[a + 1]
  local when = due[i]
  if when then
    local padded = string.rep('0', 20 - #id) .. id
    members[#members + 1] = string.format('%d', when)
    members[#members + 1] = max == '' and (padded .. '|0') or (padded .. '|0|' .. max)
    if not soonest or when < soonest then soonest = when end
  else
    items[#items + 1] = max == '' and (id .. '|0') or (id .. '|0|' .. max)
  end
end
-- A key named twice in the call: the second answers the first's id, and is not pushed.
for i = 1, count do
  out[#out + 1] = holders[i] or id_of[keys[i]]
  out[#out + 1] = (not holders[i] and first_named[keys[i]] == i) and 1 or 0
end
if #data > 0 then
  redis.call('HSET', KEYS[3], unpack(data))
  redis.call('HSET', k.held, unpack(held))
  redis.call('HSET', k.of, unpack(of))
  -- When the new jobs were pushed (`pushed`, as push records it).
  redis.call('ZADD', base .. 'pushed', first, string.format('%d|%d', first, now))
end
if #items > 0 then
  redis.call('RPUSH', KEYS[2], unpack(items))
  ready = #items
end
if #members > 0 then
  earliest = redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')[2] or false
  since_1_1().require_feature(KEYS[1], redis.call('HGET', KEYS[1], 'requires'), 'delay')
  redis.call('ZADD', KEYS[8], unpack(members))
end
if soonest and (not earliest or soonest < tonumber(earliest)) then
  redis.call('SPUBLISH', base .. 'wake', 'scheduled')
end
if ready > 0 and not s.paused and redis.call('LLEN', KEYS[5]) > 0 then
  local srv = server()
  local serving = open_call(KEYS[1], nil, 'lease', 'inbox_ttl', 'max_attempts', 'max_job_bytes')
  srv.dispatch_stored(srv.serving(base, serving, now),
                      {waiting = KEYS[2], requests = KEYS[5], workers = KEYS[7], stats = KEYS[4]},
                      ready, now)
  if redis.call('LLEN', KEYS[5]) > 0 and redis.call('LLEN', KEYS[2]) > 0 then
    redis.call('SPUBLISH', base .. 'wake', 'pushed')
  end
end
return out
