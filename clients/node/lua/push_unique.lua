-- push_unique: push jobs that each carry a unique key (feature `unique`). While a job with
-- key K waits, is scheduled, runs, or is within its window after completing, a push with K
-- writes nothing and answers that job's id; otherwise the job is pushed (to the tail of
-- `waiting`, or to `scheduled` when it has a due time, as `schedule` does) and holds K. Keys
-- are per queue. Every job is checked first, as push checks: one bad job refuses the call.
-- Stored requests are served from the new ready jobs in the same call, as push serves them.
-- KEYS[1] meta  KEYS[2] waiting, or waiting:L for jobs at priority L (as `push` takes it)
-- KEYS[3] jobs  KEYS[4] stats  KEYS[5] requests  KEYS[6] leases
-- KEYS[7] workers  KEYS[8] scheduled
-- ARGV[1] the caller's protocol version, then for each job: its data (JSON), its attempt
-- limit (""), its due time ("", "+MS" or "@MS", as schedule takes it), its unique key (1 to
-- 1024 bytes) and the key's window after completion (ms, "0" for none).
-- Returns a flat list: the first new id (0 when no job was pushed), then for each job that
-- was not pushed, its number in the call (from 1) and the id of the job that holds its key.
-- The jobs pushed have the ids from the first on, in the call's order.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_TOOLARGE; SQUE_INVALID "job N: ...".
local s = open_call(KEYS[1], ARGV[1], 'max_job_bytes')
local count = (#ARGV - 1) / 5
if count < 1 or count ~= math.floor(count) then
  return redis.error_reply('SQUE_INVALID push_unique takes (data, max_attempts, due, key, window) for each job after the protocol version')
end
local limit = s.max_job_bytes
local base = key_base(KEYS[1])
-- A list other than `waiting` names the jobs' priority (`waiting:L`, feature `priority`).
local level = KEYS[2] ~= base .. 'waiting' and since_1_2().level_named(base, KEYS[2])
local keys = {}
for i = 1, count do keys[i] = ARGV[5 * i] end
local u = since_1_1().unique
local k = u.keys(base)
-- One read of every key's holder, then each write once for the whole call (a call costs
-- about as much as a job it writes), in one pass over the jobs that also checks each: an
-- error comes before anything is written.
local holders = redis.call('HMGET', k.held, unpack(keys))
local now = now_ms()
-- The last id given, read as HINCRBY reads it (a seq that is not a number is refused).
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 0)
local last = seq
-- taken[key]: the id of the job of this call that takes the key; out: the reply.
local taken, out = {}, {0}
-- at: when each new job begins to wait (its due time, or now), for `pushed`.
local data, items, held, of, members, at = {}, {}, {}, {}, {}, {}
-- over: the keys taken over from a holder whose window had ended.
local over = {}
local soonest
local check = since_1_1().check_job
for i = 1, count do
  local a = 5 * i - 3
  local json, max, when, key, window = ARGV[a], ARGV[a + 1], ARGV[a + 2], keys[i], ARGV[a + 4]
  local due
  if max == '' and when == '' then
    if #json > limit or #json == 0 then check(i, json, max, when, limit, now) end
  else
    due = check(i, json, max, when, limit, now)
  end
  if #key < 1 or #key > 1024 then
    return redis.error_reply('SQUE_INVALID job ' .. i .. ': a unique key is 1 to 1024 bytes, not ' .. #key)
  end
  if window ~= '0' and (not string.match(window, '^%d+$') or #window > 15) then
    return redis.error_reply('SQUE_INVALID job ' .. i .. ': window ' ..
      string.format('%q', string.sub(window, 1, 20)) .. ' is not ms')
  end
  local holder = taken[key] or holders[i]
  -- A key whose holder completed and whose window has ended is free, freed by a reaper yet
  -- or not: the window ends on Redis's clock, not at the reaper's next pass.
  if holder and holder == holders[i] and u.window_over(k, key, now) then
    holder = nil
    over[#over + 1] = key
  end
  if holder then
    out[#out + 1] = i
    out[#out + 1] = holder
  else
    last = last + 1
    local id = string.format('%d', last)
    taken[key] = id
    data[#data + 1] = id
    data[#data + 1] = json
    held[#held + 1] = key
    held[#held + 1] = id
    of[#of + 1] = id
    of[#of + 1] = window .. '|' .. key
    at[#at + 1] = due and math.max(due, now) or now
    if due then
      local padded = string.rep('0', 20 - #id) .. id
      members[#members + 1] = string.format('%d', due)
      members[#members + 1] = max == '' and (padded .. '|0') or (padded .. '|0|' .. max)
      if not soonest or due < soonest then soonest = due end
    else
      items[#items + 1] = max == '' and (id .. '|0') or (id .. '|0|' .. max)
    end
  end
end
since_1_1().require_feature(KEYS[1], s.requires, 'unique')
if last == seq then return out end
local first = seq + 1
out[1] = first
redis.call('HINCRBY', KEYS[1], 'seq', last - seq)
redis.call('HSET', KEYS[3], unpack(data))
redis.call('HSET', k.held, unpack(held))
if #over > 0 then redis.call('ZREM', k.until_, unpack(over)) end
redis.call('HSET', k.of, unpack(of))
-- When the new jobs begin to wait (`pushed`): now, or when a delayed one falls due.
since_1_2().record_pushes(since_1_2().records(base, level), first, at)
if #items > 0 then redis.call('RPUSH', KEYS[2], unpack(items)) end
if level then since_1_2().enter_level(KEYS[1], s, first, last, level) end
if #members > 0 then
  local earliest = redis.call('ZRANGE', KEYS[8], 0, 0, 'WITHSCORES')[2]
  since_1_1().require_feature(KEYS[1], redis.call('HGET', KEYS[1], 'requires'), 'delay')
  redis.call('ZADD', KEYS[8], unpack(members))
  if not earliest or soonest < tonumber(earliest) then
    redis.call('SPUBLISH', base .. 'wake', 'scheduled')
  end
end
if #items > 0 and not s.paused and redis.call('LLEN', KEYS[5]) > 0 then
  local srv = server()
  local serving = open_call(KEYS[1], s, 'lease', 'inbox_ttl', 'max_attempts')
  srv.dispatch_stored(srv.serving(base, serving, now),
                      {waiting = KEYS[2], requests = KEYS[5], workers = KEYS[7], stats = KEYS[4]},
                      #items, now)
  if redis.call('LLEN', KEYS[5]) > 0 and
      (s.uses and s.uses.priority and since_1_2().count_waiting(base) or redis.call('LLEN', KEYS[2])) > 0 then
    redis.call('SPUBLISH', base .. 'wake', 'pushed')
  end
end
return out
