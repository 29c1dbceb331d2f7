-- schedule: add jobs that become ready later (delayed or scheduled for a time). Each job's
-- data is kept in `jobs` at once, under a new id as push gives it, and its item waits in
-- `scheduled`, scored by when it is due on Redis's clock, its id written with 20 digits
-- (00000000000000000042|0, or ...|0|MAX) so that jobs due at the same millisecond sort in
-- the order they were pushed; `promote` moves it to the tail of `waiting` then. Every job is checked first, as push checks: one bad job
-- refuses the call, and nothing is written. The first call on a queue records the feature
-- (`requires` gains `delay`), so that a host that would never promote the jobs refuses the
-- queue instead.
-- KEYS[1] meta  KEYS[2] jobs  KEYS[3] scheduled  KEYS[4] (optional) waiting:L, for jobs at
-- priority L (as `push` takes it; they join that list when due)
-- ARGV[1] the caller's protocol version, then triples (data JSON, max_attempts or "", due)
-- for each job; due is "+MS" (that many ms after now, on Redis's clock) or "@MS" (that time,
-- in ms since the epoch; a time already past is due at once).
-- Returns the first new id; the others follow it in order.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_TOOLARGE "job N is B bytes, over
-- the queue's limit of L bytes"; SQUE_INVALID "job N: ..." (N counts from 1 in this call).
local s = open_call(KEYS[1], ARGV[1], 'max_job_bytes')
local count = (#ARGV - 1) / 3
if count < 1 or count ~= math.floor(count) then
  return redis.error_reply('SQUE_INVALID schedule takes triples (data, max_attempts, due) after the protocol version')
end
local now = now_ms()
local level = KEYS[4] and since_1_2().level_named(key_base(KEYS[1]), KEYS[4])
if level == 5 then level = nil end
local due = {}
local check = since_1_1().check_job
for i = 0, count - 1 do
  due[i + 1] = check(i + 1, ARGV[2 + 3 * i], ARGV[3 + 3 * i], ARGV[4 + 3 * i], s.max_job_bytes, now)
  -- A job here always has a due time.
  if not due[i + 1] then
    return redis.error_reply('SQUE_INVALID job ' .. (i + 1) .. ': due "" is neither +MS (a delay) nor @MS (a time)')
  end
end
since_1_1().require_feature(KEYS[1], s.requires, 'delay')
local earliest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]
local last = redis.call('HINCRBY', KEYS[1], 'seq', count)
local first = last - count + 1
local data, members, soonest = {}, {}, nil
for i = 0, count - 1 do
  local id = string.format('%d', first + i)
  data[#data + 1] = id
  data[#data + 1] = ARGV[2 + 3 * i]
  local max = ARGV[3 + 3 * i]
  members[#members + 1] = string.format('%d', due[i + 1])
  local padded = string.rep('0', 20 - #id) .. id
  members[#members + 1] = max == '' and (padded .. '|0') or (padded .. '|0|' .. max)
  if not soonest or due[i + 1] < soonest then soonest = due[i + 1] end
  if #data == 1000 then
    redis.call('HSET', KEYS[2], unpack(data))
    redis.call('ZADD', KEYS[3], unpack(members))
    data, members = {}, {}
  end
end
if #data > 0 then
  redis.call('HSET', KEYS[2], unpack(data))
  redis.call('ZADD', KEYS[3], unpack(members))
end
-- When they are due, as `pushed` records a push: a scheduled job waits from then on.
local at = {}
for i = 1, count do at[i] = math.max(due[i], now) end
since_1_2().record_pushes(since_1_2().records(key_base(KEYS[1]), level), first, at)
if level then since_1_2().enter_level(KEYS[1], s, first, last, level) end
-- Promoters sleep until the soonest job they know of: one sooner than that wakes them.
if not earliest or soonest < tonumber(earliest) then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'scheduled')
end
return first
