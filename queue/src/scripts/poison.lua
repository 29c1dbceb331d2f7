-- poison: the holder of a lease reports that the job's data cannot be given to a handler
-- (it is not valid JSON, it is nested 128 levels deep or more, it is not UTF-8): written past
-- the push script, it got as far as a worker. It goes to the dead list at once (no retry can
-- mend it), its data cut to 4 KiB and the message to the queue's max_error_bytes, counted as
-- `poisoned`.
-- KEYS[1] meta  KEYS[2] leases  KEYS[3] dead_at  KEYS[4] errors  KEYS[5] stats  KEYS[6] jobs
-- ARGV[1] the caller's protocol version  ARGV[2] token  ARGV[3] what is wrong with the data
-- Returns 1, or 0 for a stale token (nothing changed).
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL.
local s = open_call(KEYS[1], ARGV[1], 'max_error_bytes')
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return 0 end
local id = parse_token(ARGV[2]) or ARGV[2]
local d = graveyard()
d.bury_poison({meta = KEYS[1], dead = KEYS[3], errors = KEYS[4], jobs = KEYS[6], stats = KEYS[5]}, s, ARGV[2], id,
              d.cut(ARGV[3], s.max_error_bytes), now_ms())
return 1
