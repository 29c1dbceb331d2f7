-- tick: push the job of a schedule whose time has come, exactly once: the call names the
-- tick it saw and the definition it read, and does nothing unless both still hold (another
-- manager ticked it first, or it was changed or removed meanwhile) and the tick is due on
-- Redis's clock. The job joins the tail of `waiting` like a pushed job (a dispatcher serves
-- it: `pushed` is published when requests wait), or of `waiting:L` for a schedule whose jobs
-- have priority L (feature `cron_priority`, recorded by `schedules`), and the schedule's next
-- tick, computed by the caller from the pattern, is written in the same call.
-- KEYS[1] meta  KEYS[2] schedules  KEYS[3] schedule_due  KEYS[4] waiting, or waiting:L for
-- the schedule's priority L (as `push` takes it)  KEYS[5] jobs  KEYS[6] requests
-- ARGV[1] the caller's protocol version  ARGV[2] the name  ARGV[3] the tick seen (ms)
-- ARGV[4] the next tick (ms)  ARGV[5] the definition read  ARGV[6] the job's data (JSON)
-- ARGV[7] its attempt limit ("" for the queue's)
-- Returns the new job's id; 0 when the tick no longer holds or is not due yet; -1 when the
-- data is over the queue's max_job_bytes (the tick passes, and no job is pushed).
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_INVALID for a KEYS[4] that is not
-- one of the queue's lists.
local s = open_call(KEYS[1], ARGV[1], 'max_job_bytes')
local base = key_base(KEYS[1])
-- A list other than `waiting` names the job's priority (feature `priority`).
local level = KEYS[4] ~= base .. 'waiting' and since_1_2().level_named(base, KEYS[4])
local seen = redis.call('ZSCORE', KEYS[3], ARGV[2])
if not seen or tonumber(seen) ~= tonumber(ARGV[3]) or tonumber(seen) > now_ms() then return 0 end
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[5] then return 0 end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
if #ARGV[6] > s.max_job_bytes then return -1 end
local id = string.format('%d', redis.call('HINCRBY', KEYS[1], 'seq', 1))
redis.call('HSET', KEYS[5], id, ARGV[6])
redis.call('RPUSH', KEYS[4], ARGV[7] == '' and (id .. '|0') or (id .. '|0|' .. ARGV[7]))
redis.call('ZADD', since_1_2().records(base, level), id, id .. '|' .. now_ms() .. '|' .. id)
if level then
  -- (Recorded by `schedules` already, unless the definition was set past it.)
  since_1_1().require_feature(KEYS[1], redis.call('HGET', KEYS[1], 'requires'), 'cron_priority')
  since_1_2().enter_level(KEYS[1], s, tonumber(id), tonumber(id), level)
end
if redis.call('LLEN', KEYS[6]) > 0 then
  redis.call('SPUBLISH', base .. 'wake', 'pushed')
end
return tonumber(id)
