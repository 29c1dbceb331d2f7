-- cancel: ends a job that has not ended, by id, whatever it is doing; a cancelled job is never
-- retried. The first cancel records the feature (`requires` gains `cancel`), so that a host
-- that would hand out what is cancelled refuses the queue instead.
--  - waiting, scheduled or retrying: its data becomes the empty string (never a job's data:
--    data is JSON), which whoever hands it out drops with its item (`serve`): no list or set
--    is searched, however long the queue;
--  - in flight: its lease is taken away, data, last error and unique key with it. The holder
--    hears it at its next renewal (`renew` lists the token as cancelled) or acknowledgement
--    (`exchange` answers 3), and stops the job.
-- Either way the job is recorded in `cancelled` (id -> when), kept like a result (result_ttl,
-- the reaper), and its unique key is freed.
-- KEYS[1] meta  KEYS[2] jobs  KEYS[3] leases  KEYS[4] errors  KEYS[5] dead_at  KEYS[6] stats
-- ARGV[1] the caller's protocol version  ARGV[2] job id
-- Returns {"cancelled", "running" or "queued"}, {"already", ms when it was cancelled or -1},
-- {"dead"} (a dead job is purged, not cancelled) or {"ended"} (completed, purged or never
-- pushed: nothing left to cancel).
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE, SQUE_INVALID for an id that is not one.
local s = open_call(KEYS[1], ARGV[1])
local id = ARGV[2]
if not string.match(id, '^%d+$') or #id > 20 then
  return redis.error_reply('SQUE_INVALID job id ' .. string.format('%q', string.sub(id, 1, 40)) .. ' is not a number')
end
local base = key_base(KEYS[1])
local cancelled = base .. 'cancelled'
local at = redis.call('ZSCORE', cancelled, id)
if at then return {'already', tonumber(at)} end
local data = redis.call('HGET', KEYS[2], id)
if data == '' then return {'already', -1} end
if not data then return {'ended'} end
if graveyard().find({dead = KEYS[5], errors = KEYS[4]}, id) then return {'dead'} end

local f = since_1_1()
f.require_feature(KEYS[1], s.requires, 'cancel')
local now = now_ms()
-- Its lease, if it runs: the leases are the jobs in flight, a few thousand at most.
local lease
local cursor = '0'
repeat
  local page = redis.call('ZSCAN', KEYS[3], cursor, 'MATCH', id .. '|*', 'COUNT', 1000)
  cursor = page[1]
  if #page[2] > 0 then lease = page[2][1] end
until lease or cursor == '0'
if lease then
  redis.call('ZREM', KEYS[3], lease)
  redis.call('HDEL', KEYS[2], id)
  if s.uses and s.uses.priority then redis.call('HDEL', base .. 'priority', id) end
else
  redis.call('HSET', KEYS[2], id, '')
end
redis.call('HDEL', KEYS[4], id)
redis.call('ZADD', cancelled, now, id)
redis.call('HINCRBY', KEYS[6], 'cancelled', 1)
local u = f.unique
u.release(u.keys(base), id, 'gone', now)
return {'cancelled', lease and 'running' or 'queued'}
