-- fail: the holder of a lease reports a failure. Retry after backoff, or the dead list.
-- KEYS[1] meta  KEYS[2] leases  KEYS[3] delayed  KEYS[4] dead_at  KEYS[5] errors  KEYS[6] stats
-- KEYS[7] jobs
-- ARGV[1] the caller's protocol version  ARGV[2] token "id|attempt|max"  ARGV[3] the
-- failure's code (`docs/HOST.md`, "How a job ends": `retry`, `trap`, `timeout`, ...)
-- ARGV[4] its message  ARGV[5] "1" for no retry
-- The error is kept as {"code","message","at","token"} (the errors hash), the message cut to
-- the queue's max_error_bytes.
-- Returns -1 for a stale token (-2 when its job was cancelled), 0 when the job went to the dead
-- list, else the retry delay in ms.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL; SQUE_INVALID for a code that is not a word of 1 to 32
-- lowercase letters and _, or is `poison` (the queue's own mark of data no worker can be
-- given, which `dead` never retries): refused before anything is written, the lease still held.
local s = open_call(KEYS[1], ARGV[1], 'backoff', 'backoff_max', 'max_error_bytes')
local code = ARGV[3]
if #code < 1 or #code > 32 or string.find(code, '[^a-z_]') or code == 'poison' then
  return redis.error_reply('SQUE_INVALID a failure\'s code is a word of 1 to 32 lowercase letters and _, and not poison; not ' ..
    string.format('%q', string.sub(code, 1, 40)))
end
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then
  local cancelled = s.uses and s.uses.cancel and
    redis.call('ZSCORE', key_base(KEYS[1]) .. 'cancelled', parse_token(ARGV[2]) or '')
  return cancelled and -2 or -1
end
-- On a capped queue (feature `cap`) the lease that ended makes room: a manager serves the
-- requests stored meanwhile.
if s.uses and s.uses.cap then
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'free')
end
local message = ARGV[4]
if #message > s.max_error_bytes then message = graveyard().cut(message, s.max_error_bytes) end
local now, usec = now_ms()
local id, attempt, max = parse_token(ARGV[2])
local k = {meta = KEYS[1], dead = KEYS[4], errors = KEYS[5], jobs = KEYS[7], stats = KEYS[6]}
if not id then
  -- A lease that was held under a token no script writes: nothing can retry it.
  graveyard().bury_poison(k, s, ARGV[2], ARGV[2], 'lease token ' .. string.format('%q', string.sub(ARGV[2], 1, 80)) .. ' is not ID|ATTEMPT|MAX', now)
  return 0
end
if ARGV[5] == '1' or attempt >= max then
  graveyard().bury(k, s, ARGV[2], id, code, message, now)
  return 0
end
redis.call('HSET', KEYS[5], id, graveyard().record(code, message, now, ARGV[2]))
-- Exponential backoff with "equal jitter": half fixed, half drawn from the clock's microseconds.
local delay = math.min(s.backoff * 2 ^ (attempt - 1), s.backoff_max)
local half = math.floor(delay / 2)
delay = half + (usec % (half + 1))
redis.call('ZADD', KEYS[3], now + delay, ARGV[2])
redis.call('HINCRBY', KEYS[6], 'retried', 1)
return math.max(delay, 1)
