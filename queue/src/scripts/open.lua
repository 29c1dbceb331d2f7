-- open: create the queue or join it, and read its settings.
-- KEYS[1] meta
-- ARGV[1] the caller's protocol version, then pairs (setting, value) of every setting
-- (`docs/PROTOCOL.md`, "Settings"): the first opener's values are kept, later openers' are
-- not written (an older queue that lacks a setting gets it from the first opener to name it).
-- A queue with limits (set now or before) requires their features (`cap`, `rate`).
-- Returns the meta hash, flat (field, value, ...), protocol and settings included.
-- Errors: SQUE_PROTOCOL when the queue speaks another major version (nothing is written).
local created = redis.call('HSETNX', KEYS[1], 'protocol', ARGV[1]) == 1
if created then
  redis.call('HSET', KEYS[1], 'created_at', (now_ms()))
else
  open_call(KEYS[1], ARGV[1])
end
for i = 2, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
end
since_1_1().require_limits_if_set(KEYS[1])
return redis.call('HGETALL', KEYS[1])
