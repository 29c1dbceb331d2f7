-- push: append jobs to the tail of the waiting list (FIFO: the head leaves first), then serve
-- requests that were waiting for work, in this same call, as a dispatcher would serve them
-- next. Every job is checked first (within the queue's max_job_bytes, a sound attempt limit):
-- one bad job refuses the call, and nothing is written. Whether the data is JSON is the
-- producer's to check (the libraries do) and the worker's (it parses the data anyway, and
-- buries what it cannot read as poison): decoding every job here too cost the script about
-- a third more per job (docs/PROTOCOL.md, "Poison").
-- KEYS[1] meta  KEYS[2] waiting, or waiting:L for jobs at priority L (0 to 9 but 5; feature
-- `priority`)  KEYS[3] jobs  KEYS[4] stats  KEYS[5] requests
-- KEYS[6] leases  KEYS[7] workers (both optional: without them, push only wakes a dispatcher)
-- ARGV[1] the caller's protocol version, then pairs (data JSON, max_attempts or "") for each
-- job.
-- How many jobs were ever pushed is meta's seq, the last id given: no counter of its own. When
-- they were pushed is one entry of `pushed` for the call (score: its first id;
-- "FIRST|MS|LAST").
-- Returns the first new id; the others follow it in order.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL; SQUE_TOOLARGE "job N is B bytes, over the queue's
-- limit of L bytes"; SQUE_INVALID "job N: its data is empty ..." or "job N: max_attempts
-- ..." (N counts from 1 in this call).
local opened = open_call(KEYS[1], ARGV[1], 'max_job_bytes')
local limit = opened.max_job_bytes
local base = key_base(KEYS[1])
local count = (#ARGV - 1) / 2
if count < 1 or count ~= math.floor(count) then
  return redis.error_reply('SQUE_INVALID push takes pairs (data, max_attempts) after the protocol version')
end
-- A list other than `waiting` names the jobs' priority (`waiting:L`, feature `priority`).
local level = KEYS[2] ~= base .. 'waiting' and since_1_2().level_named(base, KEYS[2])
for i = 0, count - 1 do
  local data, max = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  if #data == 0 then return redis.error_reply(since_1_1().empty_job(i + 1)) end
  if #data > limit then
    return redis.error_reply('SQUE_TOOLARGE job ' .. (i + 1) .. ' is ' .. #data ..
      ' bytes, over the queue\'s limit of ' .. limit .. ' bytes')
  end
  if max ~= '' and (not string.match(max, '^%d+$') or #max > 9 or tonumber(max) < 1) then
    return redis.error_reply('SQUE_INVALID job ' .. (i + 1) .. ': max_attempts ' ..
      string.format('%q', string.sub(max, 1, 20)) .. ' is not a number from 1 to 999999999')
  end
end
local last = redis.call('HINCRBY', KEYS[1], 'seq', count)
local first = last - count + 1
-- HSET and RPUSH take many values at once: one call of each per 1000 jobs (a call costs about
-- as much as the job it writes), in chunks that stay within Lua's stack.
-- Each id is made text once, exactly (a number is otherwise formatted anew for every use, and
-- in a concatenation with 14 digits at most).
local data, items = {}, {}
for i = 0, count - 1 do
  local id = string.format('%d', first + i)
  data[#data + 1] = id
  data[#data + 1] = ARGV[2 + 2 * i]
  local max = ARGV[3 + 2 * i]
  if max == '' then items[#items + 1] = id .. '|0' else items[#items + 1] = id .. '|0|' .. max end
  if #items == 1000 then
    redis.call('HSET', KEYS[3], unpack(data))
    redis.call('RPUSH', KEYS[2], unpack(items))
    data, items = {}, {}
  end
end
if #items > 0 then
  redis.call('HSET', KEYS[3], unpack(data))
  redis.call('RPUSH', KEYS[2], unpack(items))
end
-- When this call's jobs were pushed, once for all of them ("pushed"; read for the age of the
-- oldest waiting job).
local now = now_ms()
-- (Each priority keeps its own records: `pushed` for the normal one.)
redis.call('ZADD', level and since_1_2().records(base, level) or base .. 'pushed', first,
           string.format('%d|%d|%d', first, now, last))
if level then
  since_1_2().enter_level(KEYS[1], opened, first, last, level)
end
-- Bulk pushes into a queue nobody waits on stay quiet and cheap; a paused queue serves no one.
if opened.paused or redis.call('LLEN', KEYS[5]) == 0 then return first end
-- Workers wait: serve them now, saving the wake-up and the dispatch call on the way.
if KEYS[7] then
  local srv = server()
  local serving = open_call(KEYS[1], opened, 'lease', 'inbox_ttl', 'max_attempts')
  srv.dispatch_stored(srv.serving(base, serving, now),
                  {waiting = KEYS[2], requests = KEYS[5], workers = KEYS[7], stats = KEYS[4]},
                  count, now)
end
if redis.call('LLEN', KEYS[5]) > 0 and
    (opened.uses and opened.uses.priority and since_1_2().count_waiting(base) or redis.call('LLEN', KEYS[2])) > 0 then
  redis.call('SPUBLISH', base .. 'wake', 'pushed')
end
return first
