-- pause: stop or restart handing out a queue's jobs. While paused, no script hands a job out
-- (push, exchange, dispatch and promote store the requests instead); running jobs finish and
-- pushes are kept. The first pause records the feature (`requires` gains `pause`), so that a
-- host that would keep handing jobs out refuses the queue instead.
-- KEYS[1] meta
-- ARGV[1] the caller's protocol version  ARGV[2] "pause" or "resume"
-- Returns 1 when the queue's state changed, 0 when it already was so. Resuming publishes
-- `resumed` on the wake channel, so that the dispatchers serve the stored requests at once.
-- Errors: SQUE_NOQUEUE, SQUE_PROTOCOL, SQUE_FEATURE; SQUE_INVALID for another action.
local s = open_call(KEYS[1], ARGV[1])
if ARGV[2] == 'pause' then
  if s.paused then return 0 end
  since_1_1().require_feature(KEYS[1], s.requires, 'pause')
  redis.call('HSET', KEYS[1], 'paused', '1')
  return 1
elseif ARGV[2] == 'resume' then
  if not s.paused then return 0 end
  redis.call('HDEL', KEYS[1], 'paused')
  redis.call('SPUBLISH', key_base(KEYS[1]) .. 'wake', 'resumed')
  return 1
end
return redis.error_reply('SQUE_INVALID pause takes "pause" or "resume", not ' .. string.format('%q', string.sub(ARGV[2] or '', 1, 20)))
